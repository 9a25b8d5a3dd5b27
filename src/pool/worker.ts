// Entry point of a pool worker thread (the pool starts dist/pool/worker.js).

import { parentPort, workerData } from 'node:worker_threads';
import { SealcastError } from '../errors.js';
import type { WorkerStartData } from './protocol.js';
import { serveWorker } from './serve.js';

if (parentPort === null) {
  throw new SealcastError('E_INTERNAL', 'pool/worker.js must run as a worker thread started by AeadPool');
}
await serveWorker(parentPort, workerData as WorkerStartData);
