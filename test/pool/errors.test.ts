// Errors cross the thread boundary with their class, message and code; a worker that dies
// rejects its batches with E_POOL and the pool neither hangs nor loses order.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ALL_SUITES, type AeadKey, type CryptoBackend, type SuiteName } from '../../dist/crypto/backend.js';
import { SealcastError, isSealcastError } from '../../dist/errors.js';
import { AeadPool, type PoolKeyHandle } from '../../dist/pool/pool.js';
import {
  HOOKED_WORKER_URL,
  MARKERS,
  Random,
  cloneBatch,
  heldBatch,
  markedBatch,
  openGate,
  poolBackends,
  waitFor,
  expectSameError,
  rejection,
  thrownBy,
} from './support.js';

const SUITE: SuiteName = 'chacha20-poly1305';
const backends = await poolBackends();

for (const entry of backends) {
  describe.skipIf(entry.backend === null)(`pool errors on ${entry.name}${entry.skipReason ? ` (skipped: ${entry.skipReason})` : ''}`, () => {
    const backend = entry.backend as CryptoBackend;
    const random = Random.fromEnv();
    const key = random.fill(new Uint8Array(32));
    let reference: AeadKey;
    const pools: AeadPool[] = [];

    async function hookedPool(threads = 2): Promise<{ pool: AeadPool; handle: PoolKeyHandle }> {
      const pool = await AeadPool.create({ threads, backend: entry.name, workerUrl: HOOKED_WORKER_URL });
      pools.push(pool);
      return { pool, handle: await pool.addKey(SUITE, key) };
    }

    beforeAll(() => {
      reference = backend.createKey(SUITE, key);
    });
    afterEach(async () => {
      await Promise.all(pools.splice(0).map((pool) => pool.close()));
    });
    afterAll(() => reference?.destroy());

    it('rejects bad keys and suites with the backend’s own errors, raised inside the workers', async () => {
      const { pool } = await hookedPool();
      const shortKey = new Uint8Array(31);
      expectSameError(await rejection(pool.addKey(SUITE, shortKey)), thrownBy(() => backend.createKey(SUITE, shortKey)));
      expectSameError(
        await rejection(pool.addKey('rot13' as SuiteName, key)),
        thrownBy(() => backend.createKey('rot13' as SuiteName, key)),
      );
      expectSameError(
        await rejection(pool.addKey(SUITE, 'secret' as unknown as Uint8Array)),
        thrownBy(() => backend.createKey(SUITE, 'secret' as unknown as Uint8Array)),
      );
      const missing = ALL_SUITES.find((suite) => !backend.suites.includes(suite));
      if (missing !== undefined) {
        const error = await rejection(pool.addKey(missing, new Uint8Array(32)));
        expect(isSealcastError(error, 'E_BACKEND')).toBe(true);
        expectSameError(error, thrownBy(() => backend.createKey(missing, new Uint8Array(32))));
      }
      // The caller keeps its key: the pool copies it and zeroes only its own copies.
      expect(key.some((byte) => byte !== 0)).toBe(true);
    });

    it('rejects an invalid batch with the single-thread error before moving its buffers', async () => {
      const { pool, handle } = await hookedPool();
      const built = markedBatch(random, MARKERS.none);
      built.batch.layout[2] = built.batch.slab.byteLength;
      const expected = thrownBy(() => reference.sealBatch(cloneBatch(built.batch)));
      const slabBytes = built.batch.slab.byteLength;
      expectSameError(await rejection(pool.seal(handle, built.batch)), expected);
      expect(built.batch.slab.byteLength).toBe(slabBytes);
      expect(pool.inFlight).toBe(0);
      expectSameError(
        await rejection(pool.open(handle, built.batch, new Uint8Array(0))),
        thrownBy(() => reference.openBatch(cloneBatch(built.batch), new Uint8Array(0))),
      );
      const sealed = markedBatch(random, MARKERS.none);
      expectSameError(
        await rejection(pool.open(handle, sealed.batch, undefined as unknown as Uint8Array)),
        thrownBy(() => reference.openBatch(cloneBatch(sealed.batch), undefined as unknown as Uint8Array)),
      );
      const foreign = await (await hookedPool()).pool.addKey(SUITE, key);
      expect(await rejection(pool.seal(foreign, markedBatch(random, MARKERS.none).batch))).toBeInstanceOf(TypeError);
    });

    it('carries errors thrown inside a worker back with class, message and code, each in its turn', async () => {
      const { pool, handle } = await hookedPool();
      const corrupt = markedBatch(random, MARKERS.corruptLayout);
      const corrupted = cloneBatch(corrupt.batch);
      corrupted.layout[2] = corrupted.slab.byteLength;
      const expectedCorrupt = thrownBy(() => reference.sealBatch(corrupted));
      expect(expectedCorrupt).toBeInstanceOf(RangeError);

      const settled: string[] = [];
      const track = (name: string, promise: Promise<unknown>): Promise<unknown> =>
        promise.then(
          (value) => {
            settled.push(`${name} ok`);
            return value;
          },
          (error: Error) => {
            settled.push(`${name} failed`);
            return error;
          },
        );
      const outcomes = await Promise.all([
        track('plain', pool.seal(handle, markedBatch(random, MARKERS.none).batch)),
        track('corrupt', pool.seal(handle, corrupt.batch)),
        track('sealcast', pool.seal(handle, markedBatch(random, MARKERS.throwSealcast).batch)),
        track('bug', pool.seal(handle, markedBatch(random, MARKERS.throwPlain).batch)),
      ]);
      expect(settled).toEqual(['plain ok', 'corrupt failed', 'sealcast failed', 'bug failed']);
      expectSameError(outcomes[1] as Error, expectedCorrupt);
      expectSameError(outcomes[2] as Error, new SealcastError('E_KEY', 'fixture: key schedule refused'));
      expect(isSealcastError(outcomes[3], 'E_INTERNAL')).toBe(true);
      expect((outcomes[3] as Error).message).toContain('fixture: plain failure');
      // The pool is still usable after errors.
      const after = markedBatch(random, MARKERS.none);
      const expectedAfter = cloneBatch(after.batch);
      reference.sealBatch(expectedAfter);
      const result = await pool.seal(handle, after.batch);
      expect(Buffer.from(result.slab).equals(Buffer.from(expectedAfter.slab))).toBe(true);
    });

    it('rejects the batches of a worker that exits with E_POOL, in order, and goes on with the others', async () => {
      const { pool, handle } = await hookedPool(2);
      const held = heldBatch(random);
      const settled: string[] = [];
      const heldDone = pool.seal(handle, held.batch).then(() => settled.push('held ok'));
      const crashDone = rejection(pool.seal(handle, markedBatch(random, MARKERS.exit).batch)).then((error) => {
        settled.push('crash failed');
        return error;
      });
      await waitFor(() => pool.liveThreads === 1, 'the crashing worker to exit');
      expect(settled).toEqual([]);
      openGate(held.gate);
      const crashError = await crashDone;
      await heldDone;
      expect(settled).toEqual(['held ok', 'crash failed']);
      expect(isSealcastError(crashError, 'E_POOL')).toBe(true);
      expect(crashError.message).toContain('exit code 7');

      // The surviving worker still seals correctly.
      const next = markedBatch(random, MARKERS.none);
      const expectedNext = cloneBatch(next.batch);
      reference.sealBatch(expectedNext);
      expect(Buffer.from((await pool.seal(handle, next.batch)).slab).equals(Buffer.from(expectedNext.slab))).toBe(true);

      // Once the last worker is gone every call fails fast with E_POOL instead of hanging.
      expect(isSealcastError(await rejection(pool.seal(handle, markedBatch(random, MARKERS.exit).batch)), 'E_POOL')).toBe(true);
      expect(pool.liveThreads).toBe(0);
      expect(isSealcastError(await rejection(pool.seal(handle, markedBatch(random, MARKERS.none).batch)), 'E_POOL')).toBe(true);
      expect(isSealcastError(await rejection(pool.whenCapacity()), 'E_POOL')).toBe(true);
      expect(isSealcastError(await rejection(pool.addKey(SUITE, key)), 'E_POOL')).toBe(true);
      await pool.close();
    });

    it('rejects with E_POOL naming the error when a worker throws outside any task', async () => {
      const { pool, handle } = await hookedPool(1);
      const error = await rejection(pool.seal(handle, markedBatch(random, MARKERS.uncaught).batch));
      expect(isSealcastError(error, 'E_POOL')).toBe(true);
      expect(error.message).toContain('fixture: uncaught in worker');
      expect(pool.liveThreads).toBe(0);
    });

    it('fails create() with E_POOL when a worker cannot start, and with bad options as TypeError/RangeError', async () => {
      const error = await rejection(
        AeadPool.create({ threads: 2, backend: entry.name, workerUrl: new URL('./fixtures/failing-worker.mjs', import.meta.url) }),
      );
      expect(isSealcastError(error, 'E_POOL')).toBe(true);
      expect(error.message).toContain('fixture: worker failed to start');
      expect(await rejection(AeadPool.create({ threads: 0 }))).toBeInstanceOf(RangeError);
      expect(await rejection(AeadPool.create({ threads: 1.5 }))).toBeInstanceOf(TypeError);
      expect(await rejection(AeadPool.create({ queueDepthMax: 5000 }))).toBeInstanceOf(RangeError);
      expect(await rejection(AeadPool.create({ backend: 'gpu' as 'wasm' }))).toBeInstanceOf(TypeError);
    });
  });
}

describe('pool backend selection', () => {
  it('fails create() with E_BACKEND when the native backend is asked for and cannot load', async (context) => {
    const native = backends.find((entry) => entry.name === 'native');
    if (native?.backend !== null) {
      context.skip('the native backend loads here, so it cannot fail to start');
      return;
    }
    const error = await rejection(AeadPool.create({ threads: 1, backend: 'native' }));
    expect(isSealcastError(error, 'E_BACKEND')).toBe(true);
  });
});
