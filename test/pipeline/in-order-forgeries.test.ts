// The receive path's in-order open under a flood of forgeries at the stream's next offset: the
// output stays exact, every forgery is counted, and the in-order open is not called once per
// forgery (each call checks the whole batch, so a call per packet would make a flood cost the
// receiver quadratic time). Runs a Receiver in this process on loopback (TTL 0), fed by a socket
// that sends hand-made packets, so the order of genuine and forged packets is fixed.

import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AeadKey, CryptoBackend } from '../../dist/crypto/backend.js';
import { loadBackend } from '../../dist/crypto/load.js';
import { derivePacketKey } from '../../dist/keys/packet-keys.js';
import { NONCE_BYTES, writeNonce } from '../../dist/keys/sequencer.js';
import { encodeEnd, END_PAYLOAD_BYTES } from '../../dist/packet/end.js';
import { encodeHeader, HEADER_BYTES, PacketType, TAG_BYTES, type PacketHeader } from '../../dist/packet/format.js';
import { loadHeaderScanner } from '../../dist/packet/scan.js';
import { openSenderSocket } from '../../dist/pipeline/multicast.js';
import { Receiver } from '../../dist/pipeline/receiver.js';
import { probeNative } from '../native/availability.js';

const native = probeNative();
const scanner = native.binding === null ? null : loadHeaderScanner();
const SUITE = 'chacha20-poly1305' as const;
const PAYLOAD_BYTES = 1348;
const GENUINE_PACKETS = 400;
const FORGERIES = 300;

class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}

/** One sealed datagram: header (AAD), payload, tag. */
function seal(key: AeadKey, sessionId: Uint8Array, type: number, sequence: number, streamOffset: number, payload: Uint8Array): Buffer {
  const datagram = Buffer.alloc(HEADER_BYTES + payload.byteLength + TAG_BYTES);
  encodeHeader(datagram, 0, { type: type as PacketHeader['type'], suite: SUITE, sessionId, epoch: 0, sequence, streamOffset, payloadBytes: payload.byteLength });
  datagram.set(payload, HEADER_BYTES);
  const nonces = new Uint8Array(NONCE_BYTES);
  writeNonce(nonces, 0, 0, sequence);
  key.sealBatch({ slab: datagram, layout: Uint32Array.of(0, HEADER_BYTES, payload.byteLength), nonces, count: 1 });
  return datagram;
}

describe.skipIf(scanner === null)('in-order open under a flood of forgeries', () => {
  afterEach(() => vi.restoreAllMocks());

  it('keeps the output exact, counts every forgery, and does not open them one call each', async () => {
    const backend: CryptoBackend = await loadBackend('native');
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const senderKey = derivePacketKey(backend, SUITE, dataKey, sessionId, 0);
    const receiverKey = derivePacketKey(backend, SUITE, dataKey, sessionId, 0);
    const group = { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
    const data = randomBytes(GENUINE_PACKETS * PAYLOAD_BYTES);
    const openInOrder = vi.spyOn(scanner!, 'openInOrder');

    const descriptorsBefore = readdirSync('/proc/self/fd').length;
    const receiver = new Receiver({ backend, keys: () => receiverKey, group, sessionId, startTimeoutMs: 10_000, idleTimeoutMs: 5_000, io: 'native' });
    const output = new Collector();
    const receiving = receiver.receive(output);
    await new Promise((resolve) => setTimeout(resolve, 100));

    const socket = await openSenderSocket({ group, interfaceAddress: '127.0.0.1', ttl: 0 });
    const send = (datagram: Buffer): Promise<void> => new Promise((resolve, reject) => socket.send(datagram, (error) => (error ? reject(error) : resolve())));
    const genuine = (index: number): Buffer =>
      seal(senderKey, sessionId, PacketType.DATA, index, index * PAYLOAD_BYTES, data.subarray(index * PAYLOAD_BYTES, (index + 1) * PAYLOAD_BYTES));
    try {
      // The first packet settles the session; then, back to back so that they share batches,
      // forgeries of the next packet (right header, garbage where the ciphertext and tag go),
      // then the genuine rest and END.
      await send(genuine(0));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const forged = genuine(1);
      forged.fill(0x5a, HEADER_BYTES);
      const burst: Promise<void>[] = [];
      for (let index = 0; index < FORGERIES; index++) burst.push(send(forged));
      for (let index = 1; index < GENUINE_PACKETS; index++) burst.push(send(genuine(index)));
      await Promise.all(burst);
      const end = new Uint8Array(END_PAYLOAD_BYTES);
      encodeEnd(end, 0, { totalBytes: data.byteLength, dataPackets: GENUINE_PACKETS, sha256: createHash('sha256').update(data).digest() });
      for (let repeat = 0; repeat < 3; repeat++) await send(seal(senderKey, sessionId, PacketType.END, GENUINE_PACKETS + repeat, data.byteLength, end));
      const result = await receiving;
      expect(result.outcome).toBe('complete');
      expect(Buffer.concat(output.chunks).equals(data)).toBe(true);
      expect(result.drops.authFailed).toBe(FORGERIES);
      // A handful of calls per batch at most, however many forgeries it holds.
      expect(openInOrder.mock.calls.length).toBeGreaterThan(0);
      expect(openInOrder.mock.calls.length).toBeLessThan(FORGERIES / 4);
      // The receiver's socket and its receive watch's duplicate descriptor are gone; the
      // sender's socket is still open.
      expect(readdirSync('/proc/self/fd').length).toBe(descriptorsBefore + 1);
    } finally {
      socket.close();
      senderKey.destroy();
      receiverKey.destroy();
    }
  });
});
