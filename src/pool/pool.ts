// A pool of worker threads that seal and open packet batches in parallel, for the stages of the
// data plane whose crypto would otherwise saturate the main thread. Batches never get copied:
// slabs over SharedArrayBuffer are shared with the worker, ordinary buffers are moved there and
// back with transfer lists. Results come back in submission order, at most `queueDepthMax`
// batches are in flight, and close() leaves no thread behind.

import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BackendConstants, BackendName, PacketBatch, SuiteName } from '../crypto/backend.js';
import { isSuiteName } from '../crypto/backend.js';
import { backendPreferenceFromEnv, type BackendPreference } from '../crypto/load.js';
import { describe, requireUint8Array, validateBatch } from '../crypto/validate.js';
import { SealcastError } from '../errors.js';
import {
  deserializeError,
  isShared,
  transferListFor,
  type ControlRequest,
  type FromWorker,
  type ReadyReply,
  type TaskRequest,
  type WorkerStartData,
} from './protocol.js';

/** Upper bound on `threads`: more threads than this cannot be fed by one main thread. */
export const POOL_THREADS_MAX = 64;
/** Upper bound on `queueDepthMax`: every in-flight batch pins its slab in memory. */
export const POOL_QUEUE_DEPTH_MAX = 1024;
/** Key schedules one pool holds at once; a sender needs the current and the next epoch's key. */
export const POOL_KEYS_MAX = 256;

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
  /** Most batches in flight (submitted and not yet delivered), 1..1024. Default: 2 per thread. */
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

/** What {@link AeadPool.open} delivers. */
export interface PoolOpenResult {
  /** The opened batch: authenticated payloads hold plaintext, failed ones are zeroed. */
  batch: PacketBatch;
  /** One status byte per slot: `constants.statusOk` or `constants.statusAuthFailed`. */
  status: Uint8Array;
  /** How many slots authenticated. */
  authenticated: number;
}

/** A key schedule installed in every worker of one pool. Obtain it from {@link AeadPool.addKey}. */
export class PoolKeyHandle {
  readonly suite: SuiteName;
  /** @internal */
  readonly id: number;
  /** @internal */
  readonly pool: AeadPool;
  #removed = false;

  /** @internal */
  constructor(pool: AeadPool, id: number, suite: SuiteName) {
    this.pool = pool;
    this.id = id;
    this.suite = suite;
  }

  /** True once removeKey() or close() was called for this key. */
  get removed(): boolean {
    return this.#removed;
  }

  /** @internal */
  markRemoved(): void {
    this.#removed = true;
  }
}

type Outcome = { ok: true; value: PacketBatch | PoolOpenResult } | { ok: false; error: Error };

interface Task {
  readonly id: number;
  readonly slot: WorkerSlot;
  readonly request: TaskRequest;
  outcome: Outcome | null;
  resolve(value: PacketBatch | PoolOpenResult): void;
  reject(error: Error): void;
}

interface Control {
  resolve(): void;
  reject(error: Error): void;
}

interface WorkerSlot {
  readonly index: number;
  readonly worker: Worker;
  /** Tasks posted to this worker and not yet answered, by task id. */
  readonly tasks: Map<number, Task>;
  /** Control requests posted to this worker and not yet answered, by request id. */
  readonly controls: Map<number, Control>;
  alive: boolean;
  /** The last 'error' event, reported when the thread exits without being asked to. */
  lastError: Error | null;
  readonly exited: Promise<void>;
}

type PoolState = 'open' | 'closing' | 'closed';

/**
 * Seals and opens packet batches on worker threads.
 *
 * **Zero copy.** A batch's views (`slab`, `layout`, `nonces`, and for open `status`) are never
 * copied:
 * - views over a SharedArrayBuffer are posted as they are; the worker rewrites the slab in
 *   place and the delivered batch holds the caller's own view objects. The caller must not touch
 *   that memory until the promise settles.
 * - views over ordinary ArrayBuffers are moved to the worker with a transfer list and moved back
 *   when it is done. While the batch is in flight **the caller's views are detached** (length 0);
 *   the delivered batch holds new views over the returned buffers, at the same byte offsets and
 *   lengths. Several views may share one buffer. If a worker fails a batch, its ordinary buffers
 *   are not returned. (Node 20 copies instead of moving buffers marked untransferable, such as
 *   the pool behind small `Buffer.from` values; the delivered views are still the ones to use.)
 *
 * **Order.** Promises of seal() and open() settle in submission order, even when a later batch
 * finishes first on another worker; an error is delivered in its turn too. Arguments that fail
 * validation reject at once and are not submitted.
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

  readonly #slots: WorkerSlot[];
  readonly #closeTimeoutMs: number;
  /** Submitted and undelivered tasks, oldest first: at most queueDepthMax of them. */
  #order: Task[] = [];
  #heldForOrder = 0;
  #nextTaskId = 1;
  #nextRequestId = 1;
  #nextKeyId = 1;
  readonly #handles = new Set<PoolKeyHandle>();
  #state: PoolState = 'open';
  #closePromise: Promise<void> | null = null;
  #capacityWaiter: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | null = null;
  #drainWaiter: (() => void) | null = null;

  /**
   * Starts the workers and resolves once every one has loaded its backend.
   * Rejects with RangeError/TypeError for bad options, with the worker's own error (usually
   * E_BACKEND) when a backend cannot load, and with E_POOL when a thread fails to start.
   */
  static async create(options: AeadPoolOptions = {}): Promise<AeadPool> {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`options must be an object, got ${describe(options)}`);
    }
    const threads = optionalInteger(options.threads, 'options.threads', 1, POOL_THREADS_MAX) ?? defaultPoolThreads();
    const queueDepthMax =
      optionalInteger(options.queueDepthMax, 'options.queueDepthMax', 1, POOL_QUEUE_DEPTH_MAX) ??
      Math.min(POOL_QUEUE_DEPTH_MAX, 2 * threads);
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

    const starts = Array.from({ length: threads }, (_, index) => startWorker(index, workerUrl, { backend }, startTimeoutMs));
    const outcomes = await Promise.allSettled(starts.map((start) => start.ready));
    const failure = outcomes.find((outcome) => outcome.status === 'rejected');
    const ready = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    const mismatch = ready.find((reply) => reply.backend !== ready[0].backend);
    if (failure !== undefined || mismatch !== undefined) {
      await Promise.all(starts.map((start) => start.stop()));
      if (failure !== undefined) throw (failure as PromiseRejectedResult).reason;
      throw new SealcastError(
        'E_BACKEND',
        `pool workers loaded different backends (${ready[0].backend} and ${mismatch!.backend}); choose one with options.backend`,
      );
    }
    return new AeadPool(
      starts.map((start) => start.slot),
      ready[0],
      queueDepthMax,
      closeTimeoutMs,
    );
  }

  private constructor(slots: WorkerSlot[], ready: ReadyReply, queueDepthMax: number, closeTimeoutMs: number) {
    this.#slots = slots;
    this.threads = slots.length;
    this.queueDepthMax = queueDepthMax;
    this.#closeTimeoutMs = closeTimeoutMs;
    this.backendName = ready.backend;
    this.suites = Object.freeze([...ready.suites]);
    this.constants = Object.freeze({ ...ready.constants });
    for (const slot of slots) {
      slot.worker.on('message', (message: FromWorker) => this.#onMessage(slot, message));
      slot.worker.on('messageerror', (error: Error) => {
        // A reply that cannot be deserialized leaves its task unanswerable; treat the thread as failed.
        slot.lastError = error;
        void slot.worker.terminate();
      });
      slot.worker.on('exit', (exitCode: number) => this.#onExit(slot, exitCode));
    }
  }

  /** Batches submitted and not yet delivered. */
  get inFlight(): number {
    return this.#order.length;
  }

  /** True when seal() or open() would accept another batch now. */
  get hasCapacity(): boolean {
    return this.#state === 'open' && this.#order.length < this.queueDepthMax && this.liveThreads > 0;
  }

  /** Batches a worker has finished that wait for an earlier batch before being delivered. */
  get heldForOrder(): number {
    return this.#heldForOrder;
  }

  /** Worker threads that have not exited. */
  get liveThreads(): number {
    return this.#slots.filter((slot) => slot.alive).length;
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
    if (this.#capacityWaiter === null) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((resolvePromise, rejectPromise) => {
        resolve = resolvePromise;
        reject = rejectPromise;
      });
      this.#capacityWaiter = { promise, resolve, reject };
    }
    return this.#capacityWaiter.promise;
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
    if (this.#handles.size >= POOL_KEYS_MAX) {
      throw new SealcastError('E_POOL', `the pool already holds ${POOL_KEYS_MAX} keys; remove unused ones with removeKey()`);
    }
    const handle = new PoolKeyHandle(this, this.#nextKeyId++, suite);
    this.#handles.add(handle);
    const installs = this.#liveSlots().map((slot) => {
      const copy = new Uint8Array(key);
      try {
        return this.#control(slot, { kind: 'addKey', requestId: 0, keyId: handle.id, suite, key: copy }, [copy.buffer]);
      } catch (error) {
        return Promise.reject(error);
      } finally {
        // Moved to the worker when postMessage succeeded (the copy is then detached and empty);
        // zeroed here when it did not.
        if (copy.byteLength > 0) copy.fill(0);
      }
    });
    const outcomes = await Promise.allSettled(installs);
    const failure = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failure !== undefined || this.#state !== 'open') {
      this.#dropHandle(handle);
      if (this.#state === 'open') await this.#removeEverywhere(handle);
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
    this.#dropHandle(handle);
    await this.#removeEverywhere(handle);
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
      requireAttached(batch);
      validateBatch(batch, this.constants);
      this.#requireCapacity();
      const { slab, layout, nonces, count } = batch;
      return this.#submit(
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
      requireAttached(batch, status);
      validateBatch(batch, this.constants, status);
      this.#requireCapacity();
      const { slab, layout, nonces, count } = batch;
      return this.#submit(
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
    this.#capacityWaiter?.reject(closedError());
    this.#capacityWaiter = null;
    for (const handle of this.#handles) handle.markRemoved();
    this.#handles.clear();
    const deadlineMs = Date.now() + this.#closeTimeoutMs;
    const drained = await this.#waitDrained(deadlineMs);
    if (drained) {
      // Each worker handles 'close' after everything posted before it, so no schedule is
      // destroyed under a running batch.
      const destroys = this.#liveSlots().map((slot) => this.#control(slot, { kind: 'close', requestId: 0 }).catch(() => {}));
      await withDeadline(Promise.all(destroys), deadlineMs);
    }
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
    await Promise.all(this.#slots.map((slot) => slot.exited));
    this.#state = 'closed';
  }

  /** Resolves true once nothing is in flight, or false at the deadline. */
  async #waitDrained(deadlineMs: number): Promise<boolean> {
    if (this.#order.length === 0) return true;
    const drained = new Promise<true>((resolve) => {
      this.#drainWaiter = () => resolve(true);
    });
    const result = await withDeadline(drained, deadlineMs);
    this.#drainWaiter = null;
    return result === true;
  }

  #submit(request: TaskRequest, views: ArrayBufferView[]): Promise<PacketBatch | PoolOpenResult> {
    const slot = this.#leastBusySlot();
    request.taskId = this.#nextTaskId++;
    try {
      slot.worker.postMessage(request, transferListFor(views));
    } catch (error) {
      // Nothing was moved: postMessage checks the whole message before detaching anything.
      throw new TypeError(
        `the batch could not be posted to a worker (a buffer may be detached because it is still in flight in another call): ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
    return new Promise((resolve, reject) => {
      const task: Task = { id: request.taskId, slot, request, outcome: null, resolve, reject };
      slot.tasks.set(task.id, task);
      this.#order.push(task);
    });
  }

  #onMessage(slot: WorkerSlot, message: FromWorker): void {
    switch (message.kind) {
      case 'sealed':
      case 'opened':
      case 'taskFailed': {
        const task = slot.tasks.get(message.taskId);
        if (task === undefined) return;
        this.#settle(task, this.#outcomeOf(task.request, message));
        return;
      }
      case 'controlDone':
      case 'controlFailed': {
        const control = slot.controls.get(message.requestId);
        if (control === undefined) return;
        slot.controls.delete(message.requestId);
        if (message.kind === 'controlDone') control.resolve();
        else control.reject(deserializeError(message.error));
        return;
      }
      default:
        return;
    }
  }

  /** Builds what the caller receives: its own views where memory is shared, returned ones otherwise. */
  #outcomeOf(request: TaskRequest, message: FromWorker): Outcome {
    if (message.kind === 'taskFailed') return { ok: false, error: deserializeError(message.error) };
    const pick = <T extends ArrayBufferView>(sent: T, returned: T): T => (isShared(sent) ? sent : returned);
    if (message.kind !== 'sealed' && message.kind !== 'opened') {
      return { ok: false, error: new SealcastError('E_INTERNAL', `unexpected reply ${message.kind} to a task`) };
    }
    const batch: PacketBatch = {
      slab: pick(request.slab, message.slab),
      layout: pick(request.layout, message.layout),
      nonces: pick(request.nonces, message.nonces),
      count: request.count,
    };
    if (message.kind === 'sealed') return { ok: true, value: batch };
    const status = request.kind === 'open' ? pick(request.status, message.status) : message.status;
    return { ok: true, value: { batch, status, authenticated: message.authenticated } };
  }

  #settle(task: Task, outcome: Outcome): void {
    if (task.outcome !== null) return;
    task.slot.tasks.delete(task.id);
    task.outcome = outcome;
    this.#heldForOrder++;
    this.#deliver();
  }

  /** Delivers finished tasks from the head of the submission order until an unfinished one. */
  #deliver(): void {
    while (this.#order.length > 0 && this.#order[0].outcome !== null) {
      const task = this.#order.shift()!;
      this.#heldForOrder--;
      const outcome = task.outcome!;
      if (outcome.ok) task.resolve(outcome.value);
      else task.reject(outcome.error);
    }
    if (this.#capacityWaiter !== null && this.hasCapacity) {
      this.#capacityWaiter.resolve();
      this.#capacityWaiter = null;
    }
    if (this.#order.length === 0 && this.#drainWaiter !== null) this.#drainWaiter();
  }

  #onExit(slot: WorkerSlot, exitCode: number): void {
    slot.alive = false;
    const error =
      this.#state === 'open'
        ? new SealcastError(
            'E_POOL',
            `pool worker ${slot.index} exited unexpectedly (exit code ${exitCode}${
              slot.lastError === null ? '' : `: ${slot.lastError.message}`
            }); its batches were lost`,
            { cause: slot.lastError ?? undefined },
          )
        : closedError();
    for (const control of slot.controls.values()) control.reject(error);
    slot.controls.clear();
    // Settle in submission order so that delivery sees every lost task at once.
    for (const task of [...slot.tasks.values()].sort((a, b) => a.id - b.id)) {
      this.#settle(task, { ok: false, error });
    }
    if (this.#state === 'open' && this.liveThreads === 0 && this.#capacityWaiter !== null) {
      this.#capacityWaiter.reject(noWorkersError());
      this.#capacityWaiter = null;
    }
  }

  #control(slot: WorkerSlot, request: ControlRequest, transfer: ArrayBuffer[] = []): Promise<void> {
    request.requestId = this.#nextRequestId++;
    const requestId = request.requestId;
    slot.worker.postMessage(request, transfer);
    return new Promise<void>((resolve, reject) => {
      slot.controls.set(requestId, { resolve, reject });
    });
  }

  async #removeEverywhere(handle: PoolKeyHandle): Promise<void> {
    // A worker that died took its schedules with it, so its failure to answer is not an error.
    const removals = this.#liveSlots().map((slot) =>
      this.#control(slot, { kind: 'removeKey', requestId: 0, keyId: handle.id }).catch(() => {}),
    );
    await Promise.all(removals);
  }

  #dropHandle(handle: PoolKeyHandle): void {
    handle.markRemoved();
    this.#handles.delete(handle);
  }

  #liveSlots(): WorkerSlot[] {
    return this.#slots.filter((slot) => slot.alive);
  }

  #leastBusySlot(): WorkerSlot {
    let best: WorkerSlot | null = null;
    for (const slot of this.#slots) {
      if (slot.alive && (best === null || slot.tasks.size < best.tasks.size)) best = slot;
    }
    if (best === null) throw noWorkersError();
    return best;
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

  #requireCapacity(): void {
    if (this.#order.length >= this.queueDepthMax) {
      throw new SealcastError(
        'E_POOL',
        `the pool queue is full (${this.#order.length} of ${this.queueDepthMax} batches in flight); await pool.whenCapacity() before submitting`,
      );
    }
  }
}

interface StartingWorker {
  slot: WorkerSlot;
  ready: Promise<ReadyReply>;
  stop(): Promise<void>;
}

function startWorker(index: number, workerUrl: URL, startData: WorkerStartData, startTimeoutMs: number): StartingWorker {
  const worker = new Worker(workerUrl, { workerData: startData });
  let markExited!: () => void;
  const exited = new Promise<void>((resolve) => {
    markExited = resolve;
  });
  const slot: WorkerSlot = {
    index,
    worker,
    tasks: new Map(),
    controls: new Map(),
    alive: true,
    lastError: null,
    exited,
  };
  // Attached for the worker's whole life: an 'error' event without a listener would be thrown
  // in the main thread, and the pool reports the last one when the thread exits.
  worker.on('error', (error: Error) => {
    slot.lastError = error;
  });
  worker.once('exit', () => {
    slot.alive = false;
    markExited();
  });
  const ready = new Promise<ReadyReply>((resolve, reject) => {
    const timer = setTimeout(() => {
      finish();
      reject(new SealcastError('E_POOL', `pool worker ${index} did not report ready within ${startTimeoutMs} ms`));
    }, startTimeoutMs);
    const onMessage = (message: FromWorker): void => {
      finish();
      if (message.kind === 'ready') resolve(message);
      else if (message.kind === 'startFailed') reject(deserializeError(message.error));
      else reject(new SealcastError('E_POOL', `pool worker ${index} sent ${message.kind} before ready`));
    };
    const onExit = (exitCode: number): void => {
      finish();
      const { lastError } = slot;
      reject(
        new SealcastError(
          'E_POOL',
          `pool worker ${index} failed to start (exit code ${exitCode}${lastError === null ? '' : `: ${lastError.message}`})`,
          { cause: lastError ?? undefined },
        ),
      );
    };
    const finish = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('exit', onExit);
  });
  return {
    slot,
    ready,
    async stop() {
      await worker.terminate();
      await exited;
    },
  };
}

/**
 * The likeliest misuse of a pool is to submit views that were moved away: those of a batch
 * still in flight, or the originals of a delivered batch instead of the returned ones. Their
 * buffers are detached (empty), which validation alone would report as a confusing size error.
 */
function requireAttached(batch: unknown, status?: unknown): void {
  if (typeof batch !== 'object' || batch === null) return;
  const { slab, layout, nonces } = batch as Record<string, unknown>;
  const views: Array<[string, unknown]> = [
    ['batch.slab', slab],
    ['batch.layout', layout],
    ['batch.nonces', nonces],
    ['status', status],
  ];
  for (const [name, view] of views) {
    if (ArrayBuffer.isView(view) && !isShared(view) && isDetached(view.buffer as ArrayBuffer)) {
      throw new TypeError(
        `${name} is detached: its buffer was moved to a pool worker. Submit the views a delivered batch returns, not the originals, and never a batch that is still in flight`,
      );
    }
  }
}

/** Node 20 lacks ArrayBuffer.prototype.detached; constructing a view is what fails on one. */
function isDetached(buffer: ArrayBuffer): boolean {
  if (buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

function optionalInteger(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** Resolves with the promise's value, or with undefined once `deadlineMs` (epoch ms) passes. */
async function withDeadline<T>(promise: Promise<T>, deadlineMs: number): Promise<T | undefined> {
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

function closedError(): SealcastError {
  return new SealcastError('E_CLOSED', 'the pool is closed');
}

function noWorkersError(): SealcastError {
  return new SealcastError('E_POOL', 'every pool worker has exited; close this pool and create a new one');
}
