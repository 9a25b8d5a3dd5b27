// GroupKeyRing against forged session ids: a receiver in key-file mode derives a packet key for
// every session id it sees in an unauthenticated header. The ring must bound that work, never
// throw away a key that opened a packet, and leave refused ids to be counted as drops.

import { createHash, randomBytes, randomInt } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../dist/crypto/load.js';
import type { AeadKey } from '../../dist/crypto/backend.js';
import { derivePacketKey, EpochKeySource, GroupKeyRing } from '../../dist/keys/packet-keys.js';
import { encodeHeader, HEADER_BYTES, PacketType, TAG_BYTES } from '../../dist/packet/format.js';
import { openSenderSocket } from '../../dist/pipeline/multicast.js';
import { Receiver } from '../../dist/pipeline/receiver.js';
import { Sender } from '../../dist/pipeline/sender.js';

const backend = await loadBackend('wasm');
const suite = 'chacha20-poly1305' as const;

/** A clock the test moves by hand. */
function manualClock(): { nowMs: () => number; advance: (ms: number) => void } {
  let now = 1_000;
  return { nowMs: () => now, advance: (ms) => (now += ms) };
}

/** One DATA packet of `session`, sealed with `key`, as a batch ready to open. */
function sealedPacket(key: AeadKey, session: Uint8Array, sequence: number) {
  const payloadBytes = 100;
  const slab = new Uint8Array(HEADER_BYTES + payloadBytes + TAG_BYTES);
  encodeHeader(slab, 0, { type: PacketType.DATA, suite, sessionId: session, epoch: 0, sequence, streamOffset: sequence * payloadBytes, payloadBytes });
  slab.set(randomBytes(payloadBytes), HEADER_BYTES);
  const layout = new Uint32Array(backend.constants.layoutWords);
  layout[0] = 0;
  layout[1] = HEADER_BYTES;
  layout[2] = payloadBytes;
  const nonces = new Uint8Array(12);
  new DataView(nonces.buffer).setUint32(8, sequence);
  key.sealBatch({ slab, layout, nonces, count: 1 });
  return { slab, layout, nonces, count: 1 };
}

function opens(key: AeadKey, batch: ReturnType<typeof sealedPacket>): boolean {
  return key.openBatch({ ...batch, slab: new Uint8Array(batch.slab) }, new Uint8Array(1)) === 1;
}

describe('GroupKeyRing under forged session ids', () => {
  it('derives keys for unknown sessions only within its budget; refused lookups return undefined', () => {
    const clock = manualClock();
    const ring = new GroupKeyRing(backend, randomBytes(32), { derivationsPerSecond: 16, nowMs: clock.nowMs });
    let derived = 0;
    for (let index = 0; index < 1000; index++) if (ring.lookup(randomBytes(8), 0, suite) !== undefined) derived++;
    // A flood inside one instant gets the burst and nothing more.
    expect(derived).toBe(16);
    expect(ring.stats).toMatchObject({ derivations: 16, refusedDerivations: 984 });
    // Half a second later, half a second's worth more.
    clock.advance(500);
    derived = 0;
    for (let index = 0; index < 1000; index++) if (ring.lookup(randomBytes(8), 0, suite) !== undefined) derived++;
    expect(derived).toBe(8);
    ring.destroy();
  });

  it('with its defaults, a flood of forged ids costs at most a small burst of derivations', () => {
    const clock = manualClock();
    const ring = new GroupKeyRing(backend, randomBytes(32), { nowMs: clock.nowMs });
    let answered = 0;
    for (let index = 0; index < 5000; index++) if (ring.lookup(randomBytes(8), 0, suite) !== undefined) answered++;
    expect(answered).toBeLessThanOrEqual(64);
    expect(answered).toBeGreaterThan(0);
    ring.destroy();
  });

  it('keeps a key that opened a packet through a flood of forged ids (default options, real clock)', () => {
    const groupKey = randomBytes(32);
    const session = randomBytes(8);
    const ring = new GroupKeyRing(backend, groupKey);
    const senderKey = derivePacketKey(backend, suite, groupKey, session, 0);
    const genuine = ring.lookup(session, 0, suite)!;
    expect(opens(genuine, sealedPacket(senderKey, session, 0))).toBe(true);
    // More forged ids than the ring keeps for unauthenticated sessions (8): an unprotected
    // genuine key, the oldest entry, would be evicted and destroyed.
    for (let index = 0; index < 200; index++) ring.lookup(randomBytes(8), 0, suite);
    expect(genuine.destroyed).toBe(false);
    expect(ring.lookup(session, 0, suite)).toBe(genuine);
    expect(opens(genuine, sealedPacket(senderKey, session, 1))).toBe(true);
    senderKey.destroy();
    ring.destroy();
  });

  it('keeps a key that opened a packet when the budget allows every forged id (manual clock)', () => {
    const groupKey = randomBytes(32);
    const session = randomBytes(8);
    const clock = manualClock();
    const ring = new GroupKeyRing(backend, groupKey, { nowMs: clock.nowMs });
    const senderKey = derivePacketKey(backend, suite, groupKey, session, 0);
    const genuine = ring.lookup(session, 0, suite)!;
    expect(opens(genuine, sealedPacket(senderKey, session, 0))).toBe(true);
    // Forged ids spaced out so the budget allows every one: the worst case for eviction.
    for (let index = 0; index < 200; index++) {
      clock.advance(1000);
      expect(ring.lookup(randomBytes(8), 0, suite)).toBeDefined();
    }
    expect(genuine.destroyed).toBe(false);
    expect(ring.lookup(session, 0, suite)).toBe(genuine);
    expect(opens(genuine, sealedPacket(senderKey, session, 1))).toBe(true);
    expect(ring.stats.authenticatedKeys).toBe(1);
    senderKey.destroy();
    ring.destroy();
    expect(genuine.destroyed).toBe(true);
  });

  it('a key that failed to open anything is still evictable, and the key returned last never is', () => {
    // The number form (unauthenticatedEntriesMax) and the real clock: 11 derivations fit the burst.
    const ring = new GroupKeyRing(backend, randomBytes(32), 2);
    const session = randomBytes(8);
    const attackerKey = derivePacketKey(backend, suite, randomBytes(32), session, 0);
    const first = ring.lookup(session, 0, suite)!;
    // A packet sealed under another key does not authenticate, so it does not protect the entry.
    expect(opens(first, sealedPacket(attackerKey, session, 0))).toBe(false);
    let previous = first;
    for (let index = 0; index < 10; index++) {
      const next = ring.lookup(randomBytes(8), 0, suite)!;
      // A receiver may still hold `previous` for a batch it has not opened: it must stay usable.
      expect(previous.destroyed).toBe(false);
      previous = next;
    }
    expect(first.destroyed).toBe(true);
    expect(ring.stats.evictions).toBe(9);
    attackerKey.destroy();
    ring.destroy();
  });

  it('checks its options', () => {
    expect(() => new GroupKeyRing(backend, randomBytes(32), { unauthenticatedEntriesMax: 1 })).toThrow(/unauthenticatedEntriesMax/);
    expect(() => new GroupKeyRing(backend, randomBytes(32), { derivationsPerSecond: 0 })).toThrow(/derivationsPerSecond/);
    expect(() => new GroupKeyRing(backend, randomBytes(32), { authenticatedEntriesMax: 1.5 })).toThrow(/authenticatedEntriesMax/);
  });
});

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}

describe('a Receiver with a GroupKeyRing, flooded with forged session ids', () => {
  it('counts the refused ids as noKey drops, stays within the budget, and still receives the genuine stream exactly', async () => {
    const group = { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
    const groupKey = randomBytes(32);
    const ring = new GroupKeyRing(backend, groupKey);
    const startedAtMs = performance.now();
    // Forged packets fail authentication under the keys the ring derives for them; the test is
    // about the ring, so the receiver's give-up threshold is set out of reach.
    const receiver = new Receiver({ backend, keys: ring.lookup, group, startTimeoutMs: 15_000, wrongKeyPackets: 1_000_000 });
    const output = new Collector();
    const receiving = receiver.receive(output);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const attacker = await openSenderSocket({ group, interfaceAddress: '127.0.0.1', ttl: 0 });
    const forged = new Uint8Array(HEADER_BYTES + 64 + TAG_BYTES);
    const forgedCount = 2000;
    try {
      for (let index = 0; index < forgedCount; index++) {
        encodeHeader(forged, 0, { type: PacketType.DATA, suite, sessionId: randomBytes(8), epoch: 0, sequence: index, streamOffset: 0, payloadBytes: 64 });
        await new Promise<void>((resolve) => attacker.send(forged, () => resolve()));
        if (index % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // Let the budget refill a few tokens (16 a second), so the genuine session's first packet
      // is derived at once; the receiver gives up 3 s after a first failure without a success.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const data = randomBytes(512 * 1024);
      const session = randomBytes(8);
      const senderKey = derivePacketKey(backend, suite, groupKey, session, 0);
      const sender = new Sender({ backend, suite, keys: new EpochKeySource(0, senderKey), sessionId: session, group, rateBitsPerSecond: 50e6 });
      const sent = await sender.send(
        (async function* () {
          for (let offset = 0; offset < data.byteLength; offset += 64 * 1024) {
            yield data.subarray(offset, offset + 64 * 1024);
            await new Promise((resolve) => setImmediate(resolve));
          }
        })(),
      );
      const result = await receiving;
      const elapsedSeconds = (performance.now() - startedAtMs) / 1000;
      expect(result.outcome).toBe('complete');
      expect(Buffer.concat(output.chunks).equals(data)).toBe(true);
      expect(result.sha256).toBe(createHash('sha256').update(data).digest('hex'));
      expect(sent.sha256).toBe(result.sha256);
      const stats = ring.stats;
      // The budget: a burst of 16 plus 16 a second (with one to spare for rounding).
      expect(stats.derivations).toBeLessThanOrEqual(16 + Math.ceil(16 * elapsedSeconds) + 1);
      expect(stats.refusedDerivations).toBeGreaterThan(0);
      expect(result.drops.noKey).toBeGreaterThanOrEqual(stats.refusedDerivations);
      expect(stats.authenticatedKeys).toBe(1);
      senderKey.destroy();
    } finally {
      attacker.close();
      ring.destroy();
    }
  }, 30_000);
});
