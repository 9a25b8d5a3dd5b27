// The native backend through its TypeScript wrapper: it round-trips every suite, equals
// node:crypto byte for byte, turns forgeries into statuses, validates before calling the addon,
// and refuses use after destroy().

import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { CryptoBackend, PacketBatch } from '../../dist/crypto/backend.js';
import { ALL_SUITES } from '../../dist/crypto/backend.js';
import { loadBackend } from '../../dist/crypto/load.js';
import { loadNativeBackend } from '../../dist/crypto/native.js';
import { SealcastError } from '../../dist/errors.js';
import { describeTitle, probeNative } from './availability.js';
import { buildBatch, equalBytes, nodeSeal, nonceOf, randomKey, regions, TAG_BYTES, type SlotSpec, type TestBatch } from './slots.js';

const availability = probeNative();

/** Sizes around the block boundaries of both ciphers, a datagram, and a jumbo frame. */
const PAYLOAD_SIZES = [0, 1, 15, 16, 17, 63, 64, 65, 255, 1400, 8192, 65000];

function asBatch(batch: TestBatch): PacketBatch {
  return { slab: batch.slab, layout: batch.layout, nonces: batch.nonces, count: batch.count };
}

function mixedSpecs(): SlotSpec[] {
  return PAYLOAD_SIZES.map((payloadBytes, index) => ({
    aadBytes: [0, 1, 13, 28, 64, 100][index % 6],
    payloadBytes,
    gapBytes: index % 4,
  }));
}

describe.skipIf(availability.binding === null)(describeTitle('native backend', availability), () => {
  const backend: CryptoBackend = availability.binding === null ? (null as unknown as CryptoBackend) : loadNativeBackend();

  it('is cached and reached through loadBackend("native")', async () => {
    expect(loadNativeBackend()).toBe(backend);
    expect(await loadBackend('native')).toBe(backend);
    expect(backend.name).toBe('native');
    expect([...backend.suites]).toEqual([...ALL_SUITES]);
    expect(backend.openSslVersion).toBe(availability.binding?.OPENSSL_VERSION);
    expect(backend.constants).toEqual({
      keyBytes: availability.binding?.KEY_BYTES,
      nonceBytes: availability.binding?.NONCE_BYTES,
      tagBytes: availability.binding?.TAG_BYTES,
      layoutWords: availability.binding?.LAYOUT_WORDS,
      payloadBytesMax: availability.binding?.PAYLOAD_BYTES_MAX,
      aadBytesMax: availability.binding?.AAD_BYTES_MAX,
      statusOk: availability.binding?.STATUS_OK,
      statusAuthFailed: availability.binding?.STATUS_AUTH_FAILED,
    });
    expect(Object.isFrozen(backend.constants)).toBe(true);
  });

  for (const suite of ALL_SUITES) {
    describe(suite, () => {
      it('seals every slot exactly as node:crypto does, leaving headers and nonces alone', () => {
        const key = randomKey(suite);
        const batch = buildBatch(mixedSpecs());
        const noncesBefore = batch.nonces.slice();
        const layoutBefore = batch.layout.slice();
        const aead = backend.createKey(suite, key);
        expect(aead.suite).toBe(suite);
        expect(aead.backend).toBe('native');
        aead.sealBatch(asBatch(batch));
        for (let slot = 0; slot < batch.count; slot++) {
          const { aad, payload, tag } = regions(batch, slot);
          const expected = nodeSeal(suite, key, nonceOf(batch, slot), batch.original.subarray(...aad), batch.original.subarray(...payload));
          expect(equalBytes(batch.slab.subarray(...payload), expected.ciphertext), `slot ${slot} ciphertext`).toBe(true);
          expect(equalBytes(batch.slab.subarray(...tag), expected.tag), `slot ${slot} tag`).toBe(true);
          expect(equalBytes(batch.slab.subarray(...aad), batch.original.subarray(...aad))).toBe(true);
        }
        // Bytes between and after the slots are not the backend's to touch.
        const last = regions(batch, batch.count - 1);
        expect(equalBytes(batch.slab.subarray(last.tag[1]), batch.original.subarray(last.tag[1]))).toBe(true);
        for (let slot = 1; slot < batch.count; slot++) {
          const gapStart = regions(batch, slot - 1).tag[1];
          expect(equalBytes(batch.slab.subarray(gapStart, batch.offsets[slot]), batch.original.subarray(gapStart, batch.offsets[slot]))).toBe(true);
        }
        expect(equalBytes(batch.nonces, noncesBefore)).toBe(true);
        expect(equalBytes(new Uint8Array(batch.layout.buffer), new Uint8Array(layoutBefore.buffer))).toBe(true);
        aead.destroy();
      });

      it('opens what it sealed, restoring every plaintext', () => {
        const key = randomKey(suite);
        const batch = buildBatch(mixedSpecs());
        const sealer = backend.createKey(suite, key);
        const opener = backend.createKey(suite, key);
        sealer.sealBatch(asBatch(batch));
        const status = new Uint8Array(batch.count).fill(9);
        expect(opener.openBatch(asBatch(batch), status)).toBe(batch.count);
        expect(status.every((value) => value === backend.constants.statusOk)).toBe(true);
        for (let slot = 0; slot < batch.count; slot++) {
          const { aad, payload } = regions(batch, slot);
          expect(equalBytes(batch.slab.subarray(aad[0], payload[1]), batch.original.subarray(aad[0], payload[1]))).toBe(true);
        }
        sealer.destroy();
        opener.destroy();
      });

      it('rejects a flipped bit in the header, the payload or the tag, and only in that slot', () => {
        const key = randomKey(suite);
        for (const where of ['aad', 'payload', 'tag'] as const) {
          const batch = buildBatch([
            { aadBytes: 28, payloadBytes: 1400 },
            { aadBytes: 28, payloadBytes: 300, gapBytes: 5 },
            { aadBytes: 28, payloadBytes: 64 },
          ]);
          const aead = backend.createKey(suite, key);
          aead.sealBatch(asBatch(batch));
          const target = regions(batch, 1)[where];
          const bit = randomBytes(4).readUInt32LE(0) % ((target[1] - target[0]) * 8);
          batch.slab[target[0] + (bit >> 3)] ^= 1 << (bit & 7);
          const status = new Uint8Array(3);
          expect(aead.openBatch(asBatch(batch), status), `flip in ${where}`).toBe(2);
          expect([...status]).toEqual([0, 1, 0]);
          const forged = regions(batch, 1);
          expect(batch.slab.subarray(...forged.payload).every((byte) => byte === 0)).toBe(true);
          for (const slot of [0, 2]) {
            const { aad, payload } = regions(batch, slot);
            expect(equalBytes(batch.slab.subarray(aad[0], payload[1]), batch.original.subarray(aad[0], payload[1]))).toBe(true);
          }
          aead.destroy();
        }
      });

      it('fails every slot under the wrong key or the wrong nonce', () => {
        const batch = buildBatch([{ aadBytes: 12, payloadBytes: 100 }, { aadBytes: 0, payloadBytes: 0 }]);
        const sealer = backend.createKey(suite, randomKey(suite));
        sealer.sealBatch(asBatch(batch));
        const sealed = batch.slab.slice();
        const stranger = backend.createKey(suite, randomKey(suite));
        const status = new Uint8Array(2);
        expect(stranger.openBatch(asBatch(batch), status)).toBe(0);
        expect([...status]).toEqual([1, 1]);
        batch.slab.set(sealed);
        batch.nonces[0] ^= 1;
        batch.nonces[12 + 11] ^= 0x80;
        expect(sealer.openBatch(asBatch(batch), status)).toBe(0);
        expect([...status]).toEqual([1, 1]);
        sealer.destroy();
        stranger.destroy();
      });
    });
  }

  describe('validation before the addon is called', () => {
    const suite = 'chacha20-poly1305';

    it('rejects bad suites and keys with clear errors', () => {
      expect(() => backend.createKey('aes-256-ccm' as never, randomKey(suite))).toThrow(TypeError);
      expect(() => backend.createKey('aes-256-ccm' as never, randomKey(suite))).toThrow(/suite must be one of/);
      expect(() => backend.createKey(suite, new Uint8Array(31))).toThrow(/key must be 32 bytes for chacha20-poly1305, got 31/);
      expect(() => backend.createKey('aes-192-gcm', new Uint8Array(32))).toThrow(/key must be 24 bytes for aes-192-gcm/);
      expect(() => backend.createKey(suite, 'secret' as never)).toThrow(/key must be a Uint8Array/);
    });

    it('rejects malformed batches, naming the value, and leaves the slab untouched', () => {
      const aead = backend.createKey(suite, randomKey(suite));
      const batch = buildBatch([{ aadBytes: 10, payloadBytes: 50 }, { aadBytes: 10, payloadBytes: 50 }]);
      const good = asBatch(batch);
      const cases: [unknown, RegExp][] = [
        [null, /batch must be an object/],
        [{ ...good, slab: new Uint16Array(8) }, /batch\.slab must be a Uint8Array/],
        [{ ...good, layout: new Int32Array(6) }, /batch\.layout must be a Uint32Array/],
        [{ ...good, count: 3 }, /batch\.count must be between 0 and 2/],
        [{ ...good, count: 1.5 }, /batch\.count must be an integer/],
        [{ ...good, nonces: batch.nonces.subarray(0, 20) }, /batch\.nonces must hold 2 nonces/],
        [{ ...good, slab: batch.slab.subarray(0, 100) }, /batch\.layout slot 1: slot ends at byte/],
        [{ ...good, layout: new Uint32Array([0, 10, 50, 70, 10, 50]) }, /batch\.layout slot 1: offset 70 overlaps/],
      ];
      for (const [value, message] of cases) {
        expect(() => aead.sealBatch(value as PacketBatch)).toThrow(message);
      }
      expect(() => aead.openBatch(good, new Uint8Array(1))).toThrow(/status must hold one byte per slot \(2\), got 1/);
      expect(() => aead.openBatch(good, undefined as never)).toThrow(/status must be a Uint8Array/);
      expect(equalBytes(batch.slab, batch.original)).toBe(true);
      aead.destroy();
    });
  });

  describe('destroy', () => {
    it('makes later calls throw SealcastError E_CLOSED and is idempotent', () => {
      const aead = backend.createKey('aes-256-gcm', randomKey('aes-256-gcm'));
      const batch = buildBatch([{ aadBytes: 4, payloadBytes: 4 }]);
      aead.sealBatch(asBatch(batch));
      const sealed = batch.slab.slice();
      expect(aead.destroyed).toBe(false);
      aead.destroy();
      aead.destroy();
      expect(aead.destroyed).toBe(true);
      for (const call of [() => aead.sealBatch(asBatch(batch)), () => aead.openBatch(asBatch(batch), new Uint8Array(1))]) {
        let caught: unknown;
        try {
          call();
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(SealcastError);
        expect((caught as SealcastError).code).toBe('E_CLOSED');
      }
      expect(equalBytes(batch.slab, sealed)).toBe(true);
    });

    it('leaves the caller free to zero its own key after createKey', () => {
      const key = randomKey('chacha20-poly1305');
      const keyCopy = key.slice();
      const aead = backend.createKey('chacha20-poly1305', key);
      key.fill(0);
      const batch = buildBatch([{ aadBytes: 8, payloadBytes: 40 }]);
      aead.sealBatch(asBatch(batch));
      const { aad, payload, tag } = regions(batch, 0);
      const expected = nodeSeal('chacha20-poly1305', keyCopy, nonceOf(batch, 0), batch.original.subarray(...aad), batch.original.subarray(...payload));
      expect(equalBytes(batch.slab.subarray(...tag), expected.tag)).toBe(true);
      expect(batch.slab.subarray(...tag).byteLength).toBe(TAG_BYTES);
      aead.destroy();
    });
  });

  it('produces the same bytes as the WASM backend for ChaCha20-Poly1305', async () => {
    const wasm = await loadBackend('wasm');
    const key = randomKey('chacha20-poly1305');
    const batch = buildBatch(mixedSpecs());
    const wasmSlab = batch.slab.slice();
    const native = backend.createKey('chacha20-poly1305', key);
    const fallback = wasm.createKey('chacha20-poly1305', key);
    native.sealBatch(asBatch(batch));
    fallback.sealBatch({ ...asBatch(batch), slab: wasmSlab });
    expect(equalBytes(batch.slab, wasmSlab)).toBe(true);
    native.destroy();
    fallback.destroy();
  });
});
