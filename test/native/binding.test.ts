// The raw addon, called directly so that the TypeScript validation is bypassed: every bad
// argument must make the C++ layer throw a TypeError or RangeError (never crash, never touch
// memory), and the exported constants must describe what the core really does.

import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { NativeBinding, NativeKeyHandle } from '../../dist/crypto/native.js';
import { describeTitle, probeNative } from './availability.js';
import { buildBatch, equalBytes, randomKey, regions, TAG_BYTES, type TestBatch } from './slots.js';

const availability = probeNative();
const ADDON_PATH = fileURLToPath(new URL('../../build/Release/sealcast.node', import.meta.url));

describe.skipIf(availability.binding === null)(describeTitle('native binding (raw, no TS validation)', availability), () => {
  const binding = availability.binding as NativeBinding;

  function freshKey(suite = 'chacha20-poly1305'): NativeKeyHandle {
    return new binding.AeadKey(suite, randomKey(suite));
  }

  function threeSlots(): TestBatch {
    return buildBatch([
      { aadBytes: 20, payloadBytes: 100 },
      { aadBytes: 20, payloadBytes: 33, gapBytes: 3 },
      { aadBytes: 0, payloadBytes: 7, gapBytes: 1 },
    ]);
  }

  /** Calls sealBatch with one argument replaced and expects a throw that leaves the slab alone. */
  function expectSealThrows(args: unknown[], errorType: typeof TypeError | typeof RangeError, message: RegExp, slab: Uint8Array): void {
    const before = slab.slice();
    const key = freshKey();
    expect(() => (key.sealBatch as (...values: unknown[]) => void)(...args)).toThrow(errorType);
    expect(() => (key.sealBatch as (...values: unknown[]) => void)(...args)).toThrow(message);
    expect(equalBytes(slab, before)).toBe(true);
    key.destroy();
  }

  describe('constants', () => {
    it('come from the core and match the OpenSSL Node runs', () => {
      expect(binding.KEY_BYTES).toBe(32);
      expect(binding.NONCE_BYTES).toBe(12);
      expect(binding.TAG_BYTES).toBe(16);
      expect(binding.LAYOUT_WORDS).toBe(3);
      expect(binding.PAYLOAD_BYTES_MAX).toBe(65536);
      expect(binding.AAD_BYTES_MAX).toBe(65536);
      expect(binding.STATUS_OK).toBe(0);
      expect(binding.STATUS_AUTH_FAILED).toBe(1);
      expect([...binding.SUITES]).toEqual(['chacha20-poly1305', 'aes-256-gcm', 'aes-128-gcm', 'aes-192-gcm']);
      expect(binding.SUITE_KEY_BYTES).toEqual({
        'chacha20-poly1305': 32,
        'aes-256-gcm': 32,
        'aes-128-gcm': 16,
        'aes-192-gcm': 24,
      });
      // The addon links no libcrypto of its own: its OpenSSL symbols resolve from the node binary.
      expect(binding.OPENSSL_VERSION).toContain(`OpenSSL ${process.versions.openssl}`);
    });
  });

  describe('key construction', () => {
    it('rejects a suite that is not a string or not known', () => {
      expect(() => new binding.AeadKey(42 as unknown as string, randomKey('aes-256-gcm'))).toThrow(TypeError);
      expect(() => new binding.AeadKey('aes-256-ccm', randomKey('aes-256-gcm'))).toThrow(/unknown suite "aes-256-ccm"/);
      expect(() => new binding.AeadKey('', randomKey('aes-256-gcm'))).toThrow(TypeError);
    });

    it('rejects a key that is not a Uint8Array', () => {
      for (const key of [undefined, null, 'k'.repeat(32), new Array(32).fill(0), new Uint16Array(16), new Uint8ClampedArray(32), new ArrayBuffer(32)]) {
        expect(() => new binding.AeadKey('chacha20-poly1305', key as unknown as Uint8Array)).toThrow(/key must be a Uint8Array/);
      }
    });

    it('rejects a key of the wrong length for its suite', () => {
      expect(() => new binding.AeadKey('chacha20-poly1305', new Uint8Array(16))).toThrow(RangeError);
      expect(() => new binding.AeadKey('aes-256-gcm', new Uint8Array(31))).toThrow(/key must be 32 bytes for aes-256-gcm, got 31/);
      expect(() => new binding.AeadKey('aes-128-gcm', new Uint8Array(32))).toThrow(/key must be 16 bytes/);
      expect(() => new binding.AeadKey('aes-192-gcm', new Uint8Array(0))).toThrow(/key must be 24 bytes/);
    });

    it('accepts a Buffer key and an offset view', () => {
      const backing = new Uint8Array(40);
      const key = new binding.AeadKey('aes-256-gcm', backing.subarray(5, 37));
      expect(key.suite).toBe('aes-256-gcm');
      key.destroy();
      const bufferKey = new binding.AeadKey('chacha20-poly1305', Buffer.alloc(32, 7));
      bufferKey.destroy();
    });
  });

  describe('argument types', () => {
    it('rejects a slab, layout or nonces of the wrong type', () => {
      const batch = threeSlots();
      const { slab, layout, nonces, count } = batch;
      expectSealThrows([new Uint16Array(slab.byteLength >> 1), layout, nonces, count], TypeError, /slab must be a Uint8Array/, slab);
      expectSealThrows([Array.from(slab), layout, nonces, count], TypeError, /slab must be a Uint8Array/, slab);
      expectSealThrows([null, layout, nonces, count], TypeError, /slab must be a Uint8Array/, slab);
      expectSealThrows([slab, new Int32Array(layout), nonces, count], TypeError, /layout must be a Uint32Array/, slab);
      expectSealThrows([slab, new Uint8Array(layout.buffer), nonces, count], TypeError, /layout must be a Uint32Array/, slab);
      expectSealThrows([slab, Array.from(layout), nonces, count], TypeError, /layout must be a Uint32Array/, slab);
      expectSealThrows([slab, layout, new Uint32Array(9), count], TypeError, /nonces must be a Uint8Array/, slab);
      expectSealThrows([slab, layout, undefined, count], TypeError, /nonces must be a Uint8Array/, slab);
    });

    it('rejects a count that is not a non-negative integer', () => {
      const { slab, layout, nonces } = threeSlots();
      expectSealThrows([slab, layout, nonces, '3'], TypeError, /count must be an integer/, slab);
      expectSealThrows([slab, layout, nonces, undefined], TypeError, /count must be an integer/, slab);
      expectSealThrows([slab, layout, nonces, 3n], TypeError, /count must be an integer/, slab);
      expectSealThrows([slab, layout, nonces, -1], RangeError, /count must be an integer between/, slab);
      expectSealThrows([slab, layout, nonces, 1.5], RangeError, /count must be an integer between/, slab);
      expectSealThrows([slab, layout, nonces, Number.NaN], RangeError, /count must be an integer between/, slab);
      expectSealThrows([slab, layout, nonces, 2 ** 32], RangeError, /count must be an integer between/, slab);
      expectSealThrows([slab, layout, nonces, Number.POSITIVE_INFINITY], RangeError, /count must be an integer between/, slab);
    });

    it('rejects a status that is missing or of the wrong type', () => {
      const { slab, layout, nonces, count } = threeSlots();
      const key = freshKey();
      for (const status of [undefined, null, new Uint32Array(3), [0, 0, 0], new Uint8ClampedArray(3)]) {
        expect(() => key.openBatch(slab, layout, nonces, count, status as unknown as Uint8Array)).toThrow(/status must be a Uint8Array/);
      }
      key.destroy();
    });
  });

  describe('batch bounds', () => {
    it('rejects a count beyond the layout or the nonces', () => {
      const { slab, layout, nonces } = threeSlots();
      expectSealThrows([slab, layout, nonces, 4], RangeError, /count 4 exceeds the layout's 3 slots/, slab);
      expectSealThrows([slab, layout.subarray(0, 8), nonces, 3], RangeError, /exceeds the layout's 2 slots/, slab);
      expectSealThrows([slab, layout, nonces.subarray(0, 35), 3], RangeError, /count 3 exceeds the 2 nonces/, slab);
    });

    it('rejects a slot that ends beyond the slab, including with offsets near 2^32', () => {
      const batch = threeSlots();
      const { slab, nonces, count } = batch;
      const tooLong = batch.layout.slice();
      tooLong[2 * 3 + 2] = slab.byteLength; // The last slot's payload runs past the end.
      expectSealThrows([slab, tooLong, nonces, count], RangeError, /layout slot 2: slot ends at byte \d+, beyond the slab/, slab);
      const farOffset = batch.layout.slice();
      farOffset[2 * 3] = 0xffff_ffff;
      expectSealThrows([slab, farOffset, nonces, count], RangeError, /layout slot 2: slot ends at byte 42949673\d\d, beyond the slab/, slab);
      // The tag alone must fit too: a slot of 0 + 0 bytes still needs 16 bytes.
      const exactEnd = new Uint32Array([slab.byteLength - TAG_BYTES + 1, 0, 0]);
      expectSealThrows([slab, exactEnd, nonces, 1], RangeError, /beyond the slab/, slab);
      expectSealThrows([slab.subarray(0, 10), batch.layout, nonces, 1], RangeError, /beyond the slab/, slab);
    });

    it('rejects overlapping and out-of-order slots', () => {
      const batch = threeSlots();
      const { slab, nonces, count } = batch;
      const overlapping = batch.layout.slice();
      overlapping[3] = overlapping[0] + 20 + 100 + TAG_BYTES - 1; // Slot 1 starts inside slot 0's tag.
      expectSealThrows([slab, overlapping, nonces, count], RangeError, /layout slot 1: offset \d+ overlaps the previous slot/, slab);
      const reversed = new Uint32Array([...batch.layout.subarray(3, 6), ...batch.layout.subarray(0, 3)]);
      expectSealThrows([slab, reversed, nonces, 2], RangeError, /layout slot 1: .*overlaps the previous slot/, slab);
      const twice = new Uint32Array([...batch.layout.subarray(0, 3), ...batch.layout.subarray(0, 3)]);
      expectSealThrows([slab, twice, nonces, 2], RangeError, /overlaps the previous slot/, slab);
    });

    it('rejects an AAD or payload above the maxima', () => {
      const slab = new Uint8Array(3 * 65536);
      const nonces = new Uint8Array(12);
      expectSealThrows([slab, new Uint32Array([0, binding.AAD_BYTES_MAX + 1, 0]), nonces, 1], RangeError, /AAD of 65537 bytes exceeds 65536/, slab);
      expectSealThrows([slab, new Uint32Array([0, 0, binding.PAYLOAD_BYTES_MAX + 1]), nonces, 1], RangeError, /payload of 65537 bytes exceeds 65536/, slab);
    });

    it('rejects layout, nonces or status sharing memory with the slab', () => {
      const memory = new ArrayBuffer(4096);
      const slab = new Uint8Array(memory, 0, 2048);
      const layout = new Uint32Array(memory, 1024, 3);
      layout.set([0, 10, 10]);
      const separateLayout = new Uint32Array([0, 10, 10]);
      const nonces = new Uint8Array(12);
      expectSealThrows([slab, layout, nonces, 1], RangeError, /layout must not overlap slab/, slab);
      expectSealThrows([slab, separateLayout, new Uint8Array(memory, 2000, 12), 1], RangeError, /nonces must not overlap slab/, slab);
      const key = freshKey();
      expect(() => key.openBatch(slab, separateLayout, nonces, 1, new Uint8Array(memory, 2047, 1))).toThrow(/status must not overlap slab/);
      expect(() => key.openBatch(slab, separateLayout, nonces, 1, nonces.subarray(0, 1))).toThrow(/status must not overlap nonces/);
      const statusBehindLayout = new Uint8Array(separateLayout.buffer, 0, 4);
      expect(() => key.openBatch(slab, separateLayout, nonces, 1, statusBehindLayout)).toThrow(/status must not overlap layout/);
      // Views of one buffer that do not share bytes are fine.
      key.sealBatch(slab, separateLayout, new Uint8Array(memory, 2048, 12), 1);
      key.destroy();
    });

    it('rejects a status shorter than the count', () => {
      const { slab, layout, nonces, count } = threeSlots();
      const key = freshKey();
      key.sealBatch(slab, layout, nonces, count);
      const sealed = slab.slice();
      expect(() => key.openBatch(slab, layout, nonces, count, new Uint8Array(2))).toThrow(RangeError);
      expect(() => key.openBatch(slab, layout, nonces, count, new Uint8Array(2))).toThrow(/status holds 2 bytes but the batch has 3 slots/);
      expect(equalBytes(slab, sealed)).toBe(true);
      key.destroy();
    });

    it('checks the whole batch before touching any byte', () => {
      const batch = threeSlots();
      const { slab, nonces, count } = batch;
      const lastSlotBad = batch.layout.slice();
      lastSlotBad[2 * 3 + 1] = slab.byteLength;
      expectSealThrows([slab, lastSlotBad, nonces, count], RangeError, /layout slot 2/, slab);
      expect(equalBytes(slab, batch.original)).toBe(true);
    });

    it('accepts an empty batch and an empty slab', () => {
      const key = freshKey();
      key.sealBatch(new Uint8Array(0), new Uint32Array(0), new Uint8Array(0), 0);
      expect(key.openBatch(new Uint8Array(0), new Uint32Array(0), new Uint8Array(0), 0, new Uint8Array(0))).toBe(0);
      key.destroy();
    });

    it('works on memory of a SharedArrayBuffer and of a detached buffer', () => {
      const shared = new Uint8Array(new SharedArrayBuffer(256));
      const layout = new Uint32Array(new SharedArrayBuffer(12));
      layout.set([5, 10, 100]);
      const nonces = new Uint8Array(new SharedArrayBuffer(12));
      shared.fill(9);
      const key = freshKey('aes-256-gcm');
      key.sealBatch(shared, layout, nonces, 1);
      expect(shared.subarray(15, 115).every((byte) => byte === 9)).toBe(false);
      const status = new Uint8Array(new SharedArrayBuffer(1));
      expect(key.openBatch(shared, layout, nonces, 1, status)).toBe(1);
      expect(shared.subarray(15, 115).every((byte) => byte === 9)).toBe(true);
      const detached = new Uint8Array(64);
      structuredClone(detached.buffer, { transfer: [detached.buffer] });
      expect(() => key.sealBatch(detached, new Uint32Array([0, 0, 0]), nonces, 1)).toThrow(/beyond the slab \(0 bytes\)|beyond the slab's 0 bytes/);
      key.destroy();
    });
  });

  describe('destroy', () => {
    it('makes later calls throw E_CLOSED and is idempotent', () => {
      const batch = threeSlots();
      const { slab, layout, nonces, count } = batch;
      const key = freshKey();
      expect(key.destroyed).toBe(false);
      key.destroy();
      expect(key.destroyed).toBe(true);
      expect(key.suite).toBeNull();
      key.destroy();
      let sealError: unknown;
      try {
        key.sealBatch(slab, layout, nonces, count);
      } catch (error) {
        sealError = error;
      }
      expect(sealError).toBeInstanceOf(Error);
      expect((sealError as { code?: string }).code).toBe('E_CLOSED');
      expect(() => key.openBatch(slab, layout, nonces, count, new Uint8Array(count))).toThrow(/destroyed/);
      expect(equalBytes(slab, batch.original)).toBe(true);
    });

    it('keys that are never destroyed are freed by the garbage collector without harm', () => {
      setFlagsFromString('--expose-gc');
      const collect = runInNewContext('gc') as () => void;
      const { slab, layout, nonces, count } = threeSlots();
      for (let round = 0; round < 2000; round++) {
        const key = freshKey(round % 2 === 0 ? 'chacha20-poly1305' : 'aes-256-gcm');
        key.sealBatch(slab, layout, nonces, count);
      }
      collect();
      collect();
      // The process is still sound: a fresh key seals and opens.
      const key = freshKey('aes-128-gcm');
      key.sealBatch(slab, layout, nonces, count);
      expect(key.openBatch(slab, layout, nonces, count, new Uint8Array(count))).toBe(count);
      key.destroy();
    });
  });

  describe('worker threads', () => {
    it('loads in several workers at once, each with its own key, sealing like the main thread', async () => {
      const suite = 'chacha20-poly1305';
      const keyBytes = randomKey(suite);
      const template = threeSlots();
      const mainKey = new binding.AeadKey(suite, keyBytes);
      const expected = template.slab.slice();
      mainKey.sealBatch(expected, template.layout, template.nonces, template.count);
      mainKey.destroy();
      const source = `
        const { parentPort, workerData } = require('node:worker_threads');
        const binding = require(workerData.addonPath);
        const key = new binding.AeadKey(workerData.suite, workerData.key);
        const slab = workerData.slab;
        for (let round = 0; round < 50; round++) {
          const copy = slab.slice();
          key.sealBatch(copy, workerData.layout, workerData.nonces, workerData.count);
          if (round === 49) parentPort.postMessage(copy);
        }
        key.destroy();
      `;
      const runs = [0, 1, 2].map(
        () =>
          new Promise<Uint8Array>((resolve, reject) => {
            const worker = new Worker(source, {
              eval: true,
              workerData: {
                addonPath: ADDON_PATH,
                suite,
                key: keyBytes,
                slab: template.original,
                layout: template.layout,
                nonces: template.nonces,
                count: template.count,
              },
            });
            const timer = setTimeout(() => {
              void worker.terminate();
              reject(new Error('worker timed out'));
            }, 30_000);
            worker.once('message', (value: Uint8Array) => resolve(value));
            worker.once('error', reject);
            worker.once('exit', (code) => {
              clearTimeout(timer);
              if (code !== 0) reject(new Error(`worker exited with ${code}`));
            });
          }),
      );
      for (const sealed of await Promise.all(runs)) {
        expect(equalBytes(sealed, expected)).toBe(true);
      }
    });
  });

  describe('ChaCha20-Poly1305 engines', () => {
    it('uses the lanes kernel where the CPU has it, the primitives where Node exports them, EVP when asked, and EVP for AES-GCM', () => {
      if (binding.CHACHA_LANES_AVAILABLE) expect(binding.CHACHA_PRIMITIVES_AVAILABLE).toBe(true);
      const fastest = binding.CHACHA_LANES_AVAILABLE ? 'lanes' : binding.CHACHA_PRIMITIVES_AVAILABLE ? 'primitives' : 'evp';
      const chacha = new binding.AeadKey('chacha20-poly1305', randomKey('chacha20-poly1305'));
      expect(chacha.engine).toBe(fastest);
      const forcedPrimitives = new binding.AeadKey('chacha20-poly1305', randomKey('chacha20-poly1305'), 'primitives');
      expect(forcedPrimitives.engine).toBe(binding.CHACHA_PRIMITIVES_AVAILABLE ? 'primitives' : 'evp');
      const forcedEvp = new binding.AeadKey('chacha20-poly1305', randomKey('chacha20-poly1305'), 'evp');
      expect(forcedEvp.engine).toBe('evp');
      const gcm = new binding.AeadKey('aes-256-gcm', randomKey('aes-256-gcm'));
      expect(gcm.engine).toBe('evp');
      expect(() => new binding.AeadKey('chacha20-poly1305', randomKey('chacha20-poly1305'), 'fast' as never)).toThrow(/engine must be "auto", "primitives" or "evp"/);
      expect(() => new binding.AeadKey('chacha20-poly1305', randomKey('chacha20-poly1305'), 1 as never)).toThrow(TypeError);
      for (const key of [chacha, forcedPrimitives, forcedEvp, gcm]) key.destroy();
      expect(chacha.engine).toBeNull();
    });

    // Batches of 1 to 40 slots, so that the lanes engine packs lanes across slots and groups and
    // plans more than once (a plan holds 256 lanes); payloads up to 3000 bytes, with sizes at the
    // edges of its head/tail split (multiples of 16 blocks, and one byte either side) mixed in.
    const EDGE_PAYLOAD_BYTES = [0, 1, 63, 64, 65, 1023, 1024, 1025, 1348, 2047, 2048, 2049];
    for (const engine of ['auto', 'primitives'] as const) {
      it(`the ${engine} engine and EVP seal identically, open each other, and reject the same forgeries`, () => {
        const keyBytes = randomKey('chacha20-poly1305');
        const fast = new binding.AeadKey('chacha20-poly1305', keyBytes, engine);
        const evp = new binding.AeadKey('chacha20-poly1305', keyBytes, 'evp');
        for (let round = 0; round < 30; round++) {
          const specs = Array.from({ length: 1 + ((round * 13) % 40) }, (_, slot) => ({
            aadBytes: Math.floor(Math.random() * 300),
            payloadBytes:
              slot === 0 && round < 3 ? round * 16 : (slot + round) % 3 === 0 ? EDGE_PAYLOAD_BYTES[(slot + round) % EDGE_PAYLOAD_BYTES.length] : Math.floor(Math.random() * 3000),
            gapBytes: Math.floor(Math.random() * 5),
          }));
          const batch = buildBatch(specs);
          const evpSlab = batch.slab.slice();
          fast.sealBatch(batch.slab, batch.layout, batch.nonces, batch.count);
          evp.sealBatch(evpSlab, batch.layout, batch.nonces, batch.count);
          expect(equalBytes(batch.slab, evpSlab), `round ${round}`).toBe(true);
          const forgedSlot = round % batch.count;
          const forged = regions(batch, forgedSlot);
          for (const slab of [batch.slab, evpSlab]) slab[forged.tag[0] + (round % TAG_BYTES)] ^= 0x01;
          const fastStatus = new Uint8Array(batch.count);
          const evpStatus = new Uint8Array(batch.count);
          // Each engine opens the other's output.
          expect(fast.openBatch(evpSlab, batch.layout, batch.nonces, batch.count, fastStatus)).toBe(batch.count - 1);
          expect(evp.openBatch(batch.slab, batch.layout, batch.nonces, batch.count, evpStatus)).toBe(batch.count - 1);
          expect([...fastStatus]).toEqual([...evpStatus]);
          expect(fastStatus[forgedSlot]).toBe(binding.STATUS_AUTH_FAILED);
          // Both leave the same bytes behind: plaintexts where authentic, zeros where forged.
          expect(equalBytes(batch.slab, evpSlab)).toBe(true);
          expect(batch.slab.subarray(...forged.payload).every((byte) => byte === 0)).toBe(true);
          for (let slot = 0; slot < batch.count; slot++) {
            if (slot === forgedSlot) continue;
            const { aad, payload } = regions(batch, slot);
            expect(equalBytes(batch.slab.subarray(aad[0], payload[1]), batch.original.subarray(aad[0], payload[1]))).toBe(true);
          }
        }
        fast.destroy();
        evp.destroy();
      });
    }
  });

  describe('opening', () => {
    it('reports a forged slot as a status and zeroes only its payload', () => {
      const batch = threeSlots();
      const { slab, layout, nonces, count } = batch;
      const key = freshKey('aes-256-gcm');
      key.sealBatch(slab, layout, nonces, count);
      const forged = regions(batch, 1);
      slab[forged.payload[0] + 5] ^= 0x40;
      const tagBefore = slab.slice(forged.tag[0], forged.tag[1]);
      const status = new Uint8Array([7, 7, 7, 7]);
      expect(key.openBatch(slab, layout, nonces, count, status)).toBe(2);
      expect([...status]).toEqual([binding.STATUS_OK, binding.STATUS_AUTH_FAILED, binding.STATUS_OK, 7]);
      expect(slab.subarray(...forged.payload).every((byte) => byte === 0)).toBe(true);
      expect(equalBytes(slab.subarray(...forged.aad), batch.original.subarray(...forged.aad))).toBe(true);
      expect(equalBytes(slab.subarray(...forged.tag), tagBefore)).toBe(true);
      for (const slot of [0, 2]) {
        const { aad, payload } = regions(batch, slot);
        expect(equalBytes(slab.subarray(aad[0], payload[1]), batch.original.subarray(aad[0], payload[1]))).toBe(true);
      }
      key.destroy();
    });
  });
});

