// The pool must produce exactly what the single-thread path produces: 10 000 random batches are
// sealed through the pool with many in flight and compared with backend.createKey().sealBatch on
// copies, then opened through the pool with some slots forged and compared with openBatch.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AeadKey, CryptoBackend, PacketBatch, SuiteName } from '../../dist/crypto/backend.js';
import { WIRE_SUITES } from '../../dist/crypto/backend.js';
import { AeadPool, type PoolKeyHandle } from '../../dist/pool/pool.js';
import {
  MEMORY_KINDS,
  Random,
  buildBatch,
  cloneBatch,
  makeStatus,
  poolBackends,
  randomShape,
  type BuiltBatch,
  type SlotPlace,
} from './support.js';

const BATCHES = 10_000;
const CHUNK_BATCHES = 1_000;
const QUEUE_DEPTH_MAX = 8;

const backends = await poolBackends();

for (const entry of backends) {
  describe.skipIf(entry.backend === null)(`pool vs single thread on ${entry.name}${entry.skipReason ? ` (skipped: ${entry.skipReason})` : ''}`, () => {
    const backend = entry.backend as CryptoBackend;
    const random = Random.fromEnv();
    const context = `seed ${random.seed} (replay with SEALCAST_TEST_SEED=${random.seed})`;
    let pool: AeadPool;
    const keys: Array<{ suite: SuiteName; handle: PoolKeyHandle; reference: AeadKey }> = [];

    beforeAll(async () => {
      pool = await AeadPool.create({ threads: 2, backend: entry.name, queueDepthMax: QUEUE_DEPTH_MAX });
      for (const suite of WIRE_SUITES.filter((name) => backend.suites.includes(name))) {
        const key = random.fill(new Uint8Array(backend.constants.keyBytes));
        keys.push({ suite, handle: await pool.addKey(suite, key), reference: backend.createKey(suite, key) });
        key.fill(0);
      }
    });

    afterAll(async () => {
      for (const key of keys) key.reference.destroy();
      await pool?.close();
    });

    it(`seals and opens ${BATCHES} random batches exactly like the single-thread path, in submission order`, async () => {
      expect(pool.backendName).toBe(entry.name);
      let maxInFlight = 0;
      let forgedSlots = 0;
      let delivered = 0;
      for (let chunkStart = 0; chunkStart < BATCHES; chunkStart += CHUNK_BATCHES) {
        const jobs = Array.from({ length: CHUNK_BATCHES }, () => {
          const key = random.pick(keys);
          const built = buildBatch(random, randomShape(random, 8, 2000, 48), random.pick(MEMORY_KINDS));
          const expected = cloneBatch(built.batch);
          key.reference.sealBatch(expected);
          return { key, built, expected };
        });

        // Seal phase: one producer, waiting for capacity whenever the pool is full.
        const sealed: PacketBatch[] = new Array(jobs.length);
        const sealDeliveries: Promise<void>[] = [];
        let sealDelivered = 0;
        for (let index = 0; index < jobs.length; index++) {
          while (!pool.hasCapacity) await pool.whenCapacity();
          const job = jobs[index];
          const promise = pool.seal(job.key.handle, job.built.batch);
          maxInFlight = Math.max(maxInFlight, pool.inFlight);
          expect(pool.inFlight).toBeLessThanOrEqual(QUEUE_DEPTH_MAX);
          sealDeliveries.push(
            promise.then((result) => {
              expect(sealDelivered, `seal delivery order, ${context}`).toBe(index);
              sealDelivered++;
              expect(result.count).toBe(job.built.batch.count);
              expect(Buffer.from(result.slab).equals(Buffer.from(job.expected.slab)), `batch ${chunkStart + index}, ${context}`).toBe(true);
              expect([...result.layout]).toEqual([...job.expected.layout]);
              expect(Buffer.from(result.nonces).equals(Buffer.from(job.expected.nonces))).toBe(true);
              sealed[index] = result;
            }),
          );
        }
        await Promise.all(sealDeliveries);

        // Open phase: forge about one slot in four, then compare with openBatch on a copy.
        const openDeliveries: Promise<void>[] = [];
        let openDelivered = 0;
        for (let index = 0; index < jobs.length; index++) {
          const job = jobs[index];
          const batch = sealed[index];
          const forged = forgeSlots(random, batch, job.built.places);
          forgedSlots += forged.size;
          const expected = cloneBatch(batch);
          const expectedStatus = new Uint8Array(batch.count);
          const expectedAuthenticated = job.key.reference.openBatch(expected, expectedStatus);
          const status = makeStatus(batch.count, random.int(0, 1) === 1);
          while (!pool.hasCapacity) await pool.whenCapacity();
          const promise = pool.open(job.key.handle, batch, status);
          maxInFlight = Math.max(maxInFlight, pool.inFlight);
          openDeliveries.push(
            promise.then((result) => {
              expect(openDelivered, `open delivery order, ${context}`).toBe(index);
              openDelivered++;
              expect(result.authenticated).toBe(expectedAuthenticated);
              expect([...result.status]).toEqual([...expectedStatus]);
              expect(Buffer.from(result.batch.slab).equals(Buffer.from(expected.slab)), `batch ${chunkStart + index}, ${context}`).toBe(true);
              checkOpenedAgainstPlaintext(result.batch.slab, result.status, job.built, forged, backend);
            }),
          );
        }
        await Promise.all(openDeliveries);
        delivered += sealDelivered;
      }
      expect(delivered).toBe(BATCHES);
      // The producer only waits when the pool is full, so the bound must have been reached and held.
      expect(maxInFlight).toBe(QUEUE_DEPTH_MAX);
      expect(forgedSlots).toBeGreaterThan(0);
      expect(pool.inFlight).toBe(0);
    });
  });
}

/** Flips one random bit in header, payload or tag of about a quarter of the slots. */
function forgeSlots(random: Random, batch: PacketBatch, places: readonly SlotPlace[]): Set<number> {
  const forged = new Set<number>();
  places.forEach((place, slot) => {
    if (random.int(0, 3) !== 0) return;
    const slotBytes = place.aadBytes + place.payloadBytes + 16;
    const byte = place.offset + random.int(0, slotBytes - 1);
    batch.slab[byte] ^= 1 << random.int(0, 7);
    forged.add(slot);
  });
  return forged;
}

/** Independent of the reference: authentic slots hold the original plaintext, forged ones zeros. */
function checkOpenedAgainstPlaintext(
  slab: Uint8Array,
  status: Uint8Array,
  built: BuiltBatch,
  forged: Set<number>,
  backend: CryptoBackend,
): void {
  built.places.forEach((place, slot) => {
    const start = place.offset + place.aadBytes;
    const end = start + place.payloadBytes;
    if (forged.has(slot)) {
      expect(status[slot]).toBe(backend.constants.statusAuthFailed);
      expect(slab.subarray(start, end).every((byte) => byte === 0)).toBe(true);
    } else {
      expect(status[slot]).toBe(backend.constants.statusOk);
      expect(Buffer.from(slab.subarray(start, end)).equals(Buffer.from(built.plainSlab.subarray(start, end)))).toBe(true);
    }
  });
}
