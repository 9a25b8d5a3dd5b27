// The pool's side of a ring entry: a task whose views all live in shared memory reaches its
// worker as plain integers in the control block (see WorkerStartData in protocol.ts) instead of
// a message. This module decides which views qualify, writes the entry, and ends the
// buffer-table uses the entry took once the worker is done with it.

import {
  CONTROL_HEADER_WORDS,
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
  isShared,
  writeEntryLabel,
  type TaskRequest,
} from './protocol.js';
import type { WorkerSlot } from './worker-slot.js';

/**
 * True when `view` is over shared memory small enough that its offset and length fit the
 * 32-bit words of a ring entry; a larger buffer goes by message instead of being cut short.
 */
export function fitsRingEntry(view: ArrayBufferView): boolean {
  return isShared(view) && view.buffer.byteLength <= 0xffff_ffff;
}

export function allFitRingEntry(views: readonly ArrayBufferView[]): boolean {
  for (const view of views) if (!fitsRingEntry(view)) return false;
  return true;
}

/**
 * Writes `request` into the worker's next ring entry and returns that entry's first word. The
 * ring has as many entries as the pool has batches in flight at most, so the entry it reuses
 * belongs to a task already completed.
 */
export function postRingEntry(slot: WorkerSlot, request: TaskRequest): number {
  const entry = CONTROL_HEADER_WORDS + (slot.ringPosted % slot.ringSlots) * ENTRY_WORDS;
  writeEntry(slot, entry, request);
  slot.ringPosted++;
  return entry;
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
export function releaseEntryBuffers(slot: WorkerSlot, entry: number, kind: TaskRequest['kind']): void {
  const words = slot.entries;
  slot.buffers.release(words[entry + ENTRY_SLAB]);
  slot.buffers.release(words[entry + ENTRY_LAYOUT]);
  slot.buffers.release(words[entry + ENTRY_NONCES]);
  if (kind === 'open') slot.buffers.release(words[entry + ENTRY_STATUS]);
}
