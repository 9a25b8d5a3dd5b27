// The body of a pool worker thread: load the backend, report ready, then seal and open batches
// in place with the key schedules the pool installs. Messages are handled strictly one after
// another, so a key removal or close never overtakes a batch posted before it.

import type { MessagePort } from 'node:worker_threads';
import type { AeadKey, CryptoBackend } from '../crypto/backend.js';
import { loadBackend } from '../crypto/load.js';
import { SealcastError } from '../errors.js';
import {
  serializeError,
  transferListFor,
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
   * fails with that error) or return a promise (later messages wait for it).
   */
  beforeTask?(task: TaskRequest): void | Promise<void>;
}

export async function serveWorker(port: MessagePort, start: WorkerStartData, hooks: WorkerHooks = {}): Promise<void> {
  let backend: CryptoBackend;
  try {
    backend = await loadBackend(start.backend);
  } catch (error) {
    post(port, { kind: 'startFailed', error: serializeError(error) });
    return;
  }
  const keys = new Map<number, AeadKey>();
  const inbox: ToWorker[] = [];
  let draining = false;

  const drain = async (): Promise<void> => {
    draining = true;
    try {
      for (let message = inbox.shift(); message !== undefined; message = inbox.shift()) {
        if (message.kind === 'seal' || message.kind === 'open') {
          await runTask(port, keys, message, hooks);
        } else {
          runControl(port, backend, keys, message);
        }
      }
    } finally {
      draining = false;
    }
  };

  // The pool bounds how many batches it posts, so this inbox is bounded by queueDepthMax plus
  // the few control requests (one per key operation) that may be outstanding.
  port.on('message', (message: ToWorker) => {
    inbox.push(message);
    if (!draining) void drain();
  });
  post(port, {
    kind: 'ready',
    backend: backend.name,
    suites: [...backend.suites],
    constants: { ...backend.constants },
  });
}

async function runTask(
  port: MessagePort,
  keys: Map<number, AeadKey>,
  task: TaskRequest,
  hooks: WorkerHooks,
): Promise<void> {
  try {
    if (hooks.beforeTask !== undefined) await hooks.beforeTask(task);
    const key = keys.get(task.keyId);
    if (key === undefined) {
      throw new SealcastError('E_INTERNAL', `pool worker has no key schedule ${task.keyId} for ${task.kind} task ${task.taskId}`);
    }
    const batch = { slab: task.slab, layout: task.layout, nonces: task.nonces, count: task.count };
    if (task.kind === 'seal') {
      key.sealBatch(batch);
      post(port, { kind: 'sealed', taskId: task.taskId, ...batch }, transferListFor([task.slab, task.layout, task.nonces]));
    } else {
      const authenticated = key.openBatch(batch, task.status);
      post(
        port,
        { kind: 'opened', taskId: task.taskId, ...batch, status: task.status, authenticated },
        transferListFor([task.slab, task.layout, task.nonces, task.status]),
      );
    }
  } catch (error) {
    post(port, { kind: 'taskFailed', taskId: task.taskId, error: serializeError(error) });
  }
}

function runControl(port: MessagePort, backend: CryptoBackend, keys: Map<number, AeadKey>, request: ControlRequest): void {
  try {
    switch (request.kind) {
      case 'addKey': {
        try {
          keys.get(request.keyId)?.destroy();
          keys.set(request.keyId, backend.createKey(request.suite, request.key));
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
        break;
    }
    post(port, { kind: 'controlDone', requestId: request.requestId });
  } catch (error) {
    post(port, { kind: 'controlFailed', requestId: request.requestId, error: serializeError(error) });
  }
}

function post(port: MessagePort, message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}
