// Starting the pool's threads: each gets its own control block and channels, and create()
// returns only once every one has loaded its backend and all loaded the same one. A pool that
// cannot start leaves no thread behind.

import { MessageChannel, Worker } from 'node:worker_threads';
import type { BackendPreference } from '../crypto/load.js';
import { SealcastError } from '../errors.js';
import { BufferTable } from './buffer-table.js';
import {
  CONTROL_BUFFER_UPDATES,
  controlBlockBytes,
  deserializeError,
  type FromWorker,
  type ReadyReply,
  type WorkerStartData,
} from './protocol.js';
import { closeSlotPorts, type WorkerSlot } from './worker-slot.js';

export interface StartedWorkers {
  slots: WorkerSlot[];
  /** What the first worker reported; every other one runs the same backend. */
  ready: ReadyReply;
}

/**
 * Starts `threads` workers and waits until each reports ready. Rejects with the first
 * worker's own start error (usually E_BACKEND), with E_POOL when a thread fails to start or
 * stays silent past `startTimeoutMs`, and with E_BACKEND when the workers loaded different
 * backends; in each case every thread is terminated first.
 */
export async function startWorkers(
  threads: number,
  workerUrl: URL,
  backend: BackendPreference,
  ringSlots: number,
  startTimeoutMs: number,
): Promise<StartedWorkers> {
  const starts = Array.from({ length: threads }, (_, index) => startWorker(index, workerUrl, backend, ringSlots, startTimeoutMs));
  const outcomes = await Promise.allSettled(starts.map((start) => start.ready));
  const failure = outcomes.find((outcome) => outcome.status === 'rejected');
  const ready = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
  const mismatch = ready.find((reply) => reply.backend !== ready[0].backend);
  if (failure !== undefined || mismatch !== undefined) {
    await Promise.all(starts.map((start) => start.stop()));
    if (failure !== undefined) throw (failure as PromiseRejectedResult).reason;
    throw new SealcastError(
      'E_BACKEND',
      `pool workers loaded different backends (${ready[0].backend} and ${mismatch!.backend}); choose one with options.backend`,
    );
  }
  return { slots: starts.map((start) => start.slot), ready: ready[0] };
}

interface StartingWorker {
  slot: WorkerSlot;
  ready: Promise<ReadyReply>;
  stop(): Promise<void>;
}

function startWorker(
  index: number,
  workerUrl: URL,
  backend: BackendPreference,
  ringSlots: number,
  startTimeoutMs: number,
): StartingWorker {
  const controlMemory = new SharedArrayBuffer(controlBlockBytes(ringSlots));
  const control = new Int32Array(controlMemory);
  const requests = new MessageChannel();
  const replies = new MessageChannel();
  const bufferUpdates = new MessageChannel();
  const startData: WorkerStartData = {
    backend,
    control: controlMemory,
    ringSlots,
    requests: requests.port2,
    replies: replies.port1,
    bufferUpdates: bufferUpdates.port2,
  };
  const worker = new Worker(workerUrl, {
    workerData: startData,
    transferList: [requests.port2, replies.port1, bufferUpdates.port2],
  });
  let markExited!: () => void;
  const exited = new Promise<void>((resolve) => {
    markExited = resolve;
  });
  const slot: WorkerSlot = {
    index,
    worker,
    control,
    entries: new Uint32Array(controlMemory),
    ringSlots,
    requests: requests.port1,
    replies: replies.port2,
    buffers: new BufferTable(bufferUpdates.port1, control, CONTROL_BUFFER_UPDATES),
    bufferUpdates: bufferUpdates.port1,
    items: [],
    tasks: 0,
    submitted: 0,
    itemsPosted: 0,
    completed: 0,
    ringPosted: 0,
    watching: false,
    alive: true,
    lastError: null,
    exited,
  };
  // Attached for the worker's whole life: an 'error' event without a listener would be thrown
  // in the main thread, and the pool reports the last one when the thread exits.
  worker.on('error', (error: Error) => {
    slot.lastError = error;
  });
  worker.once('exit', () => {
    slot.alive = false;
    markExited();
  });
  const ready = new Promise<ReadyReply>((resolve, reject) => {
    const timer = setTimeout(() => {
      finish();
      reject(new SealcastError('E_POOL', `pool worker ${index} did not report ready within ${startTimeoutMs} ms`));
    }, startTimeoutMs);
    const onMessage = (message: FromWorker): void => {
      finish();
      if (message.kind === 'ready') resolve(message);
      else if (message.kind === 'startFailed') reject(deserializeError(message.error));
      else reject(new SealcastError('E_POOL', `pool worker ${index} sent ${message.kind} before ready`));
    };
    const onExit = (exitCode: number): void => {
      finish();
      const { lastError } = slot;
      reject(
        new SealcastError(
          'E_POOL',
          `pool worker ${index} failed to start (exit code ${exitCode}${lastError === null ? '' : `: ${lastError.message}`})`,
          { cause: lastError ?? undefined },
        ),
      );
    };
    const finish = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('exit', onExit);
  });
  return {
    slot,
    ready,
    async stop() {
      await worker.terminate();
      await exited;
      closeSlotPorts(slot);
    },
  };
}
