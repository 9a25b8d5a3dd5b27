import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../dist/crypto/load.js';
import { NONCE_BYTES, NonceSequencer, writeNonce } from '../../dist/keys/sequencer.js';
import { derivePacketKey, EpochKeySource, GroupKeyRing } from '../../dist/keys/packet-keys.js';

describe('NonceSequencer', () => {
  it('hands out consecutive blocks that never overlap', () => {
    const sequencer = new NonceSequencer();
    const seen = new Set<number>();
    for (const count of [1, 512, 3, 1024, 7]) {
      const first = sequencer.reserve(count);
      for (let sequence = first; sequence < first + count; sequence++) {
        expect(seen.has(sequence)).toBe(false);
        seen.add(sequence);
      }
    }
    expect(sequencer.next).toBe(1 + 512 + 3 + 1024 + 7);
  });

  it('refuses to wrap when the space is exhausted', () => {
    const sequencer = new NonceSequencer(0, 10);
    expect(sequencer.reserve(8)).toBe(0);
    expect(() => sequencer.reserve(3)).toThrow(/exhausted/);
    expect(sequencer.reserve(2)).toBe(8);
    expect(() => sequencer.reserve(1)).toThrow(/exhausted/);
  });

  it('rejects bad counts', () => {
    expect(() => new NonceSequencer().reserve(0)).toThrow(RangeError);
    expect(() => new NonceSequencer().reserve(1.5)).toThrow(RangeError);
  });

  it('writes epoch ‖ sequence big-endian', () => {
    const nonce = new Uint8Array(NONCE_BYTES);
    writeNonce(nonce, 0, 0x01020304, 2 ** 32 * 0x0a0b + 0x0c0d0e0f);
    expect([...nonce]).toEqual([1, 2, 3, 4, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]);
  });
});

describe('packet keys', () => {
  const sessionA = new Uint8Array(8).fill(1);
  const sessionB = new Uint8Array(8).fill(2);
  const groupKey = new Uint8Array(32).fill(7);

  it('binds session, epoch and suite: a packet sealed for one opens under none of the others', async () => {
    const backend = await loadBackend('wasm');
    const seal = derivePacketKey(backend, 'chacha20-poly1305', groupKey, sessionA, 0);
    const slab = new Uint8Array(64);
    const layout = Uint32Array.of(0, 8, 40);
    const nonces = new Uint8Array(12);
    seal.sealBatch({ slab, layout, nonces, count: 1 });
    const sealed = slab.slice();
    const openWith = (key: ReturnType<typeof derivePacketKey>): number => {
      const copy = sealed.slice();
      return key.openBatch({ slab: copy, layout, nonces, count: 1 }, new Uint8Array(1));
    };
    expect(openWith(derivePacketKey(backend, 'chacha20-poly1305', groupKey, sessionA, 0))).toBe(1);
    expect(openWith(derivePacketKey(backend, 'chacha20-poly1305', groupKey, sessionB, 0))).toBe(0);
    expect(openWith(derivePacketKey(backend, 'chacha20-poly1305', groupKey, sessionA, 1))).toBe(0);
  });

  it('refuses a suite the backend lacks with E_BACKEND', async () => {
    const backend = await loadBackend('wasm');
    expect(() => derivePacketKey(backend, 'aes-256-gcm', groupKey, sessionA, 0)).toThrow(/not available on the wasm backend/);
  });

  it('GroupKeyRing caches per session, answers only epoch 0, bounds its cache and destroys keys', async () => {
    const backend = await loadBackend('wasm');
    const ring = new GroupKeyRing(backend, groupKey, 2);
    const first = ring.lookup(sessionA, 0, 'chacha20-poly1305');
    expect(first).toBeDefined();
    expect(ring.lookup(sessionA, 0, 'chacha20-poly1305')).toBe(first);
    expect(ring.lookup(sessionA, 1, 'chacha20-poly1305')).toBeUndefined();
    expect(ring.lookup(sessionA, 0, 'aes-256-gcm')).toBeUndefined();
    ring.lookup(sessionB, 0, 'chacha20-poly1305');
    ring.lookup(new Uint8Array(8).fill(3), 0, 'chacha20-poly1305');
    expect(first!.destroyed).toBe(true);
    ring.destroy();
    expect(ring.lookup(sessionA, 0, 'chacha20-poly1305')).toBeUndefined();
  });

  it('EpochKeySource only moves forward', async () => {
    const backend = await loadBackend('wasm');
    const key0 = derivePacketKey(backend, 'chacha20-poly1305', groupKey, sessionA, 0);
    const key1 = derivePacketKey(backend, 'chacha20-poly1305', groupKey, sessionA, 1);
    const source = new EpochKeySource(0, key0);
    expect(source.advance(1, key1)).toBe(key0);
    expect(source.epoch).toBe(1);
    expect(source.key).toBe(key1);
    expect(() => source.advance(1, key0)).toThrow(/increase/);
  });
});
