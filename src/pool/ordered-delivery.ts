// Delivery in submission order, and the waits that depend on it. Workers finish batches in any
// order; a finished task is held here until every earlier one is delivered, so promises settle
// in the order seal() and open() were called. The same queue is the pool's in-flight bound, so
// it also tells producers waiting in whenCapacity() and a closing pool waiting to drain.

import { SealcastError } from '../errors.js';
import { withDeadline } from './deadline.js';
import type { Outcome, Task } from './items.js';

export class OrderedDelivery {
  readonly #queueDepthMax: number;
  readonly #hasCapacity: () => boolean;
  /** Submitted and undelivered tasks, oldest first: at most queueDepthMax of them. */
  readonly #order: Task[] = [];
  #heldForOrder = 0;
  #capacityWaiter: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | null = null;
  #drainWaiter: (() => void) | null = null;

  /** `hasCapacity` says whether the pool as a whole accepts a batch, which is more than this queue knows. */
  constructor(queueDepthMax: number, hasCapacity: () => boolean) {
    this.#queueDepthMax = queueDepthMax;
    this.#hasCapacity = hasCapacity;
  }

  /** Batches submitted and not yet delivered. */
  get inFlight(): number {
    return this.#order.length;
  }

  /** True when another batch fits within queueDepthMax. */
  get hasRoom(): boolean {
    return this.#order.length < this.#queueDepthMax;
  }

  /** Batches a worker has finished that wait for an earlier batch before being delivered. */
  get heldForOrder(): number {
    return this.#heldForOrder;
  }

  /** Throws E_POOL, leaving the batch untouched, when queueDepthMax batches are in flight. */
  requireRoom(): void {
    if (this.#order.length >= this.#queueDepthMax) {
      throw new SealcastError(
        'E_POOL',
        `the pool queue is full (${this.#order.length} of ${this.#queueDepthMax} batches in flight); await pool.whenCapacity() before submitting`,
      );
    }
  }

  /** Takes `task` as the newest in the submission order. */
  push(task: Task): void {
    this.#order.push(task);
  }

  /** Records what `task` came to; only the first outcome counts. Delivery waits for deliver(). */
  settle(task: Task, outcome: Outcome): void {
    if (task.outcome !== null) return;
    task.outcome = outcome;
    this.#heldForOrder++;
  }

  /** Delivers finished tasks from the head of the submission order until an unfinished one. */
  deliver(): void {
    while (this.#order.length > 0 && this.#order[0].outcome !== null) {
      const task = this.#order.shift()!;
      this.#heldForOrder--;
      const outcome = task.outcome!;
      if (outcome.ok) task.resolve(outcome.value);
      else task.reject(outcome.error);
    }
    if (this.#capacityWaiter !== null && this.#hasCapacity()) {
      this.#capacityWaiter.resolve();
      this.#capacityWaiter = null;
    }
    if (this.#order.length === 0 && this.#drainWaiter !== null) this.#drainWaiter();
  }

  /**
   * Resolves the next time deliver() finds the pool able to take a batch. All callers waiting
   * at the same time share one promise, so waiting costs no memory per call.
   */
  whenCapacity(): Promise<void> {
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

  /** Rejects whoever waits in whenCapacity(), because capacity will never come back. */
  rejectCapacityWaiter(error: Error): void {
    this.#capacityWaiter?.reject(error);
    this.#capacityWaiter = null;
  }

  /** Resolves true once nothing is in flight, or false at the deadline. */
  async waitDrained(deadlineMs: number): Promise<boolean> {
    if (this.#order.length === 0) return true;
    const drained = new Promise<true>((resolve) => {
      this.#drainWaiter = () => resolve(true);
    });
    const result = await withDeadline(drained, deadlineMs);
    this.#drainWaiter = null;
    return result === true;
  }
}
