// Module-resolution hooks (see register.mjs): report each resolved file URL on stderr.
export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (resolved.url.startsWith('file:')) process.stderr.write(`module-trace ${resolved.url}\n`);
  return resolved;
}
