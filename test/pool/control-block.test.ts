// The shared-memory handoff: batches whose views all live in SharedArrayBuffers reach a worker
// as ring entries in its control block, everything else as messages. These tests mix both
// kinds, errors and key operations on the same workers, and check that order, results, error
// classes and the bounds of the per-worker buffer table hold.

import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AeadKey, CryptoBackend, PacketBatch, SuiteName } from '../../dist/crypto/backend.js';
import { SealcastError, isSealcastError } from '../../dist/errors.js';
import {
  BUFFER_TABLE_IDLE_BYTES_MAX,
  BUFFER_TABLE_IDLE_ENTRIES_MAX,
  BufferTable,
} from '../../dist/pool/buffer-table.js';
import { AeadPool, type PoolKeyHandle } from '../../dist/pool/pool.js';
import {
  HOOKED_WORKER_URL,
  MARKERS,
  Random,
  buildBatch,
  cloneBatch,
  makeStatus,
  markedBatch,
  poolBackends,
  randomShape,
  type MemoryKind,
  expectSameError,
  rejection,
  thrownBy,
} from './support.js';

const SUITE: SuiteName = 'chacha20-poly1305';
const backends = await poolBackends();

for (const entry of backends) {
  describe.skipIf(entry.backend === null)(`pool control block on ${entry.name}${entry.skipReason ? ` (skipped: ${entry.skipReason})` : ''}`, () => {
    const backend = entry.backend as CryptoBackend;
    const random = Random.fromEnv();
    const key = random.fill(new Uint8Array(32));
    let reference: AeadKey;
    const pools: AeadPool[] = [];

    async function makePool(options: { threads?: number; queueDepthMax?: number; hooked?: boolean } = {}): Promise<{ pool: AeadPool; handle: PoolKeyHandle }> {
      const pool = await AeadPool.create({
        threads: options.threads ?? 2,
        queueDepthMax: options.queueDepthMax,
        backend: entry.name,
        ...(options.hooked ? { workerUrl: HOOKED_WORKER_URL } : {}),
      });
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

    it(`delivers shared and message batches interleaved in submission order, sealed as one thread seals them (seed ${random.seed})`, async () => {
      // One worker with a deep queue: most completions are picked up without a wake-up of
      // their own (the worker wakes the pool only once its backlog is short), which must
      // neither lose nor reorder any of them.
      const { pool, handle } = await makePool({ threads: 1, queueDepthMax: 16 });
      const kinds: MemoryKind[] = ['shared', 'shared', 'mixed', 'shared', 'separate', 'one-buffer'];
      const completions: number[] = [];
      const submitted: Array<Promise<void>> = [];
      for (let index = 0; index < 200; index++) {
        while (!pool.hasCapacity) await pool.whenCapacity();
        const built = buildBatch(random, randomShape(random, 12, 1500, 40), kinds[index % kinds.length]);
        const expected = cloneBatch(built.batch);
        reference.sealBatch(expected);
        submitted.push(
          pool.seal(handle, built.batch).then((sealed) => {
            completions.push(index);
            expect(Buffer.from(sealed.slab).equals(Buffer.from(expected.slab))).toBe(true);
          }),
        );
      }
      await Promise.all(submitted);
      expect(completions).toEqual(Array.from({ length: 200 }, (_, index) => index));
    });

    it('opens shared batches through the ring: status written in place, forgeries zeroed, count returned', async () => {
      const { pool, handle } = await makePool();
      for (let round = 0; round < 20; round++) {
        const built = buildBatch(random, randomShape(random, 8, 900, 24), 'shared');
        reference.sealBatch(built.batch);
        const forged = random.int(0, built.batch.count - 1);
        const place = built.places[forged];
        built.batch.slab[place.offset + place.aadBytes + place.payloadBytes] ^= 0x01;
        const expected = cloneBatch(built.batch);
        const expectedStatus = new Uint8Array(built.batch.count);
        const expectedAuthenticated = reference.openBatch(expected, expectedStatus);
        const status = makeStatus(built.batch.count, true);
        const result = await pool.open(handle, built.batch, status);
        expect(result.status).toBe(status);
        expect(result.batch.slab).toBe(built.batch.slab);
        expect(result.authenticated).toBe(expectedAuthenticated);
        expect([...status]).toEqual([...expectedStatus]);
        expect(Buffer.from(built.batch.slab).equals(Buffer.from(expected.slab))).toBe(true);
      }
    });

    it('rejects a shared batch with a bad layout with the single-thread error, in its turn, touching nothing', async () => {
      const { pool, handle } = await makePool();
      const before = buildBatch(random, randomShape(random, 4, 300, 24), 'shared');
      const bad = buildBatch(random, randomShape(random, 4, 300, 24), 'shared');
      bad.batch.layout[2] = bad.batch.slab.byteLength;
      const after = buildBatch(random, randomShape(random, 4, 300, 24), 'shared');
      const expected = thrownBy(() => reference.sealBatch(cloneBatch(bad.batch)));
      const untouched = bad.batch.slab.slice();
      const order: string[] = [];
      const first = pool.seal(handle, before.batch).then(() => order.push('before'));
      // Handlers attached directly to each pool promise, so each observes its settling at once.
      const failed = pool.seal(handle, bad.batch).then(
        () => {
          throw new Error('expected the bad batch to be rejected');
        },
        (error: Error) => {
          order.push('bad');
          return error;
        },
      );
      const last = pool.seal(handle, after.batch).then(() => order.push('after'));
      const [, error] = await Promise.all([first, failed, last]);
      expectSameError(error, expected);
      expect(order).toEqual(['before', 'bad', 'after']);
      expect(Buffer.from(bad.batch.slab).equals(Buffer.from(untouched))).toBe(true);

      // A bad count or a view of the wrong type is still refused at once, as before.
      const wrongCount = { ...after.batch, count: after.batch.count + 1 };
      expectSameError(await rejection(pool.seal(handle, wrongCount)), thrownBy(() => reference.sealBatch(cloneBatch(wrongCount))));
      const wrongType = { ...after.batch, layout: new Uint8Array(after.batch.layout.buffer) } as unknown as PacketBatch;
      expect(await rejection(pool.seal(handle, wrongType))).toBeInstanceOf(TypeError);
      expect(pool.inFlight).toBe(0);
    });

    it('carries worker errors on shared batches back with class and code, in order with message batches', async () => {
      const { pool, handle } = await makePool({ hooked: true });
      const sealcastFailure = markedBatch(random, MARKERS.throwSealcast, 'shared');
      const plainFailure = markedBatch(random, MARKERS.throwPlain, 'shared');
      const fine = markedBatch(random, MARKERS.none, 'separate');
      const fineShared = markedBatch(random, MARKERS.none, 'shared');
      const order: string[] = [];
      const note = (name: string) => (value: unknown) => {
        order.push(name);
        return value;
      };
      const unexpected = (): never => {
        throw new Error('expected a rejection');
      };
      const results = await Promise.all([
        pool.seal(handle, sealcastFailure.batch).then(unexpected, note('sealcast')),
        pool.seal(handle, fine.batch).then(note('fine')),
        pool.seal(handle, plainFailure.batch).then(unexpected, note('plain')),
        pool.seal(handle, fineShared.batch).then(note('fineShared')),
      ]);
      expect(order).toEqual(['sealcast', 'fine', 'plain', 'fineShared']);
      const sealcastError = results[0] as Error;
      expect(isSealcastError(sealcastError) && sealcastError.code).toBe('E_KEY');
      expect(sealcastError.message).toBe('fixture: key schedule refused');
      const plainError = results[2] as Error;
      expect(isSealcastError(plainError) && plainError.code).toBe('E_INTERNAL');
      expect(plainError.message).toContain('fixture: plain failure');
    });

    it('rejects the shared batches of a worker that exits with E_POOL and goes on with the other', async () => {
      const { pool, handle } = await makePool({ hooked: true, threads: 2 });
      const doomed = markedBatch(random, MARKERS.exit, 'shared');
      const failure = rejection(pool.seal(handle, doomed.batch));
      const error = await failure;
      expect(isSealcastError(error) && error.code).toBe('E_POOL');
      const survivor = markedBatch(random, MARKERS.none, 'shared');
      const expected = cloneBatch(survivor.batch);
      reference.sealBatch(expected);
      const sealed = await pool.seal(handle, survivor.batch);
      expect(Buffer.from(sealed.slab).equals(Buffer.from(expected.slab))).toBe(true);
      expect(pool.liveThreads).toBe(1);
    });

    it('orders key removal after the shared batches submitted before it', async () => {
      const { pool, handle } = await makePool();
      const batches = Array.from({ length: 4 }, () => buildBatch(random, randomShape(random, 6, 1200, 24), 'shared'));
      const sealed = batches.map((built) => pool.seal(handle, built.batch));
      const removed = pool.removeKey(handle);
      await expect(Promise.all(sealed)).resolves.toHaveLength(4);
      await removed;
      const late = buildBatch(random, randomShape(random, 2, 100, 8), 'shared');
      const error = await rejection(pool.seal(handle, late.batch));
      expect(isSealcastError(error) && error.code).toBe('E_CLOSED');
    });

    it('keeps each worker’s buffer table bounded while many distinct shared buffers pass through', async () => {
      const { pool, handle } = await makePool({ threads: 2, queueDepthMax: 8 });
      const total = 3 * BUFFER_TABLE_IDLE_ENTRIES_MAX;
      const first = buildBatch(random, randomShape(random, 3, 200, 16), 'shared');
      const expectedFirst = cloneBatch(first.batch);
      reference.sealBatch(expectedFirst);
      await pool.seal(handle, first.batch);
      for (let index = 0; index < total; index++) {
        while (!pool.hasCapacity) await pool.whenCapacity();
        const built = buildBatch(random, randomShape(random, 3, 200, 16), 'shared');
        const expected = cloneBatch(built.batch);
        reference.sealBatch(expected);
        void pool.seal(handle, built.batch).then((sealed) => {
          expect(Buffer.from(sealed.slab).equals(Buffer.from(expected.slab))).toBe(true);
        });
      }
      while (pool.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 2));
      for (const held of pool.sharedBuffersHeld) {
        expect(held).toBeLessThanOrEqual(BUFFER_TABLE_IDLE_ENTRIES_MAX);
      }
      // The first buffer was forgotten long ago; sealing in it again (a fresh nonce) posts it anew.
      first.batch.nonces.fill(0x5a);
      const again = cloneBatch(first.batch);
      reference.sealBatch(again);
      const resealed = await pool.seal(handle, first.batch);
      expect(Buffer.from(resealed.slab).equals(Buffer.from(again.slab))).toBe(true);
    });
  });
}

describe('BufferTable', () => {
  function makeTable(): { table: BufferTable; control: Int32Array; received: () => Array<{ id: number; buffer: SharedArrayBuffer | null }>; close: () => void } {
    const channel = new MessageChannel();
    const control = new Int32Array(new SharedArrayBuffer(16));
    const table = new BufferTable(channel.port1, control, 2);
    const received = () => {
      const updates: Array<{ id: number; buffer: SharedArrayBuffer | null }> = [];
      for (let message = receiveMessageOnPort(channel.port2); message !== undefined; message = receiveMessageOnPort(channel.port2)) {
        updates.push(message.message as { id: number; buffer: SharedArrayBuffer | null });
      }
      return updates;
    };
    return { table, control, received, close: () => channel.port1.close() };
  }

  it('posts a buffer once, counts every update, and reuses the id of an evicted buffer', () => {
    const { table, control, received, close } = makeTable();
    try {
      const buffer = new SharedArrayBuffer(64);
      const id = table.acquire(buffer);
      expect(table.acquire(buffer)).toBe(id);
      expect(received()).toEqual([{ id, buffer }]);
      table.release(id);
      table.release(id);
      const others = Array.from({ length: BUFFER_TABLE_IDLE_ENTRIES_MAX }, () => new SharedArrayBuffer(64));
      for (const other of others) table.release(table.acquire(other));
      const updates = received();
      // One idle buffer too many: the least recently used one (the first) was forgotten.
      expect(updates).toContainEqual({ id, buffer: null });
      expect(updates.filter((update) => update.buffer !== null)).toHaveLength(BUFFER_TABLE_IDLE_ENTRIES_MAX);
      expect(table.size).toBe(BUFFER_TABLE_IDLE_ENTRIES_MAX);
      expect(Atomics.load(control, 2)).toBe(1 + BUFFER_TABLE_IDLE_ENTRIES_MAX + 1);
      // Its id is free again for the next new buffer, and the first buffer comes back as new.
      const newcomer = new SharedArrayBuffer(64);
      expect(table.acquire(newcomer)).toBe(id);
      expect(table.acquire(buffer)).not.toBe(id);
    } finally {
      close();
    }
  });

  it('never evicts a buffer in use, and bounds the bytes of idle buffers', () => {
    const { table, received, close } = makeTable();
    try {
      const busy = new SharedArrayBuffer(1024);
      const busyId = table.acquire(busy);
      const big = BUFFER_TABLE_IDLE_BYTES_MAX / 2 + 1;
      for (let index = 0; index < 4; index++) table.release(table.acquire(new SharedArrayBuffer(big)));
      const updates = received();
      expect(updates).not.toContainEqual({ id: busyId, buffer: null });
      // At most one idle buffer of just over half the byte bound fits beside the new one.
      expect(table.size).toBeLessThanOrEqual(3);
      expect(table.acquire(busy)).toBe(busyId);
    } finally {
      close();
    }
  });
});
