// Handing items to the pool's worker threads and collecting their completions. Each item is
// numbered in the worker's control block and the worker woken with Atomics.notify; the pool
// keeps one Atomics.waitAsync per busy worker on its `completed` word and, when it fires,
// settles whatever every worker has completed and delivers what the submission order allows.
// A worker that dies takes its items with it: they fail with E_POOL and the others go on.

import type { PacketBatch } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import { controlOutcome, taskOutcome } from './completion.js';
import type { PoolOpenResult, Task } from './items.js';
import type { OrderedDelivery } from './ordered-delivery.js';
import { closedError, noWorkersError } from './pool-errors.js';
import { CONTROL_COMPLETED, CONTROL_SUBMITTED, transferListFor, type ControlRequest, type TaskRequest } from './protocol.js';
import { allFitRingEntry, postRingEntry } from './ring-entry.js';
import { WorkerChoice } from './worker-choice.js';
import { closeSlotPorts, type WorkerSlot } from './worker-slot.js';

/** Atomics.waitAsync exists in Node 20 (V8 11), but the ES2022 lib this project compiles against lacks its type. */
const atomicsWaitAsync = Atomics as unknown as {
  waitAsync(
    typedArray: Int32Array,
    index: number,
    value: number,
  ): { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
};

export class PoolWorkers {
  readonly #slots: WorkerSlot[];
  readonly #delivery: OrderedDelivery;
  readonly #poolIsOpen: () => boolean;
  readonly #choice = new WorkerChoice();
  #nextTaskId = 1;
  #nextRequestId = 1;

  /**
   * Takes over started workers. Finished tasks go to `delivery`; `poolIsOpen` tells an
   * unexpected exit (E_POOL) from one close() asked for (E_CLOSED).
   */
  constructor(slots: WorkerSlot[], delivery: OrderedDelivery, poolIsOpen: () => boolean) {
    this.#slots = slots;
    this.#delivery = delivery;
    this.#poolIsOpen = poolIsOpen;
    for (const slot of slots) {
      slot.worker.on('exit', (exitCode: number) => this.#onExit(slot, exitCode));
    }
  }

  /** Worker threads that have not exited. */
  get liveThreads(): number {
    let live = 0;
    for (const slot of this.#slots) if (slot.alive) live++;
    return live;
  }

  /** How many shared buffers each worker currently references (in flight or cached). */
  get sharedBuffersHeld(): number[] {
    return this.#slots.map((slot) => slot.buffers.size);
  }

  liveSlots(): WorkerSlot[] {
    return this.#slots.filter((slot) => slot.alive);
  }

  /**
   * Gives a seal or open to a worker, as a ring entry when every view is in shared memory and
   * as a message otherwise, and queues it for ordered delivery. Returns the task's own promise.
   */
  submit(request: TaskRequest, views: ArrayBufferView[]): Promise<PacketBatch | PoolOpenResult> {
    const slot = this.#choice.forSlab(this.#slots, request.slab);
    request.taskId = this.#nextTaskId++;
    let entry = -1;
    if (allFitRingEntry(views)) {
      entry = postRingEntry(slot, request);
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
    this.#delivery.push(task);
    this.#publish(slot);
    return promise;
  }

  /** Gives a control request to one worker; it settles when the worker has handled it. */
  control(slot: WorkerSlot, request: ControlRequest, transfer: ArrayBuffer[] = []): Promise<void> {
    request.requestId = this.#nextRequestId++;
    const requestId = request.requestId;
    slot.requests.postMessage(request, transfer);
    return new Promise<void>((resolve, reject) => {
      slot.items.push({ kind: 'control', requestId, resolve, reject });
      this.#publish(slot);
    });
  }

  /** Terminates every thread and resolves once all of them have exited. */
  async terminate(): Promise<void> {
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
    await Promise.all(this.#slots.map((slot) => slot.exited));
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
    this.#delivery.deliver();
    this.#watch(slot);
  }

  /** Settles every item `slot` completed, in order, without delivering. */
  #collectFrom(slot: WorkerSlot): void {
    const completed = Atomics.load(slot.control, CONTROL_COMPLETED);
    while (slot.completed !== completed && slot.items.length > 0) {
      const item = slot.items.shift()!;
      slot.completed = (slot.completed + 1) | 0;
      if (item.kind === 'control') {
        const error = controlOutcome(slot);
        if (error === null) item.resolve();
        else item.reject(error);
        continue;
      }
      slot.tasks--;
      this.#delivery.settle(item, taskOutcome(slot, item));
    }
  }

  #onExit(slot: WorkerSlot, exitCode: number): void {
    slot.alive = false;
    // Whatever the thread finished before it died is delivered normally.
    this.#collect(slot);
    const error = this.#poolIsOpen()
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
      else this.#delivery.settle(item, { ok: false, error });
    }
    slot.items.length = 0;
    slot.tasks = 0;
    slot.buffers.clear();
    closeSlotPorts(slot);
    // Releases the pool's own pending waitAsync on this block, which nothing else would wake.
    Atomics.notify(slot.control, CONTROL_COMPLETED);
    this.#delivery.deliver();
    if (this.#poolIsOpen() && this.liveThreads === 0) this.#delivery.rejectCapacityWaiter(noWorkersError());
  }
}
