// The messages the pool and its worker threads exchange, and the two helpers both sides need to
// move batches without copying them: which buffers go in a transfer list, and how an error
// crosses the thread boundary with its class, message and code intact.

import { ERROR_CODES, SealcastError, type ErrorCode } from '../errors.js';
import type { BackendConstants, BackendName, SuiteName } from '../crypto/backend.js';
import type { BackendPreference } from '../crypto/load.js';
import type { MessagePort } from 'node:worker_threads';

/**
 * What every worker receives as `workerData`.
 *
 * Work reaches a worker through a control block in shared memory rather than through message
 * events, because on a machine with few cores the event-loop round trip of a message (wake-up,
 * dispatch, structured clone of every view and of the SharedArrayBuffers under them, and the
 * garbage that leaves) cost about as much as sealing a 256-packet batch of 1400-byte packets.
 * The pool numbers every item it gives a worker (a task or a control request) and raises the
 * control block's `submitted` word; the worker, blocked in Atomics.wait while idle, handles the
 * items strictly in that order and raises `completed`, which the pool watches with
 * Atomics.waitAsync. An item whose views all live in shared memory travels as a ring entry of
 * plain integers (buffer ids, offsets, lengths); every other item travels as a message on
 * `requests`, which the worker reads synchronously with receiveMessageOnPort. Whatever a worker
 * must say beyond "done" (errors, returned buffers, control answers) goes on `replies`, posted
 * before `completed` is raised so that the pool finds it there.
 */
export interface WorkerStartData {
  backend: BackendPreference;
  /** The control block: see CONTROL_* and ENTRY_*. */
  control: SharedArrayBuffer;
  /** Ring entries in the control block; the pool never has more tasks than this on one worker. */
  ringSlots: number;
  /** Items that are not ring entries, in submission order. */
  requests: MessagePort;
  /** One reply per item that needs more than the `completed` word, in submission order. */
  replies: MessagePort;
  /** Buffer table updates ({@link BufferUpdate}), each counted in CONTROL_BUFFER_UPDATES. */
  bufferUpdates: MessagePort;
}

/** Int32 word indices of the control block's header. */
export const CONTROL_SUBMITTED = 0;
export const CONTROL_COMPLETED = 1;
export const CONTROL_BUFFER_UPDATES = 2;
export const CONTROL_HEADER_WORDS = 4;

/**
 * Int32 word offsets inside one ring entry. Views are (buffer id, byte offset, element count).
 * ENTRY_LABEL (low word) and ENTRY_LABEL_HIGH hold the item's number plus one, a count that
 * never wraps in practice (2^53), so that neither zeroed memory nor an entry left from long ago
 * is ever taken for the item the worker expects next.
 */
export const ENTRY_LABEL = 0;
export const ENTRY_KIND = 1;
export const ENTRY_TASK_ID = 2;
export const ENTRY_KEY_ID = 3;
export const ENTRY_COUNT = 4;
export const ENTRY_SLAB = 5;
export const ENTRY_LAYOUT = 8;
export const ENTRY_NONCES = 11;
export const ENTRY_STATUS = 14;
/** Written by the worker: RESULT_OK, or RESULT_REPLIED when the outcome is a reply message. */
export const ENTRY_RESULT = 17;
export const ENTRY_AUTHENTICATED = 18;
export const ENTRY_LABEL_HIGH = 19;
export const ENTRY_WORDS = 20;

export const ENTRY_KIND_SEAL = 1;
export const ENTRY_KIND_OPEN = 2;
export const RESULT_OK = 1;
export const RESULT_REPLIED = 2;

const WORD_RANGE = 2 ** 32;

/** Marks the ring entry at `entry` as item number `item` (0-based). */
export function writeEntryLabel(words: Uint32Array, entry: number, item: number): void {
  const label = item + 1;
  words[entry + ENTRY_LABEL_HIGH] = Math.floor(label / WORD_RANGE);
  words[entry + ENTRY_LABEL] = label % WORD_RANGE;
}

/** True when the ring entry at `entry` is item number `item`. */
export function entryIsItem(words: Uint32Array, entry: number, item: number): boolean {
  return words[entry + ENTRY_LABEL] + words[entry + ENTRY_LABEL_HIGH] * WORD_RANGE === item + 1;
}

export function controlBlockBytes(ringSlots: number): number {
  return (CONTROL_HEADER_WORDS + ringSlots * ENTRY_WORDS) * 4;
}

/** Tells a worker that buffer `id` now names `buffer`, or nothing when `buffer` is null. */
export interface BufferUpdate {
  id: number;
  buffer: SharedArrayBuffer | null;
}

/** The views of one batch as they travel to a worker (and back). */
export interface BatchViews {
  slab: Uint8Array;
  layout: Uint32Array;
  nonces: Uint8Array;
  count: number;
}

export interface SealRequest extends BatchViews {
  kind: 'seal';
  taskId: number;
  keyId: number;
}

export interface OpenRequest extends BatchViews {
  kind: 'open';
  taskId: number;
  keyId: number;
  status: Uint8Array;
}

export type TaskRequest = SealRequest | OpenRequest;

export interface AddKeyRequest {
  kind: 'addKey';
  requestId: number;
  keyId: number;
  suite: SuiteName;
  /** A private copy moved to this worker with a transfer list; the worker zeroes it after use. */
  key: Uint8Array;
}

export interface RemoveKeyRequest {
  kind: 'removeKey';
  requestId: number;
  keyId: number;
}

/** Asks the worker to destroy every key schedule it holds before the pool terminates it. */
export interface CloseRequest {
  kind: 'close';
  requestId: number;
}

export type ControlRequest = AddKeyRequest | RemoveKeyRequest | CloseRequest;
export type ToWorker = TaskRequest | ControlRequest;

export interface ReadyReply {
  kind: 'ready';
  backend: BackendName;
  suites: SuiteName[];
  constants: BackendConstants;
}

export interface StartFailedReply {
  kind: 'startFailed';
  error: SerializedError;
}

export interface ControlDoneReply {
  kind: 'controlDone';
  requestId: number;
}

export interface ControlFailedReply {
  kind: 'controlFailed';
  requestId: number;
  error: SerializedError;
}

export interface SealedReply extends BatchViews {
  kind: 'sealed';
  taskId: number;
}

export interface OpenedReply extends BatchViews {
  kind: 'opened';
  taskId: number;
  status: Uint8Array;
  authenticated: number;
}

export interface TaskFailedReply {
  kind: 'taskFailed';
  taskId: number;
  error: SerializedError;
}

export type FromWorker =
  | ReadyReply
  | StartFailedReply
  | ControlDoneReply
  | ControlFailedReply
  | SealedReply
  | OpenedReply
  | TaskFailedReply;

/**
 * The ordinary ArrayBuffers under `views`, each once. SharedArrayBuffers are left out because
 * posting a view over one already shares the memory; listing the same buffer twice would make
 * postMessage throw, and several views of a batch may legitimately live in one buffer.
 */
export function transferListFor(views: readonly ArrayBufferView[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const view of views) {
    if (!isShared(view)) buffers.add(view.buffer as ArrayBuffer);
  }
  return [...buffers];
}

export function isShared(view: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && view.buffer instanceof SharedArrayBuffer;
}

/** An error reduced to what structured clone can carry without losing its meaning. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' ? { code } : {}),
    };
  }
  return { name: 'Error', message: String(error) };
}

/**
 * Rebuilds an error on the pool's side with the class the worker threw: TypeError and
 * RangeError stay what they were, anything carrying a sealcast code becomes a SealcastError
 * with that code, and anything else (a bug) becomes E_INTERNAL naming the original class.
 */
export function deserializeError(serialized: SerializedError): Error {
  const { name, message, code } = serialized;
  if (code !== undefined && (ERROR_CODES as readonly string[]).includes(code)) {
    return new SealcastError(code as ErrorCode, message);
  }
  if (name === 'TypeError') return new TypeError(message);
  if (name === 'RangeError') return new RangeError(message);
  return new SealcastError('E_INTERNAL', `worker thread raised ${name}: ${message}`);
}
