// Two Senders must never seal under one packet key: each starts its sequences at 0, so they would
// repeat (key, nonce) pairs. The library refuses it, whatever way the caller reaches the same
// key; a Sender given a data key and no session id draws a random one. Loopback, TTL 0.

import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../dist/crypto/load.js';
import { derivePacketKey, EpochKeySource } from '../../dist/keys/packet-keys.js';
import { Sender } from '../../dist/pipeline/sender.js';

const wasm = await loadBackend('wasm');
const native = await loadBackend('native').catch(() => null);
const suite = 'chacha20-poly1305' as const;

function randomGroup() {
  return { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
}

/** A source that yields one chunk, then waits until release() before it ends: keeps a Sender live. */
function heldSource(): { source: AsyncIterable<Uint8Array>; started: Promise<void>; release: () => void } {
  let release!: () => void;
  let onStarted!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  async function* generate(): AsyncGenerator<Uint8Array> {
    onStarted();
    yield randomBytes(5000);
    await released;
  }
  return { source: generate(), started, release };
}

async function* bytesOf(count: number): AsyncGenerator<Uint8Array> {
  yield randomBytes(count);
}

function senderWith(keys: EpochKeySource, sessionId: Uint8Array, backend = wasm) {
  return new Sender({ backend, suite, keys, sessionId, group: randomGroup(), rateBitsPerSecond: 50e6, endRepeats: 1, endSpacingMs: 1 });
}

async function rejectionOf(promise: Promise<unknown>): Promise<{ code?: string; message?: string } | null> {
  try {
    await promise;
  } catch (error) {
    return error as { code?: string; message?: string };
  }
  return null;
}

describe('one packet key, one Sender', () => {
  it('refuses a second Sender with the same data key and session id while the first is live, and after it finished', async () => {
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    // Two separately derived key objects with the same bytes: the guard must see they are one key.
    const first = senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, sessionId, 0)), sessionId);
    const held = heldSource();
    const firstSending = first.send(held.source);
    await held.started;
    const second = senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, sessionId, 0)), sessionId);
    expect(await rejectionOf(second.send(bytesOf(3000)))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/already sealing/) });
    held.release();
    const stats = await firstSending;
    expect(stats.bytes).toBe(5000);
    // Finished is not enough: a new Sender would start at sequence 0 again under the same key.
    const third = senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, sessionId, 0)), sessionId);
    expect(await rejectionOf(third.send(bytesOf(3000)))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/already sealed a session/) });
  }, 20_000);

  it('refuses one key object given to two Senders with different session ids (same key, same nonces)', async () => {
    const key = derivePacketKey(wasm, suite, randomBytes(32), randomBytes(8), 0);
    const held = heldSource();
    const firstSending = senderWith(new EpochKeySource(0, key), randomBytes(8)).send(held.source);
    await held.started;
    const second = senderWith(new EpochKeySource(0, key), randomBytes(8));
    expect(await rejectionOf(second.send(bytesOf(100)))).toMatchObject({ code: 'E_KEY' });
    held.release();
    await firstSending;
    key.destroy();
  }, 20_000);

  it.skipIf(native === null)('recognises the same key bytes on the native and the WASM backend', async () => {
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const held = heldSource();
    const firstSending = senderWith(new EpochKeySource(0, derivePacketKey(native!, suite, dataKey, sessionId, 0)), sessionId, native!).send(held.source);
    await held.started;
    const second = senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, sessionId, 0)), sessionId);
    expect(await rejectionOf(second.send(bytesOf(100)))).toMatchObject({ code: 'E_KEY' });
    held.release();
    await firstSending;
  }, 20_000);

  it('a refused Sender does not take the key from the live one, which still completes', async () => {
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const held = heldSource();
    const firstSending = senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, sessionId, 0)), sessionId).send(held.source);
    await held.started;
    for (let attempt = 0; attempt < 3; attempt++) {
      const other = senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, sessionId, 0)), sessionId);
      expect(await rejectionOf(other.send(bytesOf(100)))).toMatchObject({ code: 'E_KEY' });
    }
    held.release();
    expect((await firstSending).bytes).toBe(5000);
  }, 20_000);

  it('allows the same key in different epochs (their nonces differ) and different session ids of one data key', async () => {
    const key = derivePacketKey(wasm, suite, randomBytes(32), randomBytes(8), 0);
    const sessionId = randomBytes(8);
    const held = heldSource();
    const firstSending = senderWith(new EpochKeySource(0, key), sessionId).send(held.source);
    await held.started;
    expect((await senderWith(new EpochKeySource(1, key), sessionId).send(bytesOf(100))).bytes).toBe(100);
    const dataKey = randomBytes(32);
    const a = randomBytes(8);
    const b = randomBytes(8);
    expect((await senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, a, 0)), a).send(bytesOf(100))).bytes).toBe(100);
    expect((await senderWith(new EpochKeySource(0, derivePacketKey(wasm, suite, dataKey, b, 0)), b).send(bytesOf(100))).bytes).toBe(100);
    held.release();
    await firstSending;
    key.destroy();
  }, 20_000);

  it('given a data key and no session id, each Sender draws its own random session id; both send at once', async () => {
    const dataKey = randomBytes(32);
    const make = () => new Sender({ backend: wasm, suite, dataKey, group: randomGroup(), rateBitsPerSecond: 50e6, endRepeats: 1, endSpacingMs: 1 });
    const first = make();
    const second = make();
    expect(Buffer.from(first.sessionId).equals(Buffer.from(second.sessionId))).toBe(false);
    const held = heldSource();
    const firstSending = first.send(held.source);
    await held.started;
    expect((await second.send(bytesOf(2000))).bytes).toBe(2000);
    held.release();
    expect((await firstSending).sessionId).toBe(Buffer.from(first.sessionId).toString('hex'));
  }, 20_000);

  it('a data key with an explicit session id is still guarded', async () => {
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const make = () => new Sender({ backend: wasm, suite, dataKey, sessionId, group: randomGroup(), rateBitsPerSecond: 50e6, endRepeats: 1, endSpacingMs: 1 });
    const held = heldSource();
    const firstSending = make().send(held.source);
    await held.started;
    expect(await rejectionOf(make().send(bytesOf(100)))).toMatchObject({ code: 'E_KEY' });
    held.release();
    await firstSending;
  }, 20_000);

  it('a Sender that failed before sealing anything gives its key back: a retry with it sends', async () => {
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const key = derivePacketKey(wasm, suite, dataKey, sessionId, 0);
    const failing = new Sender({ backend: wasm, suite, keys: new EpochKeySource(0, key), sessionId, group: { address: '10.0.0.1', port: 5000 } });
    expect(await rejectionOf(failing.send(bytesOf(100)))).toMatchObject({ code: 'E_ARG' });
    expect((await senderWith(new EpochKeySource(0, key), sessionId).send(bytesOf(100))).bytes).toBe(100);
    key.destroy();
  }, 20_000);

  it('checks its key options', () => {
    const keys = new EpochKeySource(0, derivePacketKey(wasm, suite, randomBytes(32), randomBytes(8), 0));
    const group = randomGroup();
    expect(() => new Sender({ backend: wasm, suite, keys, group })).toThrow(/needs the sessionId/);
    expect(() => new Sender({ backend: wasm, suite, group })).toThrow(/exactly one of keys/);
    expect(() => new Sender({ backend: wasm, suite, keys, dataKey: randomBytes(32), sessionId: randomBytes(8), group })).toThrow(/exactly one of keys/);
    expect(() => new Sender({ backend: wasm, suite, dataKey: randomBytes(8), group })).toThrow(/at least 16 bytes/);
  });
});
