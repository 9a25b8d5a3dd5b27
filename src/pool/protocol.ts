// The messages the pool and its worker threads exchange, and the two helpers both sides need to
// move batches without copying them: which buffers go in a transfer list, and how an error
// crosses the thread boundary with its class, message and code intact.

import { ERROR_CODES, SealcastError, type ErrorCode } from '../errors.js';
import type { BackendConstants, BackendName, SuiteName } from '../crypto/backend.js';
import type { BackendPreference } from '../crypto/load.js';

/** What every worker receives as `workerData`. */
export interface WorkerStartData {
  backend: BackendPreference;
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
