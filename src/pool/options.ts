// The pool's limits and defaults, and the check that turns the options a caller passes to
// AeadPool.create() into settings the rest of the pool can rely on without checking again.
// They live apart from the pool's machinery because they are the part a caller reads and tunes.

import { availableParallelism } from 'node:os';
import { backendPreferenceFromEnv, type BackendPreference } from '../crypto/load.js';
import { describe } from '../crypto/validate.js';

/** Upper bound on `threads`: more threads than this cannot be fed by one main thread. */
export const POOL_THREADS_MAX = 64;
/** Upper bound on `queueDepthMax`: every in-flight batch pins its slab in memory. */
export const POOL_QUEUE_DEPTH_MAX = 1024;
/**
 * Default in-flight batches per thread. A worker that still has more than one batch queued
 * when it finishes one does not wake the main thread for it (see serve.ts), so with 4 per
 * thread the main thread wakes about once per two or three batches instead of once per batch,
 * which on a 2-core machine is worth about a tenth of the pool's speed-up at 1400-byte packets.
 */
export const POOL_BATCHES_PER_THREAD_DEFAULT = 4;

/**
 * Worker threads a pool should start by default: one fewer than the cores Node may use, at
 * least one and at most eight.
 *
 * The main thread is never idle in sealcast: it reads the input, frames packets, computes FEC,
 * paces and sends datagrams, and delivers every pool result. So it keeps one core for itself,
 * and the workers take the rest. On the 2-core machines this project targets that is a single
 * worker: crypto then runs on the second core, overlapping with the main thread's I/O, and no
 * third runnable thread competes for the two cores. Beyond eight, one main thread cannot hand
 * out batches fast enough to keep more workers busy, and each extra thread costs a backend
 * instance and its memory.
 */
export function defaultPoolThreads(): number {
  return Math.min(8, Math.max(1, availableParallelism() - 1));
}

export interface AeadPoolOptions {
  /** Worker threads to start, 1..64. Default: {@link defaultPoolThreads}. */
  threads?: number;
  /**
   * Backend every worker loads with `loadBackend`. Default: SEALCAST_BACKEND, else `auto`.
   * All workers must end up on the same backend, or create() rejects with E_BACKEND.
   */
  backend?: BackendPreference;
  /**
   * Most batches in flight (submitted and not yet delivered), 1..1024. Default: 4 per thread
   * ({@link POOL_BATCHES_PER_THREAD_DEFAULT}).
   */
  queueDepthMax?: number;
  /** How long create() waits for every worker to report ready. Default 30 000 ms. */
  startTimeoutMs?: number;
  /**
   * How long close() lets in-flight batches finish (and workers destroy their key schedules)
   * before it terminates the threads and rejects what is left with E_CLOSED. Default 10 000 ms.
   */
  closeTimeoutMs?: number;
  /**
   * The worker script. Default: `./worker.js` next to this module.
   * @internal Test seam for fixture workers.
   */
  workerUrl?: URL;
}

/** AeadPoolOptions checked, with every default filled in. */
export interface PoolSettings {
  threads: number;
  queueDepthMax: number;
  startTimeoutMs: number;
  closeTimeoutMs: number;
  backend: BackendPreference;
  workerUrl: URL;
}

/** Throws TypeError or RangeError naming the first option that is not acceptable. */
export function resolvePoolOptions(options: AeadPoolOptions): PoolSettings {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options must be an object, got ${describe(options)}`);
  }
  const threads = optionalInteger(options.threads, 'options.threads', 1, POOL_THREADS_MAX) ?? defaultPoolThreads();
  const queueDepthMax =
    optionalInteger(options.queueDepthMax, 'options.queueDepthMax', 1, POOL_QUEUE_DEPTH_MAX) ??
    Math.min(POOL_QUEUE_DEPTH_MAX, POOL_BATCHES_PER_THREAD_DEFAULT * threads);
  const startTimeoutMs = optionalInteger(options.startTimeoutMs, 'options.startTimeoutMs', 1, 600_000) ?? 30_000;
  const closeTimeoutMs = optionalInteger(options.closeTimeoutMs, 'options.closeTimeoutMs', 0, 600_000) ?? 10_000;
  const backend = options.backend ?? backendPreferenceFromEnv();
  if (backend !== 'native' && backend !== 'wasm' && backend !== 'auto') {
    throw new TypeError(`options.backend must be native, wasm or auto, got ${describe(backend)}`);
  }
  const workerUrl = options.workerUrl ?? new URL('./worker.js', import.meta.url);
  if (!(workerUrl instanceof URL)) {
    throw new TypeError(`options.workerUrl must be a URL, got ${describe(workerUrl)}`);
  }
  return { threads, queueDepthMax, startTimeoutMs, closeTimeoutMs, backend, workerUrl };
}

function optionalInteger(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}
