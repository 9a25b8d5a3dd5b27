// Bundles the compiled CLI (dist/cli/main.js and the pool's worker entry) into dist/bundle/, which
// bin/sealcast.js runs. Every sealcast process, a receiver above all, paid for Node resolving,
// reading and linking some 45 separate modules (commander's among them) before it did any work:
// `sealcast recv --help` took 134 ms of CPU against 95 ms bundled, with a bare `node -e 0` at 63 ms
// on the same machine. The bundle keeps the commands' lazy imports as separate chunks, so a
// receiver still loads neither the sender nor the control server nor SQLite (better-sqlite3 stays
// external: it is a native module).
//
// dist/bundle/modules.json records, for each chunk, the dist modules it holds and a SHA-256 of
// each as bundled: the tests use it to see which modules a real process loaded, and to refuse a
// bundle built from an older dist/ (run `npm run build`, which compiles and bundles).
//
// Usage: node scripts/bundle-cli.mjs   (after tsc; `npm run build` runs both)
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const TARGET = join(DIST, 'bundle');
/** Entry names are the file names the code refers to: the pool starts `./worker.js` next to itself. */
const ENTRIES = { main: join(DIST, 'cli', 'main.js'), worker: join(DIST, 'pool', 'worker.js') };
const EXTERNAL = ['better-sqlite3'];

for (const [name, path] of Object.entries(ENTRIES)) {
  if (!existsSync(path)) {
    console.error(`bundle-cli: ${relative(ROOT, path)} (entry ${name}) is missing: run tsc first (npm run build)`);
    process.exit(1);
  }
}

rmSync(TARGET, { recursive: true, force: true });
const bundle = await rolldown({ input: ENTRIES, platform: 'node', external: EXTERNAL, logLevel: 'warn' });
let output;
try {
  // Chunk names without hashes: the files are rebuilt as a whole, never cached by a browser,
  // and stable names keep stack traces and the module manifest readable.
  ({ output } = await bundle.write({ dir: TARGET, format: 'esm', entryFileNames: '[name].js', chunkFileNames: '[name].js' }));
} finally {
  await bundle.close();
}

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
const chunks = {};
for (const item of output) {
  if (item.type !== 'chunk') continue;
  chunks[item.fileName] = item.moduleIds
    .filter((id) => id.startsWith(DIST + sep))
    .map((id) => ({ module: relative(DIST, id).split(sep).join('/'), sha256: sha256(id) }));
}
writeFileSync(join(TARGET, 'modules.json'), `${JSON.stringify({ chunks }, null, 2)}\n`);
const moduleCount = Object.values(chunks).reduce((sum, modules) => sum + modules.length, 0);
console.log(`bundle-cli: ${moduleCount} modules in ${Object.keys(chunks).length} chunks -> ${relative(ROOT, TARGET)}/`);
