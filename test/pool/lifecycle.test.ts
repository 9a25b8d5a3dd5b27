// Keys come and go without disturbing batches already submitted; close() lets pending batches
// finish (or cuts off stuck ones), leaves no thread behind, and every later call gets E_CLOSED.

import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { CryptoBackend, SuiteName } from '../../dist/crypto/backend.js';
import { isSealcastError } from '../../dist/errors.js';
import { AeadPool, POOL_BATCHES_PER_THREAD_DEFAULT, defaultPoolThreads } from '../../dist/pool/pool.js';
import {
  HOOKED_WORKER_URL,
  MARKERS,
  Random,
  cloneBatch,
  heldBatch,
  makeStatus,
  markedBatch,
  poolBackends,
  rejection,
  waitFor,
} from './support.js';

const SUITE: SuiteName = 'chacha20-poly1305';
const CHILD_TIMEOUT_MS = 60_000;
const backends = await poolBackends();

for (const entry of backends) {
  describe.skipIf(entry.backend === null)(`pool lifecycle on ${entry.name}${entry.skipReason ? ` (skipped: ${entry.skipReason})` : ''}`, () => {
    const backend = entry.backend as CryptoBackend;
    const random = Random.fromEnv();
    const key = random.fill(new Uint8Array(32));
    const pools: AeadPool[] = [];

    afterEach(async () => {
      await Promise.all(pools.splice(0).map((pool) => pool.close()));
    });

    async function track(pool: Promise<AeadPool>): Promise<AeadPool> {
      const created = await pool;
      pools.push(created);
      return created;
    }

    it('finishes batches submitted before removeKey, then refuses the removed key with E_CLOSED', async () => {
      const pool = await track(AeadPool.create({ threads: 2, backend: entry.name }));
      const reference = backend.createKey(SUITE, key);
      const handle = await pool.addKey(SUITE, key);
      const batches = [markedBatch(random, MARKERS.none), markedBatch(random, MARKERS.none)];
      const expected = batches.map((built) => {
        const copy = cloneBatch(built.batch);
        reference.sealBatch(copy);
        return copy;
      });
      const results = batches.map((built) => pool.seal(handle, built.batch));
      const removed = pool.removeKey(handle);
      expect(handle.removed).toBe(true);
      const sealed = await Promise.all(results);
      await removed;
      sealed.forEach((result, index) => expect(Buffer.from(result.slab).equals(Buffer.from(expected[index].slab))).toBe(true));
      expect(isSealcastError(await rejection(pool.seal(handle, markedBatch(random, MARKERS.none).batch)), 'E_CLOSED')).toBe(true);
      await pool.removeKey(handle);
      reference.destroy();
    });

    it('lets pending batches finish on close, then has no thread left and refuses every call with E_CLOSED', async () => {
      const pool = await track(AeadPool.create({ threads: 2, backend: entry.name }));
      expect(pool.liveThreads).toBe(2);
      const reference = backend.createKey(SUITE, key);
      const handle = await pool.addKey(SUITE, key);
      const batches = Array.from({ length: pool.queueDepthMax }, () => markedBatch(random, MARKERS.none));
      const expected = batches.map((built) => {
        const copy = cloneBatch(built.batch);
        reference.sealBatch(copy);
        return copy;
      });
      const results = batches.map((built) => pool.seal(handle, built.batch));
      const closing = pool.close();
      expect(pool.closed).toBe(true);
      expect(pool.close()).toBe(closing);
      const sealed = await Promise.all(results);
      sealed.forEach((result, index) => expect(Buffer.from(result.slab).equals(Buffer.from(expected[index].slab))).toBe(true));
      await closing;
      // Every worker's 'exit' event has been observed.
      expect(pool.liveThreads).toBe(0);
      expect(handle.removed).toBe(true);

      const batch = markedBatch(random, MARKERS.none).batch;
      for (const call of [
        pool.seal(handle, batch),
        pool.open(handle, batch, makeStatus(batch.count, false)),
        pool.addKey(SUITE, key),
        pool.removeKey(handle),
        pool.whenCapacity(),
      ]) {
        expect(isSealcastError(await rejection(call), 'E_CLOSED')).toBe(true);
      }
      reference.destroy();
    });

    it('cuts off a stuck batch after closeTimeoutMs: it rejects with E_CLOSED and the threads are terminated', async () => {
      const pool = await track(
        AeadPool.create({ threads: 2, backend: entry.name, workerUrl: HOOKED_WORKER_URL, closeTimeoutMs: 200 }),
      );
      const handle = await pool.addKey(SUITE, key);
      const stuck = heldBatch(random);
      const stuckDone = rejection(pool.seal(handle, stuck.batch));
      let capacityError: Error | null = null;
      const fill = Promise.allSettled(
        Array.from({ length: pool.queueDepthMax - 1 }, () => pool.seal(handle, markedBatch(random, MARKERS.none).batch)),
      );
      const capacityDone = rejection(pool.whenCapacity()).then((error) => {
        capacityError = error;
      });
      await waitFor(() => pool.heldForOrder >= 1, 'a batch behind the stuck one to finish');
      await pool.close();
      expect(isSealcastError(await stuckDone, 'E_CLOSED')).toBe(true);
      // Batches that finished behind the stuck one are delivered in their turn, after it.
      const fillOutcomes = await fill;
      expect(fillOutcomes.some((outcome) => outcome.status === 'fulfilled')).toBe(true);
      await capacityDone;
      expect(isSealcastError(capacityError, 'E_CLOSED')).toBe(true);
      expect(pool.liveThreads).toBe(0);
    });

    it('lets a process that closed its pool exit on its own', async () => {
      const script = fileURLToPath(new URL('./fixtures/close-and-exit.mjs', import.meta.url));
      const child = spawn(process.execPath, [script, entry.name], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
      try {
        const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
          child.once('exit', (code, sig) => resolve([code, sig])),
        );
        expect({ exitCode, signal, stderr }).toEqual({ exitCode: 0, signal: null, stderr: '' });
        expect(JSON.parse(stdout)).toEqual({ sealed: 4, liveThreads: 0 });
      } finally {
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  });
}

describe('pool defaults', () => {
  it('leaves a core to the main thread, starts at least one worker, and queues two batches per worker', async () => {
    const threads = defaultPoolThreads();
    expect(threads).toBeGreaterThanOrEqual(1);
    expect(threads).toBeLessThanOrEqual(Math.max(1, availableParallelism() - 1));
    const pool = await AeadPool.create({ backend: 'wasm' });
    try {
      expect(pool.threads).toBe(threads);
      expect(pool.liveThreads).toBe(threads);
      expect(pool.queueDepthMax).toBe(POOL_BATCHES_PER_THREAD_DEFAULT * threads);
    } finally {
      await pool.close();
    }
  });
});
