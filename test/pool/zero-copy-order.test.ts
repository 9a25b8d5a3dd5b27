// Zero copy (SharedArrayBuffer slabs sealed in place, ordinary buffers moved and returned),
// delivery in submission order when a later batch finishes first, and the backpressure bound.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AeadKey, CryptoBackend, SuiteName } from '../../dist/crypto/backend.js';
import { isSealcastError } from '../../dist/errors.js';
import { AeadPool, type PoolKeyHandle } from '../../dist/pool/pool.js';
import {
  HOOKED_WORKER_URL,
  MARKERS,
  Random,
  buildBatch,
  cloneBatch,
  heldBatch,
  makeStatus,
  markedBatch,
  openGate,
  poolBackends,
  randomShape,
  waitFor,
} from './support.js';

const SUITE: SuiteName = 'chacha20-poly1305';
const backends = await poolBackends();

for (const entry of backends) {
  describe.skipIf(entry.backend === null)(`pool zero copy and order on ${entry.name}${entry.skipReason ? ` (skipped: ${entry.skipReason})` : ''}`, () => {
    const backend = entry.backend as CryptoBackend;
    const random = Random.fromEnv();
    const key = random.fill(new Uint8Array(32));
    let reference: AeadKey;

    beforeAll(() => {
      reference = backend.createKey(SUITE, key);
    });
    afterAll(() => reference?.destroy());

    describe('with the production worker', () => {
      let pool: AeadPool;
      let handle: PoolKeyHandle;
      beforeAll(async () => {
        pool = await AeadPool.create({ threads: 2, backend: entry.name });
        handle = await pool.addKey(SUITE, key);
      });
      afterAll(async () => {
        await pool?.close();
      });

      it('seals a SharedArrayBuffer slab in place: same view, same memory, sealed bytes', async () => {
        const built = buildBatch(random, randomShape(random, 6, 1500, 32), 'shared');
        const { slab } = built.batch;
        const memory = new Uint8Array(slab.buffer, slab.byteOffset, slab.byteLength);
        const expected = cloneBatch(built.batch);
        reference.sealBatch(expected);
        expect(Buffer.from(memory).equals(Buffer.from(expected.slab))).toBe(false);

        const result = await pool.seal(handle, built.batch);
        expect(result.slab).toBe(slab);
        expect(result.layout).toBe(built.batch.layout);
        expect(result.nonces).toBe(built.batch.nonces);
        // Read through a view made before the call: the worker wrote into this very memory.
        expect(Buffer.from(memory).equals(Buffer.from(expected.slab))).toBe(true);
      });

      it('moves ordinary buffers to the worker and back: detached in flight, same length and sealed content after', async () => {
        const built = buildBatch(random, randomShape(random, 6, 1500, 32), 'separate');
        const { slab, layout, nonces } = built.batch;
        const shapeBefore = { byteOffset: slab.byteOffset, byteLength: slab.byteLength, bufferBytes: slab.buffer.byteLength };
        const expected = cloneBatch(built.batch);
        reference.sealBatch(expected);

        const promise = pool.seal(handle, built.batch);
        expect(slab.byteLength).toBe(0);
        expect(slab.buffer.byteLength).toBe(0);
        expect(layout.length).toBe(0);
        expect(nonces.byteLength).toBe(0);

        const result = await promise;
        expect(result.slab === slab).toBe(false);
        expect(slab.byteLength).toBe(0);
        expect({
          byteOffset: result.slab.byteOffset,
          byteLength: result.slab.byteLength,
          bufferBytes: result.slab.buffer.byteLength,
        }).toEqual(shapeBefore);
        expect(Buffer.from(result.slab).equals(Buffer.from(expected.slab))).toBe(true);
        expect([...result.layout]).toEqual([...expected.layout]);
        expect(Buffer.from(result.nonces).equals(Buffer.from(expected.nonces))).toBe(true);

        // Submitting the moved-away originals again is refused with a message that says so.
        const again = await pool.seal(handle, built.batch).then(
          () => null,
          (error: unknown) => error,
        );
        expect(again).toBeInstanceOf(TypeError);
        expect(String((again as Error).message)).toMatch(/batch\.slab is detached/);
      });

      it('returns slab, layout and nonces that shared one ordinary buffer over one buffer again', async () => {
        const built = buildBatch(random, randomShape(random, 6, 1500, 32), 'one-buffer');
        const expected = cloneBatch(built.batch);
        reference.sealBatch(expected);
        const result = await pool.seal(handle, built.batch);
        expect(result.layout.buffer).toBe(result.slab.buffer);
        expect(result.nonces.buffer).toBe(result.slab.buffer);
        expect(Buffer.from(result.slab).equals(Buffer.from(expected.slab))).toBe(true);
      });

      it('opens a SharedArrayBuffer slab in place with a shared status array', async () => {
        const built = buildBatch(random, randomShape(random, 6, 1500, 32), 'shared');
        reference.sealBatch(built.batch);
        // Opening restores every header and payload; tags stay as sealing wrote them.
        const expectedOpened = built.batch.slab.slice();
        for (const place of built.places) {
          const end = place.offset + place.aadBytes + place.payloadBytes;
          expectedOpened.set(built.plainSlab.subarray(place.offset, end), place.offset);
        }
        const status = makeStatus(built.batch.count, true);
        const result = await pool.open(handle, built.batch, status);
        expect(result.batch.slab).toBe(built.batch.slab);
        expect(result.status).toBe(status);
        expect(result.authenticated).toBe(built.batch.count);
        expect([...status]).toEqual(new Array(built.batch.count).fill(backend.constants.statusOk));
        expect(Buffer.from(built.batch.slab).equals(Buffer.from(expectedOpened))).toBe(true);
      });
    });

    describe('with a worker that can hold a batch', () => {
      let pool: AeadPool;
      let handle: PoolKeyHandle;
      beforeAll(async () => {
        pool = await AeadPool.create({ threads: 2, backend: entry.name, queueDepthMax: 3, workerUrl: HOOKED_WORKER_URL });
        handle = await pool.addKey(SUITE, key);
      });
      afterAll(async () => {
        await pool?.close();
      });

      it('delivers in submission order when the later batch finishes first', async () => {
        const first = heldBatch(random);
        const second = markedBatch(random, MARKERS.none);
        const expectedFirst = cloneBatch(first.batch);
        const expectedSecond = cloneBatch(second.batch);
        reference.sealBatch(expectedFirst);
        reference.sealBatch(expectedSecond);
        const settled: string[] = [];
        const firstDone = pool.seal(handle, first.batch).then((result) => {
          settled.push('first');
          return result;
        });
        const secondDone = pool.seal(handle, second.batch).then((result) => {
          settled.push('second');
          return result;
        });
        // The second batch ran on the other worker and is finished, waiting for the first.
        await waitFor(() => pool.heldForOrder === 1, 'the second batch to finish while the first is held');
        await new Promise((resolve) => setImmediate(resolve));
        expect(settled).toEqual([]);
        openGate(first.gate);
        const [firstResult, secondResult] = await Promise.all([firstDone, secondDone]);
        expect(settled).toEqual(['first', 'second']);
        expect(Buffer.from(firstResult.slab).equals(Buffer.from(expectedFirst.slab))).toBe(true);
        expect(Buffer.from(secondResult.slab).equals(Buffer.from(expectedSecond.slab))).toBe(true);
      });

      it('refuses a batch beyond queueDepthMax without touching it, and whenCapacity resolves once one is delivered', async () => {
        const held = heldBatch(random);
        const heldDone = pool.seal(handle, held.batch);
        const others = [markedBatch(random, MARKERS.none), markedBatch(random, MARKERS.none)];
        const othersDone = others.map((built) => pool.seal(handle, built.batch));
        expect(pool.inFlight).toBe(3);
        expect(pool.hasCapacity).toBe(false);

        const extra = markedBatch(random, MARKERS.none);
        const extraBytes = extra.batch.slab.byteLength;
        const refused = await pool.seal(handle, extra.batch).then(
          () => null,
          (error: unknown) => error,
        );
        expect(isSealcastError(refused, 'E_POOL')).toBe(true);
        expect(String((refused as Error).message)).toMatch(/queue is full/);
        // Refused before posting: the caller's buffers were not moved.
        expect(extra.batch.slab.byteLength).toBe(extraBytes);
        expect(pool.inFlight).toBe(3);

        let capacity = false;
        const capacityDone = pool.whenCapacity().then(() => {
          capacity = true;
        });
        // The held worker blocks whatever else was queued on it, so at least one later batch finishes.
        await waitFor(() => pool.heldForOrder >= 1, 'a later batch to finish');
        await new Promise((resolve) => setImmediate(resolve));
        // Finished but undelivered batches still count: the bound covers everything held in memory.
        expect(capacity).toBe(false);
        expect(pool.inFlight).toBe(3);

        openGate(held.gate);
        await Promise.all([heldDone, ...othersDone, capacityDone]);
        expect(capacity).toBe(true);
        expect(pool.inFlight).toBe(0);
        const expectedExtra = cloneBatch(extra.batch);
        reference.sealBatch(expectedExtra);
        const extraResult = await pool.seal(handle, extra.batch);
        expect(Buffer.from(extraResult.slab).equals(Buffer.from(expectedExtra.slab))).toBe(true);
      });
    });
  });
}
