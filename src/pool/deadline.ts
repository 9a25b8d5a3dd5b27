// Bounds a wait without leaving a timer behind: close() must finish by its deadline even when a
// worker never answers, and a pending timer would keep the process alive after the pool is gone.

/** Resolves with the promise's value, or with undefined once `deadlineMs` (epoch ms) passes. */
export async function withDeadline<T>(promise: Promise<T>, deadlineMs: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, deadlineMs - Date.now()));
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
