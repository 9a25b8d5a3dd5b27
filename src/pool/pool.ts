// A pool of worker threads that seal and open packet batches in parallel, for the stages of the
// data plane whose crypto would otherwise saturate the main thread. Batches never get copied:
// slabs over SharedArrayBuffer are shared with the worker, ordinary buffers are moved there and
// back with transfer lists. Results come back in submission order, at most `queueDepthMax`
// batches are in flight, and close() leaves no thread behind. Work is handed over through a
// control block in shared memory (Atomics.wait in the worker, Atomics.waitAsync here) because
// message events cost as much as the crypto of a typical batch on a small machine.
//
// This module is the pool's public entry: the AeadPool class checks every call at the API
// boundary and ties together the parts that live next to it (options.ts, start-workers.ts,
// pool-workers.ts, ordered-delivery.ts, pool-keys.ts, submission-checks.ts).

import type { BackendConstants, BackendName, PacketBatch, SuiteName } from '../crypto/backend.js';
import { isSuiteName } from '../crypto/backend.js';
import { describe, requireUint8Array } from '../crypto/validate.js';
import { SealcastError } from '../errors.js';
import { withDeadline } from './deadline.js';
import type { PoolOpenResult } from './items.js';
import { resolvePoolOptions, type AeadPoolOptions } from './options.js';
import { OrderedDelivery } from './ordered-delivery.js';
import { closedError, noWorkersError } from './pool-errors.js';
import { PoolKeyHandle, PoolKeys } from './pool-keys.js';
import { PoolWorkers } from './pool-workers.js';
import type { ReadyReply } from './protocol.js';
import { startWorkers } from './start-workers.js';
import { requireSubmittableBatch } from './submission-checks.js';
import type { WorkerSlot } from './worker-slot.js';

export {
  POOL_BATCHES_PER_THREAD_DEFAULT,
  POOL_QUEUE_DEPTH_MAX,
  POOL_THREADS_MAX,
  defaultPoolThreads,
  type AeadPoolOptions,
} from './options.js';
export { POOL_KEYS_MAX, PoolKeyHandle } from './pool-keys.js';
export type { PoolOpenResult } from './items.js';

type PoolState = 'open' | 'closing' | 'closed';

/**
 * Seals and opens packet batches on worker threads.
 *
 * **Zero copy.** A batch's views (`slab`, `layout`, `nonces`, and for open `status`) are never
 * copied:
 * - views over a SharedArrayBuffer are shared with the worker; it rewrites the slab in place and
 *   the delivered batch holds the caller's own view objects. The caller must not touch that
 *   memory until the promise settles. When every view of a batch is shared, the batch reaches
 *   the worker as a few integers in a shared control block, with no message at all (see
 *   WorkerStartData in protocol.ts): each worker keeps a reference to the shared buffers it has
 *   seen, so that only a buffer new to it is posted, once. It forgets the least recently used
 *   idle ones beyond 32 buffers or 64 MiB, so memory the caller drops may stay allocated until
 *   then or until close().
 * - views over ordinary ArrayBuffers are moved to the worker with a transfer list and moved back
 *   when it is done. While the batch is in flight **the caller's views are detached** (length 0);
 *   the delivered batch holds new views over the returned buffers, at the same byte offsets and
 *   lengths. Several views may share one buffer. If a worker fails a batch, its ordinary buffers
 *   are not returned. (Node 20 copies instead of moving buffers marked untransferable, such as
 *   the pool behind small `Buffer.from` values; the delivered views are still the ones to use.)
 *
 * **Order.** Promises of seal() and open() settle in submission order, even when a later batch
 * finishes first on another worker; an error is delivered in its turn too. Arguments that fail
 * validation reject at once and are not submitted, with one exception: a batch whose views are
 * all typed arrays over shared memory has its slot layout (and nonce and status sizes, and
 * overlaps) checked by the worker's backend, so such a batch rejects with the same error as
 * the single-thread path in its turn, having touched nothing (and a full queue is reported
 * before its layout is).
 *
 * **Backpressure.** At most `queueDepthMax` batches are in flight (submitted and not yet
 * delivered). A seal() or open() beyond that rejects at once with E_POOL and leaves the batch
 * untouched; a producer waits with `while (!pool.hasCapacity) await pool.whenCapacity();`.
 * Callbacks attached to a delivered batch's promise run before whenCapacity() resolves, so a
 * producer that recycles slabs from its results finds the returned slab there.
 *
 * **Failures.** An error thrown inside a worker rejects that batch with the same class and
 * message (TypeError, RangeError, SealcastError with its code). A worker thread that dies
 * rejects its in-flight batches with E_POOL and is dropped; the pool goes on with the others and
 * rejects everything with E_POOL once none is left.
 *
 * **Lifetime.** An open pool keeps the process alive; close() destroys every key schedule in
 * every worker, terminates the threads, and from then on every call rejects with E_CLOSED.
 */
export class AeadPool {
  /** Worker threads started. */
  readonly threads: number;
  readonly queueDepthMax: number;
  /** The backend every worker runs. */
  readonly backendName: BackendName;
  readonly suites: readonly SuiteName[];
  readonly constants: BackendConstants;

  readonly #workers: PoolWorkers;
  readonly #delivery: OrderedDelivery;
  readonly #keys: PoolKeys;
  readonly #closeTimeoutMs: number;
  #state: PoolState = 'open';
  #closePromise: Promise<void> | null = null;

  /**
   * Starts the workers and resolves once every one has loaded its backend.
   * Rejects with RangeError/TypeError for bad options, with the worker's own error (usually
   * E_BACKEND) when a backend cannot load, and with E_POOL when a thread fails to start.
   */
  static async create(options: AeadPoolOptions = {}): Promise<AeadPool> {
    const { threads, queueDepthMax, startTimeoutMs, closeTimeoutMs, backend, workerUrl } = resolvePoolOptions(options);
    // Every task of one worker may be a ring entry, and a worker never has more than the pool's
    // in-flight bound, so that many entries always suffice.
    const { slots, ready } = await startWorkers(threads, workerUrl, backend, queueDepthMax, startTimeoutMs);
    return new AeadPool(slots, ready, queueDepthMax, closeTimeoutMs);
  }

  private constructor(slots: WorkerSlot[], ready: ReadyReply, queueDepthMax: number, closeTimeoutMs: number) {
    this.#delivery = new OrderedDelivery(queueDepthMax, () => this.hasCapacity);
    this.#workers = new PoolWorkers(slots, this.#delivery, () => this.#state === 'open');
    this.#keys = new PoolKeys(this.#workers);
    this.threads = slots.length;
    this.queueDepthMax = queueDepthMax;
    this.#closeTimeoutMs = closeTimeoutMs;
    this.backendName = ready.backend;
    this.suites = Object.freeze([...ready.suites]);
    this.constants = Object.freeze({ ...ready.constants });
  }

  /** Batches submitted and not yet delivered. */
  get inFlight(): number {
    return this.#delivery.inFlight;
  }

  /** True when seal() or open() would accept another batch now. */
  get hasCapacity(): boolean {
    return this.#state === 'open' && this.#delivery.hasRoom && this.liveThreads > 0;
  }

  /** Batches a worker has finished that wait for an earlier batch before being delivered. */
  get heldForOrder(): number {
    return this.#delivery.heldForOrder;
  }

  /** Worker threads that have not exited. */
  get liveThreads(): number {
    return this.#workers.liveThreads;
  }

  /**
   * How many shared buffers each worker currently references (in flight or cached).
   * @internal For tests of the buffer table's bounds.
   */
  get sharedBuffersHeld(): number[] {
    return this.#workers.sharedBuffersHeld;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#state !== 'open';
  }

  /**
   * Resolves when a batch may be submitted. All callers waiting at the same time share one
   * promise, so waiting costs no memory per call; with several producers, one of them may still
   * find the pool full again. Rejects with E_CLOSED once closed, E_POOL when no worker is left.
   */
  whenCapacity(): Promise<void> {
    try {
      this.#requireUsable();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.hasCapacity) return Promise.resolve();
    return this.#delivery.whenCapacity();
  }

  /**
   * Installs a key schedule for `suite` in every worker. The key is copied once per worker and
   * moved there; each worker zeroes its copy after building the schedule, and the pool keeps no
   * copy. The caller still owns `key` and should zero it. Invalid keys or suites reject with
   * the backend's own TypeError, RangeError or SealcastError (E_BACKEND for a suite this backend
   * lacks); more than 256 live keys reject with E_POOL.
   */
  async addKey(suite: SuiteName, key: Uint8Array): Promise<PoolKeyHandle> {
    this.#requireUsable();
    if (!isSuiteName(suite)) {
      throw new TypeError(`suite must be one of ${this.suites.join(', ')}, got ${describe(suite)}`);
    }
    requireUint8Array(key, 'key');
    const handle = this.#keys.register(this, suite);
    const outcomes = await this.#keys.installEverywhere(handle, key);
    const failure = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failure !== undefined || this.#state !== 'open') {
      this.#keys.drop(handle);
      if (this.#state === 'open') await this.#keys.removeEverywhere(handle);
      if (failure !== undefined) throw (failure as PromiseRejectedResult).reason;
      throw closedError();
    }
    return handle;
  }

  /**
   * Destroys the key schedule in every worker. Batches submitted earlier with this key finish
   * first (each worker handles its messages in order); later submissions reject with E_CLOSED.
   * Removing a key twice is a no-op.
   */
  async removeKey(handle: PoolKeyHandle): Promise<void> {
    this.#requireUsable();
    this.#requireOwnHandle(handle);
    if (handle.removed) return;
    this.#keys.drop(handle);
    await this.#keys.removeEverywhere(handle);
  }

  /**
   * Seals every slot of `batch` on a worker (see the class notes on zero copy and order).
   * Resolves with the sealed batch: the same views for SharedArrayBuffer memory, new views over
   * the returned buffers otherwise.
   */
  seal(handle: PoolKeyHandle, batch: PacketBatch): Promise<PacketBatch> {
    // Not an async function: the promise returned is the task's own, so its callbacks run
    // before those of whenCapacity() when a delivery frees a place (one fewer promise hop).
    try {
      this.#requireSubmittable(handle);
      requireSubmittableBatch(batch, this.constants);
      this.#delivery.requireRoom();
      const { slab, layout, nonces, count } = batch;
      return this.#workers.submit(
        { kind: 'seal', taskId: 0, keyId: handle.id, slab, layout, nonces, count },
        [slab, layout, nonces],
      ) as Promise<PacketBatch>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Opens every slot of `batch` on a worker, writing one status byte per slot into `status`.
   * A forged slot is a status (its payload zeroed), never a rejection.
   */
  open(handle: PoolKeyHandle, batch: PacketBatch, status: Uint8Array): Promise<PoolOpenResult> {
    try {
      this.#requireSubmittable(handle);
      // open() always writes statuses; a missing one must be named here, not fail deep inside.
      requireUint8Array(status, 'status');
      requireSubmittableBatch(batch, this.constants, status);
      this.#delivery.requireRoom();
      const { slab, layout, nonces, count } = batch;
      return this.#workers.submit(
        { kind: 'open', taskId: 0, keyId: handle.id, slab, layout, nonces, count, status },
        [slab, layout, nonces, status],
      ) as Promise<PoolOpenResult>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Lets in-flight batches finish, destroys every key schedule in every worker, terminates the
   * threads and resolves once all of them have exited. Batches still running after
   * `closeTimeoutMs` are cut off: their threads are terminated and they reject with E_CLOSED.
   * Idempotent: later calls return the same promise.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    this.#delivery.rejectCapacityWaiter(closedError());
    this.#keys.dropAll();
    const deadlineMs = Date.now() + this.#closeTimeoutMs;
    const drained = await this.#delivery.waitDrained(deadlineMs);
    if (drained) {
      // Each worker handles 'close' after everything posted before it, so no schedule is
      // destroyed under a running batch.
      const destroys = this.#workers
        .liveSlots()
        .map((slot) => this.#workers.control(slot, { kind: 'close', requestId: 0 }).catch(() => {}));
      await withDeadline(Promise.all(destroys), deadlineMs);
    }
    await this.#workers.terminate();
    this.#state = 'closed';
  }

  #requireUsable(): void {
    if (this.#state !== 'open') throw closedError();
    if (this.liveThreads === 0) throw noWorkersError();
  }

  #requireOwnHandle(handle: unknown): asserts handle is PoolKeyHandle {
    if (!(handle instanceof PoolKeyHandle) || handle.pool !== this) {
      throw new TypeError(`handle must be a PoolKeyHandle returned by this pool's addKey(), got ${describe(handle)}`);
    }
  }

  #requireSubmittable(handle: unknown): asserts handle is PoolKeyHandle {
    this.#requireUsable();
    this.#requireOwnHandle(handle);
    if (handle.removed) throw new SealcastError('E_CLOSED', `pool key ${handle.id} (${handle.suite}) was removed`);
  }
}
