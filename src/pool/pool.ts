// A pool of worker threads that seal and open packet batches in parallel, for the stages of the
// data plane whose crypto would otherwise saturate the main thread. Batches never get copied:
// slabs over SharedArrayBuffer are shared with the worker, ordinary buffers are moved there and
// back with transfer lists. Results come back in submission order, at most `queueDepthMax`
// batches are in flight, and close() leaves no thread behind. Work is handed over through a
// control block in shared memory (Atomics.wait in the worker, Atomics.waitAsync here) because
// message events cost as much as the crypto of a typical batch on a small machine.

import { availableParallelism } from 'node:os';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { BackendConstants, BackendName, PacketBatch, SuiteName } from '../crypto/backend.js';
import { isSuiteName } from '../crypto/backend.js';
import { backendPreferenceFromEnv, type BackendPreference } from '../crypto/load.js';
import { describe, requireUint8Array, validateBatch } from '../crypto/validate.js';
import { SealcastError } from '../errors.js';
import { BufferTable } from './buffer-table.js';
import {
  CONTROL_BUFFER_UPDATES,
  CONTROL_COMPLETED,
  CONTROL_HEADER_WORDS,
  CONTROL_SUBMITTED,
  ENTRY_AUTHENTICATED,
  ENTRY_COUNT,
  ENTRY_KEY_ID,
  ENTRY_KIND,
  ENTRY_KIND_OPEN,
  ENTRY_KIND_SEAL,
  ENTRY_LAYOUT,
  ENTRY_NONCES,
  ENTRY_RESULT,
  ENTRY_SLAB,
  ENTRY_STATUS,
  ENTRY_TASK_ID,
  ENTRY_WORDS,
  RESULT_OK,
  controlBlockBytes,
  writeEntryLabel,
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
/**
 * Default in-flight batches per thread. A worker that still has more than one batch queued
 * when it finishes one does not wake the main thread for it (see serve.ts), so with 4 per
 * thread the main thread wakes about once per two or three batches instead of once per batch,
 * which on a 2-core machine is worth about a tenth of the pool's speed-up at 1400-byte packets.
 */
export const POOL_BATCHES_PER_THREAD_DEFAULT = 4;
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
  readonly kind: 'task';
  readonly id: number;
  readonly slot: WorkerSlot;
  readonly request: TaskRequest;
  /** The ring entry's first word when the task went through shared memory, else -1. */
  readonly entry: number;
  outcome: Outcome | null;
  resolve(value: PacketBatch | PoolOpenResult): void;
  reject(error: Error): void;
}

interface Control {
  readonly kind: 'control';
  readonly requestId: number;
  resolve(): void;
  reject(error: Error): void;
}

/** What a worker was given, in the order it handles (and completes) items. */
type Item = Task | Control;

interface WorkerSlot {
  readonly index: number;
  readonly worker: Worker;
  readonly control: Int32Array;
  /** The same memory as `control`, for fields that hold unsigned values (offsets, lengths). */
  readonly entries: Uint32Array;
  readonly ringSlots: number;
  readonly requests: MessagePort;
  readonly replies: MessagePort;
  readonly buffers: BufferTable;
  readonly bufferUpdates: MessagePort;
  /** Items given to this worker and not yet completed, oldest first. */
  readonly items: Item[];
  /** Tasks among `items`: how busy the worker is. */
  tasks: number;
  /** Items numbered so far, as the CONTROL_SUBMITTED word (modulo 2^32) and as a plain count. */
  submitted: number;
  itemsPosted: number;
  /** Items whose completion the pool has handled, modulo 2^32. */
  completed: number;
  /** Ring entries written so far; the next one goes to `ringPosted % ringSlots`. */
  ringPosted: number;
  /** True while an Atomics.waitAsync on CONTROL_COMPLETED is pending. */
  watching: boolean;
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

  readonly #slots: WorkerSlot[];
  readonly #closeTimeoutMs: number;
  /** Submitted and undelivered tasks, oldest first: at most queueDepthMax of them. */
  #order: Task[] = [];
  #heldForOrder = 0;
  #nextTaskId = 1;
  /** The worker each shared slab last went to; weak, so that it pins no memory. */
  readonly #homes = new WeakMap<SharedArrayBuffer, WorkerSlot>();
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

    // Every task of one worker may be a ring entry, and a worker never has more than the pool's
    // in-flight bound, so that many entries always suffice.
    const starts = Array.from({ length: threads }, (_, index) => startWorker(index, workerUrl, backend, queueDepthMax, startTimeoutMs));
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
    let live = 0;
    for (const slot of this.#slots) if (slot.alive) live++;
    return live;
  }

  /**
   * How many shared buffers each worker currently references (in flight or cached).
   * @internal For tests of the buffer table's bounds.
   */
  get sharedBuffersHeld(): number[] {
    return this.#slots.map((slot) => slot.buffers.size);
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
      if (!this.#checkedForRing(batch)) {
        requireAttached(batch);
        validateBatch(batch, this.constants);
      }
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
      if (!this.#checkedForRing(batch, status)) {
        requireAttached(batch, status);
        validateBatch(batch, this.constants, status);
      }
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
    const slot = this.#slotFor(request.slab);
    request.taskId = this.#nextTaskId++;
    let entry = -1;
    if (allFitRingEntry(views)) {
      entry = CONTROL_HEADER_WORDS + (slot.ringPosted % slot.ringSlots) * ENTRY_WORDS;
      writeEntry(slot, entry, request);
      slot.ringPosted++;
    } else {
      try {
        slot.requests.postMessage(request, transferListFor(views));
      } catch (error) {
        // Nothing was moved: postMessage checks the whole message before detaching anything.
        throw new TypeError(
          `the batch could not be posted to a worker (a buffer may be detached because it is still in flight in another call): ${
            error instanceof Error ? error.message : String(error)
          }`,
        );
      }
    }
    let task!: Task;
    const promise = new Promise<PacketBatch | PoolOpenResult>((resolve, reject) => {
      task = { kind: 'task', id: request.taskId, slot, request, entry, outcome: null, resolve, reject };
    });
    slot.items.push(task);
    slot.tasks++;
    this.#order.push(task);
    this.#publish(slot);
    return promise;
  }

  /** Numbers the item just queued for `slot`, wakes the worker, and makes sure its completion is watched. */
  #publish(slot: WorkerSlot): void {
    slot.itemsPosted++;
    slot.submitted = (slot.submitted + 1) | 0;
    Atomics.store(slot.control, CONTROL_SUBMITTED, slot.submitted);
    Atomics.notify(slot.control, CONTROL_SUBMITTED);
    this.#watch(slot);
  }

  /**
   * Keeps one Atomics.waitAsync pending on the worker's `completed` word while it has work.
   * One wait serves any number of items: #collect handles everything completed by then.
   */
  #watch(slot: WorkerSlot): void {
    if (slot.watching || !slot.alive || slot.items.length === 0) return;
    slot.watching = true;
    const collect = (): void => {
      slot.watching = false;
      // Every wake-up looks at every worker: a worker with a long backlog does not wake the
      // pool for each completion (see serve.ts), so this is where its results are picked up and
      // its backlog refilled, and one wake-up serves all workers.
      for (const other of this.#slots) {
        if (other !== slot) this.#collectFrom(other);
      }
      this.#collect(slot);
    };
    const waited = atomicsWaitAsync.waitAsync(slot.control, CONTROL_COMPLETED, slot.completed);
    if (waited.async) void waited.value.then(collect);
    else queueMicrotask(collect);
  }

  /** Handles every item the worker completed, in order, then delivers what the order allows. */
  #collect(slot: WorkerSlot): void {
    this.#collectFrom(slot);
    this.#deliver();
    this.#watch(slot);
  }

  /** Settles every item `slot` completed, in order, without delivering. */
  #collectFrom(slot: WorkerSlot): void {
    const completed = Atomics.load(slot.control, CONTROL_COMPLETED);
    while (slot.completed !== completed && slot.items.length > 0) {
      const item = slot.items.shift()!;
      slot.completed = (slot.completed + 1) | 0;
      if (item.kind === 'control') {
        const reply = nextReply(slot);
        if (reply.kind === 'controlDone') item.resolve();
        else if (reply.kind === 'controlFailed') item.reject(deserializeError(reply.error));
        else item.reject(unexpectedReply(reply));
        continue;
      }
      slot.tasks--;
      this.#settle(item, this.#outcomeOf(slot, item));
    }
  }

  /** Builds what the caller receives: its own views where memory is shared, returned ones otherwise. */
  #outcomeOf(slot: WorkerSlot, task: Task): Outcome {
    const { request } = task;
    if (task.entry >= 0) releaseEntryBuffers(slot, task.entry, request.kind);
    if (task.entry >= 0 && slot.entries[task.entry + ENTRY_RESULT] === RESULT_OK) {
      const batch: PacketBatch = { slab: request.slab, layout: request.layout, nonces: request.nonces, count: request.count };
      if (request.kind === 'seal') return { ok: true, value: batch };
      return { ok: true, value: { batch, status: request.status, authenticated: slot.entries[task.entry + ENTRY_AUTHENTICATED] } };
    }
    const message = nextReply(slot);
    if (message.kind === 'taskFailed') return { ok: false, error: deserializeError(message.error) };
    if (message.kind !== 'sealed' && message.kind !== 'opened') return { ok: false, error: unexpectedReply(message) };
    const pick = <T extends ArrayBufferView>(sent: T, returned: T): T => (isShared(sent) ? sent : returned);
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
    task.outcome = outcome;
    this.#heldForOrder++;
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
    // Whatever the thread finished before it died is delivered normally.
    this.#collect(slot);
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
    // Items are in submission order, so delivery sees every lost task at once.
    for (const item of slot.items) {
      if (item.kind === 'control') item.reject(error);
      else this.#settle(item, { ok: false, error });
    }
    slot.items.length = 0;
    slot.tasks = 0;
    slot.buffers.clear();
    closeSlotPorts(slot);
    // Releases the pool's own pending waitAsync on this block, which nothing else would wake.
    Atomics.notify(slot.control, CONTROL_COMPLETED);
    this.#deliver();
    if (this.#state === 'open' && this.liveThreads === 0 && this.#capacityWaiter !== null) {
      this.#capacityWaiter.reject(noWorkersError());
      this.#capacityWaiter = null;
    }
  }

  #control(slot: WorkerSlot, request: ControlRequest, transfer: ArrayBuffer[] = []): Promise<void> {
    request.requestId = this.#nextRequestId++;
    const requestId = request.requestId;
    slot.requests.postMessage(request, transfer);
    return new Promise<void>((resolve, reject) => {
      slot.items.push({ kind: 'control', requestId, resolve, reject });
      this.#publish(slot);
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

  /**
   * The worker that last handled `slab`'s shared memory when it is no busier than the least
   * busy one, else the least busy one. A slab recycled to the same worker may still be in that
   * core's cache; balance comes first, because an idle worker costs far more than a cache miss.
   */
  #slotFor(slab: Uint8Array): WorkerSlot {
    const least = this.#leastBusySlot();
    if (!isShared(slab)) return least;
    const home = this.#homes.get(slab.buffer as SharedArrayBuffer);
    const slot = home !== undefined && home.alive && home.tasks <= least.tasks ? home : least;
    if (slot !== home) this.#homes.set(slab.buffer as SharedArrayBuffer, slot);
    return slot;
  }

  #leastBusySlot(): WorkerSlot {
    let best: WorkerSlot | null = null;
    for (const slot of this.#slots) {
      if (slot.alive && (best === null || slot.tasks < best.tasks)) best = slot;
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

  /**
   * True when `batch` (and `status`) can go to a worker as a ring entry without the full
   * validation here: every view is a typed array of the right kind over shared memory and
   * `count` is within the layout, exactly as validateBatch checks them first. The worker's
   * backend then runs the same validateBatch before it touches a byte, so a bad slot layout
   * still rejects with the very TypeError or RangeError the single-thread path throws, only in
   * the batch's turn rather than at once; nothing moved, so nothing is lost. Checking the
   * slots twice would cost the main thread a few microseconds per batch, a tenth of what a
   * handoff costs in all. Anything else returns false, and the caller validates fully here.
   */
  #checkedForRing(batch: PacketBatch, status?: Uint8Array): boolean {
    if (typeof batch !== 'object' || batch === null) return false;
    const { slab, layout, nonces, count } = batch;
    if (!(slab instanceof Uint8Array) || !(layout instanceof Uint32Array) || !(nonces instanceof Uint8Array)) return false;
    if (status !== undefined && !(status instanceof Uint8Array)) return false;
    if (!fitsRingEntry(slab) || !fitsRingEntry(layout) || !fitsRingEntry(nonces) || (status !== undefined && !fitsRingEntry(status))) {
      return false;
    }
    return Number.isInteger(count) && count >= 0 && count <= Math.floor(layout.length / this.constants.layoutWords);
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

function startWorker(
  index: number,
  workerUrl: URL,
  backend: BackendPreference,
  ringSlots: number,
  startTimeoutMs: number,
): StartingWorker {
  const controlMemory = new SharedArrayBuffer(controlBlockBytes(ringSlots));
  const control = new Int32Array(controlMemory);
  const requests = new MessageChannel();
  const replies = new MessageChannel();
  const bufferUpdates = new MessageChannel();
  const startData: WorkerStartData = {
    backend,
    control: controlMemory,
    ringSlots,
    requests: requests.port2,
    replies: replies.port1,
    bufferUpdates: bufferUpdates.port2,
  };
  const worker = new Worker(workerUrl, {
    workerData: startData,
    transferList: [requests.port2, replies.port1, bufferUpdates.port2],
  });
  let markExited!: () => void;
  const exited = new Promise<void>((resolve) => {
    markExited = resolve;
  });
  const slot: WorkerSlot = {
    index,
    worker,
    control,
    entries: new Uint32Array(controlMemory),
    ringSlots,
    requests: requests.port1,
    replies: replies.port2,
    buffers: new BufferTable(bufferUpdates.port1, control, CONTROL_BUFFER_UPDATES),
    bufferUpdates: bufferUpdates.port1,
    items: [],
    tasks: 0,
    submitted: 0,
    itemsPosted: 0,
    completed: 0,
    ringPosted: 0,
    watching: false,
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
      closeSlotPorts(slot);
    },
  };
}

/** Atomics.waitAsync exists in Node 20 (V8 11), but the ES2022 lib this project compiles against lacks its type. */
const atomicsWaitAsync = Atomics as unknown as {
  waitAsync(
    typedArray: Int32Array,
    index: number,
    value: number,
  ): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
};

/**
 * True when `view` is over shared memory small enough that its offset and length fit the
 * 32-bit words of a ring entry; a larger buffer goes by message instead of being cut short.
 */
function fitsRingEntry(view: ArrayBufferView): boolean {
  return isShared(view) && view.buffer.byteLength <= 0xffff_ffff;
}

function allFitRingEntry(views: readonly ArrayBufferView[]): boolean {
  for (const view of views) if (!fitsRingEntry(view)) return false;
  return true;
}

/**
 * Describes a task whose views all live in shared memory as plain integers in ring entry
 * `entry`, taking one buffer-table use per view. The label goes last: it is what
 * tells the worker that this entry is the next item (the worker reads it only after
 * CONTROL_SUBMITTED says the item exists, and Atomics.store orders the words written before it).
 */
function writeEntry(slot: WorkerSlot, entry: number, request: TaskRequest): void {
  const words = slot.entries;
  words[entry + ENTRY_KIND] = request.kind === 'seal' ? ENTRY_KIND_SEAL : ENTRY_KIND_OPEN;
  words[entry + ENTRY_TASK_ID] = request.taskId;
  words[entry + ENTRY_KEY_ID] = request.keyId;
  words[entry + ENTRY_COUNT] = request.count;
  words[entry + ENTRY_RESULT] = 0;
  words[entry + ENTRY_AUTHENTICATED] = 0;
  describeView(slot, entry + ENTRY_SLAB, request.slab);
  describeView(slot, entry + ENTRY_LAYOUT, request.layout);
  describeView(slot, entry + ENTRY_NONCES, request.nonces);
  if (request.kind === 'open') describeView(slot, entry + ENTRY_STATUS, request.status);
  writeEntryLabel(words, entry, slot.itemsPosted);
}

function describeView(slot: WorkerSlot, field: number, view: Uint8Array | Uint32Array): void {
  const words = slot.entries;
  words[field] = slot.buffers.acquire(view.buffer as SharedArrayBuffer);
  words[field + 1] = view.byteOffset;
  words[field + 2] = view.length;
}

/** Ends the buffer-table uses writeEntry took for the entry; the worker is done with it. */
function releaseEntryBuffers(slot: WorkerSlot, entry: number, kind: TaskRequest['kind']): void {
  const words = slot.entries;
  slot.buffers.release(words[entry + ENTRY_SLAB]);
  slot.buffers.release(words[entry + ENTRY_LAYOUT]);
  slot.buffers.release(words[entry + ENTRY_NONCES]);
  if (kind === 'open') slot.buffers.release(words[entry + ENTRY_STATUS]);
}

/**
 * The worker's reply to the item just completed. It posts the reply before it raises
 * `completed`, so a missing or unreadable one is a bug, reported as E_INTERNAL.
 */
function nextReply(slot: WorkerSlot): FromWorker {
  let received: { message: unknown } | undefined;
  try {
    received = receiveMessageOnPort(slot.replies);
  } catch (error) {
    return {
      kind: 'taskFailed',
      taskId: 0,
      error: { name: 'Error', message: `a reply from pool worker ${slot.index} could not be read: ${error instanceof Error ? error.message : String(error)}` },
    };
  }
  if (received === undefined) {
    return { kind: 'taskFailed', taskId: 0, error: { name: 'Error', message: `pool worker ${slot.index} completed an item without its reply` } };
  }
  return received.message as FromWorker;
}

function unexpectedReply(message: FromWorker): SealcastError {
  return new SealcastError('E_INTERNAL', `unexpected reply ${message.kind} from a pool worker`);
}

function closeSlotPorts(slot: WorkerSlot): void {
  slot.requests.close();
  slot.replies.close();
  slot.bufferUpdates.close();
}

/**
 * The likeliest misuse of a pool is to submit views that were moved away: those of a batch
 * still in flight, or the originals of a delivered batch instead of the returned ones. Their
 * buffers are detached (empty), which validation alone would report as a confusing size error.
 */
function requireAttached(batch: unknown, status?: unknown): void {
  if (typeof batch !== 'object' || batch === null) return;
  const { slab, layout, nonces } = batch as Record<string, unknown>;
  requireViewAttached(slab, 'batch.slab');
  requireViewAttached(layout, 'batch.layout');
  requireViewAttached(nonces, 'batch.nonces');
  requireViewAttached(status, 'status');
}

function requireViewAttached(view: unknown, name: string): void {
  if (ArrayBuffer.isView(view) && !isShared(view) && isDetached(view.buffer as ArrayBuffer)) {
    throw new TypeError(
      `${name} is detached: its buffer was moved to a pool worker. Submit the views a delivered batch returns, not the originals, and never a batch that is still in flight`,
    );
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
