// Reading what a worker says about an item it completed: the result words of a ring entry, or
// the reply it posted before raising `completed`, turned into what the caller receives. Kept
// apart from the dispatch loop because it is where views cross back from the worker.

import { receiveMessageOnPort } from 'node:worker_threads';
import type { PacketBatch } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { Outcome, Task } from './items.js';
import { ENTRY_AUTHENTICATED, ENTRY_RESULT, RESULT_OK, deserializeError, isShared, type FromWorker } from './protocol.js';
import { releaseEntryBuffers } from './ring-entry.js';
import type { WorkerSlot } from './worker-slot.js';

/** Builds what the caller receives: its own views where memory is shared, returned ones otherwise. */
export function taskOutcome(slot: WorkerSlot, task: Task): Outcome {
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

/** The error a control request settles with, or null when the worker carried it out. */
export function controlOutcome(slot: WorkerSlot): Error | null {
  const reply = nextReply(slot);
  if (reply.kind === 'controlDone') return null;
  if (reply.kind === 'controlFailed') return deserializeError(reply.error);
  return unexpectedReply(reply);
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
