// The control plane's batch primitives: every implementation (native, node:crypto) gives the
// bytes node:crypto gives item by item, for random batches including empty keys and messages;
// bad arguments are refused in TypeScript and, for the native one, again in C++.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createDecipheriv, createHmac, hash, randomBytes } from 'node:crypto';
import { nativeBatchCryptoOrNull, nodeBatchCrypto, type BatchCrypto } from '../../dist/control/batch-crypto.js';
import { loadNativeBinding } from '../../dist/crypto/native.js';
import { probeNative } from '../native/availability.js';

const native = nativeBatchCryptoOrNull();
const availability = probeNative();
const implementations: BatchCrypto[] = [nodeBatchCrypto, ...(native ? [native] : [])];

const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max }).map((array) => Buffer.from(array));

describe.each(implementations.map((implementation) => [implementation.name, implementation] as const))('batch crypto: %s', (_name, crypto) => {
  it('HMAC-SHA256 of every (key, message) pair equals node:crypto item by item', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(bytes(80), bytes(300)), { minLength: 0, maxLength: 20 }), (pairs) => {
        const result = crypto.hmacEach(
          pairs.map(([key]) => key),
          pairs.map(([, message]) => message),
        );
        expect(result.byteLength).toBe(32 * pairs.length);
        pairs.forEach(([key, message], index) => {
          expect(result.subarray(32 * index, 32 * index + 32).equals(createHmac('sha256', key).update(message).digest())).toBe(true);
        });
      }),
      { numRuns: 60 },
    );
  });

  it('SHA-256 of every message equals node:crypto item by item', () => {
    fc.assert(
      fc.property(fc.array(bytes(300), { minLength: 0, maxLength: 20 }), (messages) => {
        const result = crypto.sha256Each(messages);
        messages.forEach((message, index) => {
          expect(result.subarray(32 * index, 32 * index + 32).equals(hash('sha256', message, 'buffer'))).toBe(true);
        });
      }),
      { numRuns: 60 },
    );
  });

  it('seals each plaintext under its own key so that node:crypto opens it', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(bytes(100), bytes(200)), { minLength: 1, maxLength: 12 }), (items) => {
        const keys = items.map(() => randomBytes(32));
        const nonces = items.map(() => randomBytes(12));
        const sealed = crypto.sealEach(
          keys,
          nonces,
          items.map(([aad]) => aad),
          items.map(([, plaintext]) => plaintext),
        );
        items.forEach(([aad, plaintext], index) => {
          expect(sealed[index].byteLength).toBe(plaintext.byteLength + 16);
          const decipher = createDecipheriv('chacha20-poly1305', keys[index], nonces[index], { authTagLength: 16 });
          decipher.setAAD(aad, { plaintextLength: plaintext.byteLength });
          decipher.setAuthTag(sealed[index].subarray(plaintext.byteLength));
          const opened = Buffer.concat([decipher.update(sealed[index].subarray(0, plaintext.byteLength)), decipher.final()]);
          expect(opened.equals(plaintext)).toBe(true);
        });
      }),
      { numRuns: 40 },
    );
  });

  it('refuses bad arguments with TypeError or RangeError naming the value', () => {
    expect(() => crypto.hmacEach([Buffer.alloc(1)], [])).toThrow(/messages must hold 1 items/);
    expect(() => crypto.hmacEach(['key' as unknown as Uint8Array], [Buffer.alloc(1)])).toThrow(TypeError);
    expect(() => crypto.sha256Each('text' as unknown as Uint8Array[])).toThrow(TypeError);
    expect(() => crypto.sealEach([Buffer.alloc(31)], [Buffer.alloc(12)], [Buffer.alloc(0)], [Buffer.alloc(1)])).toThrow(/keys items must be 32 bytes/);
    expect(() => crypto.sealEach([Buffer.alloc(32)], [Buffer.alloc(8)], [Buffer.alloc(0)], [Buffer.alloc(1)])).toThrow(/nonces items must be 12 bytes/);
    expect(() => crypto.sealEach([Buffer.alloc(32)], [Buffer.alloc(12)], [], [Buffer.alloc(1)])).toThrow(/aads must hold 1 items/);
  });
});

describe('native batch crypto, called directly', () => {
  it.skipIf(availability.binding === null)('asserts item bounds again in C++', () => {
    const binding = loadNativeBinding() as unknown as {
      hmacSha256Batch(...args: unknown[]): void;
      sha256Batch(...args: unknown[]): void;
      sealEachUnderOwnKey(...args: unknown[]): void;
    };
    const slab = new Uint8Array(16);
    const target = new Uint8Array(64);
    expect(() => binding.sha256Batch(slab, Uint32Array.of(8, 9), 1, target)).toThrow(/runs past the end of its slab/);
    expect(() => binding.sha256Batch(slab, Uint32Array.of(0, 4), 2, target)).toThrow(/fewer than count items/);
    expect(() => binding.sha256Batch(slab, Uint32Array.of(0, 4, 0, 4, 0, 4), 3, target)).toThrow(/target is smaller/);
    expect(() => binding.hmacSha256Batch(slab, Uint32Array.of(0, 16), slab, Uint32Array.of(20, 1), 1, target)).toThrow(/messages item 0/);
    expect(() => binding.hmacSha256Batch(slab, new Float64Array(2), slab, Uint32Array.of(0, 1), 1, target)).toThrow(TypeError);
    expect(() => binding.sealEachUnderOwnKey(new Uint8Array(64), Uint32Array.of(0, 0, 8), new Uint8Array(12), 1, new Uint8Array(16))).toThrow(/keys must hold 32 bytes/);
  });

  it.skipIf(availability.binding === null)('is the implementation the server uses where the addon loads', () => {
    expect(native?.name).toBe('native');
  });
});
