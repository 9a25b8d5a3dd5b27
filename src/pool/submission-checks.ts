// The checks a batch passes on the main thread before it is submitted. A batch whose views are
// all in shared memory gets only the cheap ones here, because the worker's backend validates
// it in full anyway; every other batch is validated here, before any buffer is moved, so that a
// bad one rejects at once and the caller keeps its memory.

import type { BackendConstants, PacketBatch } from '../crypto/backend.js';
import { validateBatch } from '../crypto/validate.js';
import { isShared } from './protocol.js';
import { fitsRingEntry } from './ring-entry.js';

/**
 * Throws the single-thread path's TypeError or RangeError for a batch (and `status`, for open)
 * that may not be submitted, unless the batch goes to a worker as a ring entry (see
 * checkedForRing), where the worker's backend throws the same error in the batch's turn.
 */
export function requireSubmittableBatch(batch: PacketBatch, constants: BackendConstants, status?: Uint8Array): void {
  if (checkedForRing(batch, constants.layoutWords, status)) return;
  requireAttached(batch, status);
  validateBatch(batch, constants, status);
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
function checkedForRing(batch: PacketBatch, layoutWords: number, status?: Uint8Array): boolean {
  if (typeof batch !== 'object' || batch === null) return false;
  const { slab, layout, nonces, count } = batch;
  if (!(slab instanceof Uint8Array) || !(layout instanceof Uint32Array) || !(nonces instanceof Uint8Array)) return false;
  if (status !== undefined && !(status instanceof Uint8Array)) return false;
  if (!fitsRingEntry(slab) || !fitsRingEntry(layout) || !fitsRingEntry(nonces) || (status !== undefined && !fitsRingEntry(status))) {
    return false;
  }
  return Number.isInteger(count) && count >= 0 && count <= Math.floor(layout.length / layoutWords);
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
