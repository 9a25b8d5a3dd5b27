// The body of a pool worker thread: load the backend, report ready, then seal and open batches
// in place with the key schedules the pool installs. Items (tasks and control requests) are
// handled strictly in the order the pool numbered them, so a key removal or close never
// overtakes a batch submitted before it. See WorkerStartData for how items arrive.

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { AeadKey, CryptoBackend, PacketBatch } from '../crypto/backend.js';
import { loadBackend } from '../crypto/load.js';
import { SealcastError } from '../errors.js';
import {
  CONTROL_BUFFER_UPDATES,
  CONTROL_COMPLETED,
  CONTROL_HEADER_WORDS,
  CONTROL_SUBMITTED,
  ENTRY_AUTHENTICATED,
  ENTRY_COUNT,
  ENTRY_KEY_ID,
  ENTRY_KIND,
  ENTRY_KIND_SEAL,
  ENTRY_LAYOUT,
  ENTRY_NONCES,
  ENTRY_RESULT,
  ENTRY_SLAB,
  ENTRY_STATUS,
  ENTRY_TASK_ID,
  ENTRY_WORDS,
  RESULT_OK,
  RESULT_REPLIED,
  entryIsItem,
  serializeError,
  transferListFor,
  type BufferUpdate,
  type ControlRequest,
  type FromWorker,
  type TaskRequest,
  type ToWorker,
  type WorkerStartData,
} from './protocol.js';

/**
 * Test seams for fixture workers; the production entry (worker.ts) passes none.
 * @internal
 */
export interface WorkerHooks {
  /**
   * Runs before a batch is handed to the backend. It may mutate the request, throw (the task
   * fails with that error) or return a promise (later items wait for it).
   */
  beforeTask?(task: TaskRequest): void | Promise<void>;
}

export async function serveWorker(port: MessagePort, start: WorkerStartData, hooks: WorkerHooks = {}): Promise<void> {
  let backend: CryptoBackend;
  try {
    backend = await loadBackend(start.backend);
  } catch (error) {
    port.postMessage({ kind: 'startFailed', error: serializeError(error) } satisfies FromWorker);
    return;
  }
  port.postMessage({
    kind: 'ready',
    backend: backend.name,
    suites: [...backend.suites],
    constants: { ...backend.constants },
  } satisfies FromWorker);
  await new ItemLoop(start, backend, hooks).run();
}

/** See ItemLoop.run: how many items may still wait in a worker when it skips waking the pool. */
const NOTIFY_BACKLOG_MAX = 1;

class ItemLoop {
  readonly #control: Int32Array;
  readonly #entries: Uint32Array;
  readonly #ringSlots: number;
  readonly #start: WorkerStartData;
  readonly #backend: CryptoBackend;
  readonly #hooks: WorkerHooks;
  readonly #keys = new Map<number, AeadKey>();
  /** Shared buffers the pool named by id; the pool bounds how many it keeps here. */
  readonly #buffers: Array<SharedArrayBuffer | null> = [];
  /** Items handled so far, as the CONTROL_COMPLETED word (modulo 2^32) and as a plain count. */
  #processed = 0;
  #itemsDone = 0;
  #ringTaken = 0;
  #bufferUpdatesApplied = 0;

  constructor(start: WorkerStartData, backend: CryptoBackend, hooks: WorkerHooks) {
    this.#start = start;
    this.#control = new Int32Array(start.control);
    this.#entries = new Uint32Array(start.control);
    this.#ringSlots = start.ringSlots;
    this.#backend = backend;
    this.#hooks = hooks;
  }

  /**
   * Never returns: the pool ends this thread with terminate(). While idle the thread sleeps in
   * Atomics.wait (which terminate() interrupts); it returns to its event loop only while a test
   * hook awaits something.
   */
  async run(): Promise<void> {
    const control = this.#control;
    for (;;) {
      if (Atomics.load(control, CONTROL_SUBMITTED) === this.#processed) {
        Atomics.wait(control, CONTROL_SUBMITTED, this.#processed);
        continue;
      }
      const entry = CONTROL_HEADER_WORDS + (this.#ringTaken % this.#ringSlots) * ENTRY_WORDS;
      if (entryIsItem(this.#entries, entry, this.#itemsDone)) {
        this.#ringTaken++;
        const pending = this.#runEntry(entry);
        if (pending !== undefined) await pending;
      } else {
        const received = receiveMessageOnPort(this.#start.requests);
        if (received === undefined) {
          // The pool posts the message before it raises `submitted`, so this cannot happen.
          throw new SealcastError('E_INTERNAL', `pool worker found no request for item ${this.#processed}`);
        }
        const message = received.message as ToWorker;
        if (message.kind === 'seal' || message.kind === 'open') await this.#runTask(message);
        else this.#runControl(message);
      }
      this.#itemsDone++;
      this.#processed = (this.#processed + 1) | 0;
      Atomics.store(control, CONTROL_COMPLETED, this.#processed);
      // Waking the pool's thread costs both threads several microseconds, as much as the rest of
      // the handoff together. While this worker still has more than NOTIFY_BACKLOG_MAX items to
      // do it lets the completion be picked up at a later wake-up: it will wake the pool once
      // the backlog is down to that, which leaves the pool time to refill it before the worker
      // runs dry. A hooked worker (tests) may wait arbitrarily long inside an item, so it always
      // wakes the pool at once.
      const backlog = (Atomics.load(control, CONTROL_SUBMITTED) - this.#processed) | 0;
      if (backlog <= NOTIFY_BACKLOG_MAX || this.#hooks.beforeTask !== undefined) {
        Atomics.notify(control, CONTROL_COMPLETED);
      }
    }
  }

  /** Runs a ring entry; returns a promise only when a test hook returned one. */
  #runEntry(entry: number): Promise<void> | undefined {
    const words = this.#entries;
    let task: TaskRequest;
    try {
      this.#applyBufferUpdates();
      const taskId = words[entry + ENTRY_TASK_ID];
      const keyId = words[entry + ENTRY_KEY_ID];
      const count = words[entry + ENTRY_COUNT];
      const slab = new Uint8Array(this.#buffer(words, entry + ENTRY_SLAB), words[entry + ENTRY_SLAB + 1], words[entry + ENTRY_SLAB + 2]);
      const layout = new Uint32Array(this.#buffer(words, entry + ENTRY_LAYOUT), words[entry + ENTRY_LAYOUT + 1], words[entry + ENTRY_LAYOUT + 2]);
      const nonces = new Uint8Array(this.#buffer(words, entry + ENTRY_NONCES), words[entry + ENTRY_NONCES + 1], words[entry + ENTRY_NONCES + 2]);
      if (words[entry + ENTRY_KIND] === ENTRY_KIND_SEAL) {
        task = { kind: 'seal', taskId, keyId, slab, layout, nonces, count };
      } else {
        const status = new Uint8Array(this.#buffer(words, entry + ENTRY_STATUS), words[entry + ENTRY_STATUS + 1], words[entry + ENTRY_STATUS + 2]);
        task = { kind: 'open', taskId, keyId, slab, layout, nonces, count, status };
      }
    } catch (error) {
      this.#fail(entry, words[entry + ENTRY_TASK_ID], error);
      return undefined;
    }
    const finish = (): void => {
      try {
        const authenticated = this.#crypt(task);
        words[entry + ENTRY_AUTHENTICATED] = authenticated;
        words[entry + ENTRY_RESULT] = RESULT_OK;
      } catch (error) {
        this.#fail(entry, task.taskId, error);
      }
    };
    if (this.#hooks.beforeTask === undefined) {
      finish();
      return undefined;
    }
    let hooked: void | Promise<void>;
    try {
      hooked = this.#hooks.beforeTask(task);
    } catch (error) {
      this.#fail(entry, task.taskId, error);
      return undefined;
    }
    if (hooked === undefined) {
      finish();
      return undefined;
    }
    return hooked.then(finish, (error: unknown) => this.#fail(entry, task.taskId, error));
  }

  #fail(entry: number, taskId: number, error: unknown): void {
    this.#reply({ kind: 'taskFailed', taskId, error: serializeError(error) });
    this.#entries[entry + ENTRY_RESULT] = RESULT_REPLIED;
  }

  #buffer(words: Uint32Array, field: number): SharedArrayBuffer {
    const buffer = this.#buffers[words[field]];
    if (buffer === undefined || buffer === null) {
      throw new SealcastError('E_INTERNAL', `pool worker has no shared buffer ${words[field]}`);
    }
    return buffer;
  }

  #applyBufferUpdates(): void {
    const posted = Atomics.load(this.#control, CONTROL_BUFFER_UPDATES);
    while (this.#bufferUpdatesApplied !== posted) {
      const received = receiveMessageOnPort(this.#start.bufferUpdates);
      if (received === undefined) break;
      const update = received.message as BufferUpdate;
      this.#buffers[update.id] = update.buffer;
      this.#bufferUpdatesApplied = (this.#bufferUpdatesApplied + 1) | 0;
    }
  }

  /** Seals or opens the task's batch; returns how many slots authenticated (0 for seal). */
  #crypt(task: TaskRequest): number {
    const key = this.#keys.get(task.keyId);
    if (key === undefined) {
      throw new SealcastError('E_INTERNAL', `pool worker has no key schedule ${task.keyId} for ${task.kind} task ${task.taskId}`);
    }
    const batch: PacketBatch = { slab: task.slab, layout: task.layout, nonces: task.nonces, count: task.count };
    if (task.kind === 'seal') {
      key.sealBatch(batch);
      return 0;
    }
    return key.openBatch(batch, task.status);
  }

  /** A task that came as a message: its ordinary buffers go back with the reply. */
  async #runTask(task: TaskRequest): Promise<void> {
    try {
      if (this.#hooks.beforeTask !== undefined) await this.#hooks.beforeTask(task);
      const authenticated = this.#crypt(task);
      const batch = { slab: task.slab, layout: task.layout, nonces: task.nonces, count: task.count };
      if (task.kind === 'seal') {
        this.#reply({ kind: 'sealed', taskId: task.taskId, ...batch }, transferListFor([task.slab, task.layout, task.nonces]));
      } else {
        this.#reply(
          { kind: 'opened', taskId: task.taskId, ...batch, status: task.status, authenticated },
          transferListFor([task.slab, task.layout, task.nonces, task.status]),
        );
      }
    } catch (error) {
      this.#reply({ kind: 'taskFailed', taskId: task.taskId, error: serializeError(error) });
    }
  }

  #runControl(request: ControlRequest): void {
    const keys = this.#keys;
    try {
      switch (request.kind) {
        case 'addKey': {
          try {
            keys.get(request.keyId)?.destroy();
            keys.set(request.keyId, this.#backend.createKey(request.suite, request.key));
          } finally {
            // The backend keeps its own copy inside the key schedule; this one was ours alone.
            request.key.fill(0);
          }
          break;
        }
        case 'removeKey':
          keys.get(request.keyId)?.destroy();
          keys.delete(request.keyId);
          break;
        case 'close':
          for (const key of keys.values()) key.destroy();
          keys.clear();
          // The pool forgets its buffer table too; dropping ours lets that memory go at once.
          this.#buffers.length = 0;
          break;
      }
      this.#reply({ kind: 'controlDone', requestId: request.requestId });
    } catch (error) {
      this.#reply({ kind: 'controlFailed', requestId: request.requestId, error: serializeError(error) });
    }
  }

  #reply(message: FromWorker, transfer: ArrayBuffer[] = []): void {
    this.#start.replies.postMessage(message, transfer);
  }
}
