// The pool's view of one worker thread: its control block, its ports, the items it was given
// and not yet completed, and the counters both sides of the Atomics handoff agree on. The
// modules that start, feed and watch a worker all work on this one record.

import type { MessagePort, Worker } from 'node:worker_threads';
import type { BufferTable } from './buffer-table.js';
import type { Item } from './items.js';

export interface WorkerSlot {
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

/** Closes the pool's ends of the worker's channels once nothing will be posted or read on them again. */
export function closeSlotPorts(slot: WorkerSlot): void {
  slot.requests.close();
  slot.replies.close();
  slot.bufferUpdates.close();
}
