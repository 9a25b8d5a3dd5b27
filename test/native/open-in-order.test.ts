// The receive path's in-order open (native/open_in_order.cc, wrapped by
// HeaderScanner.openInOrder): before a batch is opened, the packets that continue the stream are
// opened straight into the output's chunk. Checked against a model built on node:crypto (open
// each packet, apply the stop rule) on random batches of real sealed packets (in order or not,
// forged, DATA or END, empty or not, fitting or not), for both suites and both ChaCha20 engines;
// that a forged packet never leaves plaintext in the target; and bad arguments, in TypeScript
// and again in C++.

import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AeadKey, CryptoBackend, PacketBatch, WireSuiteName } from '../../dist/crypto/backend.js';
import { loadBackend } from '../../dist/crypto/load.js';
import { nativeKeyHandle } from '../../dist/crypto/native.js';
import { encodeHeader, HEADER_BYTES, PacketType, TAG_BYTES, type PacketHeader } from '../../dist/packet/format.js';
import { loadHeaderScanner, type HeaderScanner, type InOrderOpenResult } from '../../dist/packet/scan.js';
import { writeNonce, NONCE_BYTES } from '../../dist/keys/sequencer.js';
import { errorOf } from '../helpers/error-of.js';
import { referenceOpen } from '../crypto/reference.js';
import { describeTitle, probeNative } from './availability.js';
import { streamArbitrary } from './stream-arbitrary.js';

const native = probeNative();
const scanner: HeaderScanner | null = native.binding === null ? null : loadHeaderScanner();
const LAYOUT_WORDS = 3;
const STATUS_OK = 0;
const STATUS_FAILED = 1;
const UNTOUCHED = 0xee;
const SESSION = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const SUITES: WireSuiteName[] = ['chacha20-poly1305', 'aes-256-gcm'];

interface PacketSpec {
  type: number;
  streamOffset: number;
  payloadBytes: number;
  forged: boolean;
}

interface SealedBatch {
  batch: PacketBatch;
  plaintexts: Uint8Array[];
  /** The slab as sealed, to check that the open leaves it alone. */
  sealed: Uint8Array;
}

/**
 * Seals packets back to back the way the receive scan lays them out (header as AAD, payload,
 * tag), with a gap of `gapBytes` before each, so that slots sit both near the slab's start and
 * far into it. A forged packet has one tag bit flipped.
 */
function sealBatch(key: AeadKey, suite: WireSuiteName, packets: PacketSpec[], gapBytes: number): SealedBatch {
  const offsets: number[] = [];
  let end = 0;
  for (const packet of packets) {
    offsets.push(end + gapBytes);
    end += gapBytes + HEADER_BYTES + packet.payloadBytes + TAG_BYTES;
  }
  const slab = new Uint8Array(Math.max(1, end));
  const layout = new Uint32Array(Math.max(1, packets.length) * LAYOUT_WORDS);
  const nonces = new Uint8Array(Math.max(1, packets.length) * NONCE_BYTES);
  const plaintexts = packets.map((packet, index) => {
    const header: PacketHeader = {
      type: packet.type as PacketHeader['type'],
      suite,
      sessionId: SESSION,
      epoch: 3,
      sequence: index + 100,
      streamOffset: packet.streamOffset,
      payloadBytes: packet.payloadBytes,
    };
    encodeHeader(slab, offsets[index], header);
    const plaintext = new Uint8Array(randomBytes(packet.payloadBytes));
    slab.set(plaintext, offsets[index] + HEADER_BYTES);
    layout[index * LAYOUT_WORDS] = offsets[index];
    layout[index * LAYOUT_WORDS + 1] = HEADER_BYTES;
    layout[index * LAYOUT_WORDS + 2] = packet.payloadBytes;
    writeNonce(nonces, index * NONCE_BYTES, 3, index + 100);
    return plaintext;
  });
  const batch: PacketBatch = { slab, layout, nonces, count: packets.length };
  key.sealBatch(batch);
  packets.forEach((packet, index) => {
    if (packet.forged) slab[offsets[index] + HEADER_BYTES + packet.payloadBytes] ^= 0x01;
  });
  return { batch, plaintexts, sealed: slab.slice() };
}

/** The rule, written plainly over node:crypto: what the open must write and where it must stop. */
function model(
  suite: WireSuiteName,
  keyBytes: Uint8Array,
  sealed: SealedBatch,
  first: number,
  nextOffset: number,
  target: Uint8Array,
  start: number,
  end: number,
  stops: HeaderScanner['inOrderStop'] & object,
): { result: InOrderOpenResult; status: Map<number, number> } {
  const { batch } = sealed;
  const status = new Map<number, number>();
  let cursor = start;
  let next = nextOffset;
  let packets = 0;
  let stop = stops.batchEnd;
  let needBytes = 0;
  for (let slot = first; slot < batch.count; slot++) {
    const offset = batch.layout[slot * LAYOUT_WORDS];
    const payloadBytes = batch.layout[slot * LAYOUT_WORDS + 2];
    const header = batch.slab.subarray(offset, offset + HEADER_BYTES);
    const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
    if (header[3] !== PacketType.DATA || payloadBytes === 0 || Number(view.getBigUint64(28)) !== next) {
      stop = stops.judgement;
      break;
    }
    if (payloadBytes > end - cursor) {
      stop = stops.targetFull;
      needBytes = payloadBytes;
      break;
    }
    const ciphertext = batch.slab.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + payloadBytes);
    const tag = batch.slab.subarray(offset + HEADER_BYTES + payloadBytes, offset + HEADER_BYTES + payloadBytes + TAG_BYTES);
    const opened = referenceOpen(suite, keyBytes, batch.nonces.subarray(slot * NONCE_BYTES, slot * NONCE_BYTES + NONCE_BYTES), header, ciphertext, tag);
    if (opened === null) {
      status.set(slot, STATUS_FAILED);
      // The failed packet's room in the target is zeroed, never left holding plaintext.
      target.fill(0, cursor, cursor + payloadBytes);
      stop = stops.authFailed;
      break;
    }
    status.set(slot, STATUS_OK);
    target.set(opened, cursor);
    cursor += payloadBytes;
    next += payloadBytes;
    packets++;
  }
  return { result: { packets, bytes: cursor - start, stop, needBytes }, status };
}

/** Random streams of real packets: a broken packet is a forged one. */
const packetsArbitrary = streamArbitrary({ typicalPayloadBytes: 1364, payloadBytesMax: 3000, packetsMax: 24 }).map(({ startOffset, packets }) => ({
  startOffset,
  packets: packets.map(({ broken, ...packet }): PacketSpec => ({ ...packet, forged: broken })),
}));

describe.skipIf(scanner === null)(describeTitle('native in-order open', native), async () => {
  const active = scanner as HeaderScanner;
  const backend: CryptoBackend = await loadBackend('native');
  const stops = active.inOrderStop!;

  for (const suite of SUITES) {
    it(`writes exactly what the node:crypto model writes and stops where it stops (${suite})`, () => {
      const keyBytes = new Uint8Array(randomBytes(32));
      const key = backend.createKey(suite, keyBytes);
      expect(active.canOpenInOrder(key)).toBe(true);
      fc.assert(
        fc.property(packetsArbitrary, fc.nat(6), fc.integer({ min: 0, max: 40_000 }), fc.nat(64), fc.constantFrom(0, 3, 80), ({ startOffset, packets }, firstRaw, targetFree, targetStart, gapBytes) => {
          const sealed = sealBatch(key, suite, packets, gapBytes);
          const first = Math.min(firstRaw, packets.length);
          const nextOffset = first < packets.length ? packets[first].streamOffset : startOffset;
          const targetEnd = targetStart + targetFree;
          const expected = new Uint8Array(targetEnd + 16).fill(UNTOUCHED);
          const actual = new Uint8Array(targetEnd + 16).fill(UNTOUCHED);
          const want = model(suite, keyBytes, sealed, first, nextOffset, expected, targetStart, targetEnd, stops);
          const status = new Uint8Array(Math.max(1, packets.length)).fill(UNTOUCHED);
          const got: InOrderOpenResult = { packets: -1, bytes: -1, stop: -1, needBytes: -1 };
          active.openInOrder(key, sealed.batch, status, first, nextOffset, actual, targetStart, targetEnd, got);
          expect(got).toEqual(want.result);
          expect(Buffer.from(actual).equals(Buffer.from(expected))).toBe(true);
          // Each packet it went through has its status; the rest are untouched, and so is the slab.
          for (let slot = 0; slot < packets.length; slot++) expect(status[slot]).toBe(want.status.get(slot) ?? UNTOUCHED);
          expect(Buffer.from(sealed.batch.slab).equals(Buffer.from(sealed.sealed))).toBe(true);
        }),
        { numRuns: 150 },
      );
      key.destroy();
    });
  }

  it('stops at an END, an empty packet, an offset that does not follow, one that does not fit, and a forgery', () => {
    const keyBytes = new Uint8Array(randomBytes(32));
    const key = backend.createKey('chacha20-poly1305', keyBytes);
    const data = (streamOffset: number, payloadBytes = 100): PacketSpec => ({ type: PacketType.DATA, streamOffset, payloadBytes, forged: false });
    const run = (packets: PacketSpec[], targetBytes = 1 << 16): InOrderOpenResult => {
      const sealed = sealBatch(key, 'chacha20-poly1305', packets, 80);
      const result: InOrderOpenResult = { packets: -1, bytes: -1, stop: -1, needBytes: -1 };
      active.openInOrder(key, sealed.batch, new Uint8Array(packets.length), 0, 1000, new Uint8Array(targetBytes), 0, targetBytes, result);
      return result;
    };
    expect(run([data(1000), data(1100), data(1200)])).toEqual({ packets: 3, bytes: 300, stop: stops.batchEnd, needBytes: 0 });
    expect(run([data(1000), { ...data(1100), type: PacketType.END }])).toEqual({ packets: 1, bytes: 100, stop: stops.judgement, needBytes: 0 });
    expect(run([data(1000), data(1100, 0), data(1100)])).toEqual({ packets: 1, bytes: 100, stop: stops.judgement, needBytes: 0 });
    expect(run([data(1000), data(1200)])).toEqual({ packets: 1, bytes: 100, stop: stops.judgement, needBytes: 0 });
    expect(run([data(999)])).toEqual({ packets: 0, bytes: 0, stop: stops.judgement, needBytes: 0 });
    expect(run([data(1000), data(1100)], 150)).toEqual({ packets: 1, bytes: 100, stop: stops.targetFull, needBytes: 100 });
    expect(run([data(1000), { ...data(1100), forged: true }, data(1200)])).toEqual({ packets: 1, bytes: 100, stop: stops.authFailed, needBytes: 0 });
    key.destroy();
  });

  it('never leaves the plaintext of a forged packet in the target, on every engine', () => {
    const keyBytes = new Uint8Array(randomBytes(32));
    const binding = native.binding!;
    for (const engine of ['auto', 'primitives', 'evp'] as const) {
      const key = backend.createKey('chacha20-poly1305', keyBytes);
      // An authentic packet, then a forged one, then one that would continue the stream.
      const packets = [
        { type: PacketType.DATA, streamOffset: 0, payloadBytes: 1364, forged: false },
        { type: PacketType.DATA, streamOffset: 1364, payloadBytes: 1364, forged: true },
        { type: PacketType.DATA, streamOffset: 2728, payloadBytes: 1364, forged: false },
      ];
      const sealed = sealBatch(key, 'chacha20-poly1305', packets, 80);
      const handle = new binding.AeadKey('chacha20-poly1305', keyBytes, engine);
      const target = new Uint8Array(5000).fill(UNTOUCHED);
      const status = new Uint8Array(3).fill(UNTOUCHED);
      const out = new Float64Array(4);
      const { batch } = sealed;
      expect(handle.openInOrder!(batch.slab, batch.layout, batch.nonces, 3, status, 0, PacketType.DATA, 0, target, 0, 5000, out), engine).toBe(1);
      expect([...out]).toEqual([1, 1364, stops.authFailed, 0]);
      expect([...status]).toEqual([STATUS_OK, STATUS_FAILED, UNTOUCHED]);
      expect(Buffer.from(target.subarray(0, 1364)).equals(Buffer.from(sealed.plaintexts[0]))).toBe(true);
      expect(target.subarray(1364, 2728).every((byte) => byte === 0)).toBe(true);
      expect(target.subarray(2728).every((byte) => byte === UNTOUCHED)).toBe(true);
      // The same packet with its tag intact opens to the plaintext on this engine too.
      const forgedTagAt = batch.layout[1 * LAYOUT_WORDS] + HEADER_BYTES + 1364;
      batch.slab[forgedTagAt] ^= 0x01;
      expect(handle.openInOrder!(batch.slab, batch.layout, batch.nonces, 3, status, 0, PacketType.DATA, 0, target, 0, 5000, out)).toBe(3);
      expect([...out]).toEqual([3, 3 * 1364, stops.batchEnd, 0]);
      sealed.plaintexts.forEach((plaintext, index) => {
        expect(Buffer.from(target.subarray(index * 1364, (index + 1) * 1364)).equals(Buffer.from(plaintext))).toBe(true);
      });
      handle.destroy();
      key.destroy();
    }
  });

  it('refuses bad arguments in TypeScript, naming them', async () => {
    const key = backend.createKey('chacha20-poly1305', new Uint8Array(32));
    const sealed = sealBatch(key, 'chacha20-poly1305', [{ type: PacketType.DATA, streamOffset: 0, payloadBytes: 10, forged: false }], 0);
    const { batch } = sealed;
    const result: InOrderOpenResult = { packets: 0, bytes: 0, stop: 0, needBytes: 0 };
    const status = new Uint8Array(1);
    const target = new Uint8Array(100);
    const wasmKey = (await loadBackend('wasm')).createKey('chacha20-poly1305', new Uint8Array(32));
    expect(active.canOpenInOrder(wasmKey)).toBe(false);
    expect(nativeKeyHandle(wasmKey)).toBeNull();
    expect(() => active.openInOrder(wasmKey, batch, status, 0, 0, target, 0, 100, result)).toThrow(TypeError);
    expect(() => active.openInOrder(key, batch, status, 2, 0, target, 0, 100, result)).toThrow(/first must be an integer from 0 to batch.count/);
    expect(() => active.openInOrder(key, batch, status, 0, -1, target, 0, 100, result)).toThrow(/nextOffset/);
    expect(() => active.openInOrder(key, batch, status, 0, 2 ** 53, target, 0, 100, result)).toThrow(/nextOffset/);
    expect(() => active.openInOrder(key, batch, status, 0, 0, target, 50, 40, result)).toThrow(/targetStart/);
    expect(() => active.openInOrder(key, batch, status, 0, 0, target, 0, 101, result)).toThrow(/targetEnd/);
    expect(() => active.openInOrder(key, batch, status, 0, 0, [] as unknown as Uint8Array, 0, 0, result)).toThrow(/target must be a Uint8Array/);
    expect(() => active.openInOrder(key, batch, status, 0, 0, batch.slab, 0, 10, result)).toThrow(/must not overlap/);
    expect(() => active.openInOrder(key, batch, new Uint8Array(0), 0, 0, target, 0, 100, result)).toThrow(/status/);
    expect(() => active.openInOrder(key, { ...batch, count: 5 }, status, 0, 0, target, 0, 100, result)).toThrow(RangeError);
    key.destroy();
    expect(errorOf(() => active.openInOrder(key, batch, status, 0, 0, target, 0, 100, result))).toMatchObject({ code: 'E_CLOSED' });
    wasmKey.destroy();
  });

  it('refuses bad arguments again in C++, before touching memory', () => {
    const keyBytes = new Uint8Array(32);
    const key = backend.createKey('chacha20-poly1305', keyBytes);
    const sealed = sealBatch(key, 'chacha20-poly1305', [{ type: PacketType.DATA, streamOffset: 0, payloadBytes: 10, forged: false }], 0);
    const { slab, layout, nonces } = sealed.batch;
    const handle = new native.binding!.AeadKey('chacha20-poly1305', keyBytes);
    const status = new Uint8Array(1);
    const target = new Uint8Array(100);
    const out = new Float64Array(4);
    const call = (...args: unknown[]): unknown => (handle.openInOrder as (...a: unknown[]) => unknown)(...args);
    expect(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 0, target, 0, 100, new Float64Array(3))).toThrow(/resultOut must hold at least 4/);
    expect(() => call(slab, layout, nonces, 1, status, 2, PacketType.DATA, 0, target, 0, 100, out)).toThrow(/first must lie within the batch/);
    expect(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 0, target, 60, 50, out)).toThrow(/targetStart and targetEnd/);
    expect(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 0, target, 0, 101, out)).toThrow(/targetStart and targetEnd/);
    expect(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 0, slab, 0, 10, out)).toThrow(/must not overlap/);
    expect(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 2 ** 53, target, 0, 100, out)).toThrow(/nextOffset/);
    expect(() => call(slab, layout, nonces, 1, status, 0, 256, 0, target, 0, 100, out)).toThrow(/dataType/);
    expect(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 0, 'target', 0, 100, out)).toThrow(TypeError);
    expect(() => call(slab, layout, nonces, 2, status, 0, PacketType.DATA, 0, target, 0, 100, out)).toThrow(RangeError);
    // A layout whose AAD is not a packet header is a caller's bug: refused, nothing written.
    const badLayout = layout.slice();
    badLayout[1] = HEADER_BYTES - 1;
    expect(() => call(slab, badLayout, nonces, 1, status, 0, PacketType.DATA, 0, target, 0, 100, out)).toThrow(/does not describe a packet/);
    expect(target.every((byte) => byte === 0)).toBe(true);
    handle.destroy();
    expect(errorOf(() => call(slab, layout, nonces, 1, status, 0, PacketType.DATA, 0, target, 0, 100, out))).toMatchObject({ code: 'E_CLOSED' });
    key.destroy();
  });
});
