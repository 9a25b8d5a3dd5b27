/** The error `action` throws (as a plain record to match against), or {} when it throws nothing. */
export function errorOf(action: () => unknown): { code?: string; message?: string } {
  try {
    action();
  } catch (error) {
    return error as { code?: string; message?: string };
  }
  return {};
}
