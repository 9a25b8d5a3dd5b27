// The Sender and Receiver as a library, in one process on loopback (TTL 0): the hooks the
// control plane uses — a key source whose epoch moves, a key lookup replaced live, a fixed
// session id — behave as documented.

import { createHash, randomBytes, randomInt } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../dist/crypto/load.js';
import type { AeadKey } from '../../dist/crypto/backend.js';
import { derivePacketKey, EpochKeySource, type PacketKeyLookup } from '../../dist/keys/packet-keys.js';
import { Receiver } from '../../dist/pipeline/receiver.js';
import { Sender } from '../../dist/pipeline/sender.js';

const backend = await loadBackend('wasm');
const suite = 'chacha20-poly1305' as const;

function randomGroup() {
  return { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
}

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A random group and session, and the epoch-0 packet key twice: one for the sender, one for the receiver. */
function freshSession() {
  const dataKey = randomBytes(32);
  const sessionId = randomBytes(8);
  return {
    group: randomGroup(),
    sessionId,
    senderKey: derivePacketKey(backend, suite, dataKey, sessionId, 0),
    receiverKey: derivePacketKey(backend, suite, dataKey, sessionId, 0),
  };
}

async function* chunksOf(data: Buffer, chunkBytes: number, onChunk?: (index: number) => void): AsyncGenerator<Uint8Array> {
  for (let offset = 0, index = 0; offset < data.byteLength; offset += chunkBytes, index++) {
    onChunk?.(index);
    yield data.subarray(offset, offset + chunkBytes);
    // Let the event loop run so the receiver, in this same process, keeps up.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('Sender and Receiver in one process', () => {
  it('a key source that moves to epoch 1 mid-stream, and a lookup that knows both epochs', async () => {
    const group = randomGroup();
    const sessionId = randomBytes(8);
    const dataKeys = [randomBytes(32), randomBytes(32)];
    const senderKeys = dataKeys.map((dataKey, epoch) => derivePacketKey(backend, suite, dataKey, sessionId, epoch));
    const receiverKeys = dataKeys.map((dataKey, epoch) => derivePacketKey(backend, suite, dataKey, sessionId, epoch));
    const epochsSeen = new Set<number>();
    const lookup: PacketKeyLookup = (_session, epoch) => {
      epochsSeen.add(epoch);
      return receiverKeys[epoch];
    };
    const receiver = new Receiver({ backend, keys: lookup, group, sessionId, startTimeoutMs: 10_000, idleTimeoutMs: 5_000 });
    const output = new Collector();
    const receiving = receiver.receive(output);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const source = new EpochKeySource(0, senderKeys[0]);
    const data = randomBytes(3 * 1024 * 1024);
    const sender = new Sender({ backend, suite, keys: source, sessionId, group, rateBitsPerSecond: 100e6, slabSlots: 256 });
    const sent = await sender.send(chunksOf(data, 64 * 1024, (index) => {
      if (index === 20) source.advance(1, senderKeys[1]);
    }));
    const result = await receiving;
    expect(result.outcome).toBe('complete');
    expect(output.bytes.equals(data)).toBe(true);
    expect(result.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    expect(sent.sha256).toBe(result.sha256);
    expect([...epochsSeen].sort()).toEqual([0, 1]);
    for (const key of [...senderKeys, ...receiverKeys]) key.destroy();
  }, 30_000);

  it('a lookup replaced live: packets before the key arrives are counted, the stream starts when it does', async () => {
    const group = randomGroup();
    const sessionId = randomBytes(8);
    const dataKey = randomBytes(32);
    const senderKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
    let receiverKey: AeadKey | undefined;
    const receiver = new Receiver({ backend, keys: () => undefined, group, startTimeoutMs: 10_000 });
    const output = new Collector();
    const receiving = receiver.receive(output);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const data = randomBytes(2 * 1024 * 1024);
    // Small slabs keep the sender's read-ahead (4 slabs of 64 packets) well below the 20 chunks
    // it reads before the key is delivered, so packets went out before the receiver could open them.
    const sender = new Sender({ backend, suite, keys: new EpochKeySource(0, senderKey), sessionId, group, rateBitsPerSecond: 20e6, slabSlots: 64 });
    const sending = sender.send(chunksOf(data, 64 * 1024, (index) => {
      if (index === 20) {
        // The "control plane" delivers the key while the stream runs.
        receiverKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
        receiver.setKeyLookup((session, epoch) => (epoch === 0 && Buffer.from(session).equals(sessionId) ? receiverKey : undefined));
      }
    }));
    const [result] = await Promise.all([receiving, sending]);
    expect(result.outcome).toBe('partial');
    expect(result.drops.noKey).toBeGreaterThan(0);
    expect(result.startOffset).toBeGreaterThan(0);
    expect(output.bytes.equals(data.subarray(result.startOffset!))).toBe(true);
    senderKey.destroy();
    receiverKey?.destroy();
  }, 30_000);

  it('a receiver fixed to another session drops everything as otherSession and times out', async () => {
    const group = randomGroup();
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const senderKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
    const receiver = new Receiver({
      backend,
      keys: () => undefined,
      group,
      sessionId: randomBytes(8),
      startTimeoutMs: 1_500,
    });
    const receiving = receiver.receive(new Collector());
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sender = new Sender({ backend, suite, keys: new EpochKeySource(0, senderKey), sessionId, group, rateBitsPerSecond: 50e6 });
    await sender.send(chunksOf(randomBytes(256 * 1024), 64 * 1024));
    await expect(receiving).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(receiver.stats.drops.otherSession).toBeGreaterThan(0);
    expect(receiver.stats.bytes).toBe(0);
    senderKey.destroy();
  }, 30_000);

  it('a listener that throws ends the receive with E_INTERNAL instead of crashing the process', async () => {
    const { group, sessionId, senderKey, receiverKey } = freshSession();
    const receiver = new Receiver({ backend, keys: () => receiverKey, group, startTimeoutMs: 10_000 });
    receiver.on('start', () => {
      throw new Error('listener bug');
    });
    // The receive fails while the sender is still sending, so its rejection is observed at once.
    const failed = expect(receiver.receive(new Collector())).rejects.toMatchObject({
      code: 'E_INTERNAL',
      message: expect.stringContaining("a 'start' listener threw: listener bug"),
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sender = new Sender({ backend, suite, keys: new EpochKeySource(0, senderKey), sessionId, group, rateBitsPerSecond: 50e6 });
    await sender.send(chunksOf(randomBytes(64 * 1024), 16 * 1024));
    await failed;
    senderKey.destroy();
    receiverKey.destroy();
  }, 30_000);

  it('an output that stops taking data ends the receive with E_IO instead of crashing the process', async () => {
    const { group, sessionId, senderKey, receiverKey } = freshSession();
    // A target that never completes a write: everything after its first chunk queues, and the
    // queue bound of one byte is passed by the second chunk. Datagrams of 60 000 bytes fill an
    // output chunk within one batch, so the bound is also hit while a payload is being copied.
    const stalled = new Writable({ write: () => {} });
    const receiver = new Receiver({ backend, keys: () => receiverKey, group, startTimeoutMs: 10_000, outputQueueBytesMax: 1 });
    const failed = expect(receiver.receive(stalled)).rejects.toMatchObject({ code: 'E_IO', message: expect.stringContaining('not keeping up') });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sender = new Sender({ backend, suite, keys: new EpochKeySource(0, senderKey), sessionId, group, rateBitsPerSecond: 400e6, datagramBytes: 60_000 });
    await sender.send(chunksOf(randomBytes(4 * 1024 * 1024), 1024 * 1024));
    await failed;
    senderKey.destroy();
    receiverKey.destroy();
  }, 30_000);

  it('an END whose digest does not match what was written gives E_VERIFY', async () => {
    const group = randomGroup();
    const sessionId = randomBytes(8);
    const dataKey = randomBytes(32);
    const senderKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
    const receiverKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
    const receiver = new Receiver({ backend, keys: () => receiverKey, group, startTimeoutMs: 10_000 });
    const output = new Collector();
    const receiving = receiver.receive(output);
    receiving.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 100));
    // A sender holding the key but lying in its END record: the sealer hook changes one digest
    // byte of the END payload (the single-slot batch) before sealing it.
    const lyingSealer = (key: AeadKey, batch: { slab: Uint8Array; layout: Uint32Array; nonces: Uint8Array; count: number }) => {
      if (batch.count === 1 && batch.slab[3] === 2) batch.slab[36 + 16] ^= 1;
      key.sealBatch(batch);
    };
    const sender = new Sender({ backend, suite, keys: new EpochKeySource(0, senderKey), sessionId, group, rateBitsPerSecond: 50e6, sealer: lyingSealer });
    const data = randomBytes(100_000);
    await sender.send(chunksOf(data, 64 * 1024));
    await expect(receiving).rejects.toMatchObject({ code: 'E_VERIFY' });
    // Every byte it wrote was authenticated; only the final check failed.
    expect(output.bytes.equals(data)).toBe(true);
    senderKey.destroy();
    receiverKey.destroy();
  }, 30_000);

  it('validates its options at the boundary', () => {
    const keys = new EpochKeySource(0, derivePacketKey(backend, suite, randomBytes(32), randomBytes(8), 0));
    expect(() => new Sender({ backend, suite, keys, sessionId: new Uint8Array(7), group: randomGroup() })).toThrow(/sessionId/);
    expect(() => new Sender({ backend, suite: 'aes-256-gcm', keys, sessionId: randomBytes(8), group: randomGroup() })).toThrow(/not available on the wasm backend/);
    expect(() => new Sender({ backend, suite, keys, sessionId: randomBytes(8), group: randomGroup(), datagramBytes: 70_000 })).toThrow(/packet size/);
    expect(() => new Receiver({ backend, keys: 'nope' as never, group: randomGroup() })).toThrow(TypeError);
    expect(() => new Receiver({ backend, keys: () => undefined, group: randomGroup(), idleTimeoutMs: 0 })).toThrow(/idleTimeoutMs/);
    keys.key.destroy();
  });
});
