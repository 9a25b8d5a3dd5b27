// What the pool has handed a worker and still waits for. A worker completes its items strictly
// in the order it received them, so the pool keeps them in that order per worker and matches
// each completion to the oldest one; tasks also wait in the pool-wide submission order until
// every earlier task is delivered.

import type { PacketBatch } from '../crypto/backend.js';
import type { TaskRequest } from './protocol.js';
import type { WorkerSlot } from './worker-slot.js';

/** What {@link AeadPool.open} delivers. */
export interface PoolOpenResult {
  /** The opened batch: authenticated payloads hold plaintext, failed ones are zeroed. */
  batch: PacketBatch;
  /** One status byte per slot: `constants.statusOk` or `constants.statusAuthFailed`. */
  status: Uint8Array;
  /** How many slots authenticated. */
  authenticated: number;
}

export type Outcome = { ok: true; value: PacketBatch | PoolOpenResult } | { ok: false; error: Error };

/** A seal or open of one batch. */
export interface Task {
  readonly kind: 'task';
  readonly id: number;
  readonly slot: WorkerSlot;
  readonly request: TaskRequest;
  /** The ring entry's first word when the task went through shared memory, else -1. */
  readonly entry: number;
  /** Set once the worker finished the task; delivery waits until every earlier task has one. */
  outcome: Outcome | null;
  resolve(value: PacketBatch | PoolOpenResult): void;
  reject(error: Error): void;
}

/** A key installation, key removal or close request, answered as soon as the worker handles it. */
export interface Control {
  readonly kind: 'control';
  readonly requestId: number;
  resolve(): void;
  reject(error: Error): void;
}

/** What a worker was given, in the order it handles (and completes) items. */
export type Item = Task | Control;
