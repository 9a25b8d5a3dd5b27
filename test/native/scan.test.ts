// The native header scan (native/packet_scan.cc, src/packet/scan.ts) against the TypeScript
// decoder it stands in for on the receive path: for every datagram, valid, mutated or random,
// the scan's verdict and numbers equal decodeHeader()'s, and for the packets it passes it lays
// out the AEAD batch (slot offset, header as AAD, payload length) and the nonce (epoch ‖
// sequence) exactly as the receiver's own code would. Bad arguments are refused by the wrapper
// and again by the C++ layer.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeNonce } from '../../dist/keys/sequencer.js';
import {
  decodeHeader,
  encodeHeader,
  HEADER_BYTES,
  PACKET_MAGIC,
  PACKET_VERSION,
  PacketType,
  TAG_BYTES,
  type PacketHeader,
} from '../../dist/packet/format.js';
import { loadHeaderScanner, ScanField, type HeaderScanner } from '../../dist/packet/scan.js';
import { describeTitle, probeNative } from './availability.js';

const native = probeNative();
const scanner: HeaderScanner | null = native.binding === null ? null : loadHeaderScanner();
const raw = native.binding as unknown as { scanPackets(...args: unknown[]): number; PACKET_HEADER_BYTES: number; PACKET_MAGIC: number; PACKET_VERSION: number } | null;

const STRIDE = 2048;
const SESSION = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]);

function datagramFor(header: PacketHeader): Uint8Array {
  const datagram = new Uint8Array(HEADER_BYTES + header.payloadBytes + TAG_BYTES);
  encodeHeader(datagram, 0, header);
  return datagram;
}

const headerArbitrary: fc.Arbitrary<PacketHeader> = fc.record({
  type: fc.constantFrom(PacketType.DATA, PacketType.END, PacketType.REPAIR, PacketType.KEY_UPDATE, PacketType.CONTROL),
  suite: fc.constantFrom('chacha20-poly1305' as const, 'aes-256-gcm' as const),
  sessionId: fc.constantFrom(SESSION, Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1])),
  epoch: fc.integer({ min: 0, max: 0xffff_ffff }),
  sequence: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.maxSafeInteger().map((value) => Math.abs(value))),
  streamOffset: fc.oneof(fc.integer({ min: 0, max: 1 << 30 }), fc.maxSafeInteger().map((value) => Math.abs(value))),
  payloadBytes: fc.integer({ min: 0, max: STRIDE - HEADER_BYTES - TAG_BYTES }),
});

/** A valid datagram, then optionally a few bytes overwritten and/or its length changed. */
const datagramArbitrary: fc.Arbitrary<Uint8Array> = fc.oneof(
  headerArbitrary.map(datagramFor),
  fc
    .tuple(headerArbitrary, fc.array(fc.tuple(fc.nat(HEADER_BYTES - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }))
    .map(([header, edits]) => {
      const datagram = datagramFor(header);
      for (const [index, value] of edits) datagram[index] = value;
      return datagram;
    }),
  fc.tuple(headerArbitrary, fc.integer({ min: -60, max: 60 })).map(([header, delta]) => {
    const datagram = datagramFor(header);
    const length = Math.max(0, Math.min(STRIDE, datagram.byteLength + delta));
    const resized = new Uint8Array(length);
    resized.set(datagram.subarray(0, length));
    return resized;
  }),
  fc.uint8Array({ minLength: 0, maxLength: STRIDE }),
);

interface Scanned {
  slab: Uint8Array;
  lengths: Uint32Array;
  target: ReturnType<HeaderScanner['createTarget']>;
  accepted: number;
}

function scanAll(active: HeaderScanner, datagrams: Uint8Array[], session: Uint8Array | null, first = 0): Scanned {
  const slots = first + datagrams.length;
  const slab = new Uint8Array(Math.max(1, slots) * STRIDE);
  const lengths = new Uint32Array(Math.max(1, slots));
  datagrams.forEach((datagram, index) => {
    slab.set(datagram, (first + index) * STRIDE);
    lengths[first + index] = datagram.byteLength;
  });
  const target = active.createTarget(Math.max(1, slots));
  const accepted = active.scan(slab, STRIDE, lengths, first, datagrams.length, session, target);
  return { slab, lengths, target, accepted };
}

function expectSlotMatchesDecoder(active: HeaderScanner, scanned: Scanned, slot: number, datagram: Uint8Array, session: Uint8Array | null): boolean {
  const fields = scanned.target.fields.subarray(slot * active.fieldCount, (slot + 1) * active.fieldCount);
  const decoded = decodeHeader(datagram);
  if (!decoded.ok) {
    expect(active.failure(fields[ScanField.status])).toBe(decoded.reason);
    return false;
  }
  const header = decoded.header;
  if (session !== null && !header.sessionId.every((byte, index) => byte === session[index])) {
    expect(fields[ScanField.status]).toBe(active.status.otherSession);
    return false;
  }
  expect(fields[ScanField.status]).toBe(active.status.ok);
  expect(fields[ScanField.type]).toBe(header.type);
  expect(fields[ScanField.suite]).toBe(datagram[4]);
  expect(fields[ScanField.epoch]).toBe(header.epoch);
  expect(fields[ScanField.sequence]).toBe(header.sequence);
  expect(fields[ScanField.streamOffset]).toBe(header.streamOffset);
  expect(fields[ScanField.payloadBytes]).toBe(header.payloadBytes);
  const layout = scanned.target.layout;
  expect([layout[slot * 3], layout[slot * 3 + 1], layout[slot * 3 + 2]]).toEqual([slot * STRIDE, HEADER_BYTES, header.payloadBytes]);
  const expectedNonce = new Uint8Array(12);
  writeNonce(expectedNonce, 0, header.epoch, header.sequence);
  expect([...scanned.target.nonces.subarray(slot * 12, slot * 12 + 12)]).toEqual([...expectedNonce]);
  return true;
}

describe.skipIf(scanner === null)(describeTitle('native header scan', native), () => {
  const active = scanner!;

  it('has the wire constants of format.ts', () => {
    expect(raw!.PACKET_HEADER_BYTES).toBe(HEADER_BYTES);
    expect(raw!.PACKET_MAGIC).toBe(PACKET_MAGIC);
    expect(raw!.PACKET_VERSION).toBe(PACKET_VERSION);
  });

  it('agrees with decodeHeader on valid, mutated, resized and random datagrams', () => {
    fc.assert(
      fc.property(fc.array(datagramArbitrary, { minLength: 1, maxLength: 24 }), fc.boolean(), (datagrams, withSession) => {
        const session = withSession ? SESSION : null;
        const scanned = scanAll(active, datagrams, session);
        let accepted = 0;
        datagrams.forEach((datagram, slot) => {
          if (expectSlotMatchesDecoder(active, scanned, slot, datagram, session)) accepted++;
        });
        expect(scanned.accepted).toBe(accepted);
      }),
      { numRuns: 400 },
    );
  });

  it('agrees with decodeHeader for every value of each of the first eight header bytes', () => {
    const good = datagramFor({ type: PacketType.DATA, suite: 'aes-256-gcm', sessionId: SESSION, epoch: 5, sequence: 6, streamOffset: 7, payloadBytes: 30 });
    for (let index = 0; index < 8; index++) {
      const datagrams = Array.from({ length: 256 }, (_, value) => Uint8Array.from(good, (byte, at) => (at === index ? value : byte)));
      const scanned = scanAll(active, datagrams, null);
      datagrams.forEach((datagram, slot) => expectSlotMatchesDecoder(active, scanned, slot, datagram, null));
    }
  });

  it('passes every well-formed datagram and reports each failure reason the decoder has', () => {
    const good = datagramFor({ type: PacketType.DATA, suite: 'chacha20-poly1305', sessionId: SESSION, epoch: 3, sequence: 7, streamOffset: 1400, payloadBytes: 100 });
    const variants: Array<[string, Uint8Array]> = [
      ['short', good.subarray(0, HEADER_BYTES + TAG_BYTES - 1)],
      ['magic', Uint8Array.from(good, (byte, index) => (index === 0 ? 0 : byte))],
      ['version', Uint8Array.from(good, (byte, index) => (index === 2 ? 2 : byte))],
      ['type', Uint8Array.from(good, (byte, index) => (index === 3 ? 0 : byte))],
      ['suite', Uint8Array.from(good, (byte, index) => (index === 4 ? 9 : byte))],
      ['flags', Uint8Array.from(good, (byte, index) => (index === 5 ? 1 : byte))],
      ['length', good.subarray(0, good.byteLength - 1)],
      ['range', Uint8Array.from(good, (byte, index) => (index === 28 ? 0xff : byte))],
    ];
    const scanned = scanAll(active, [good, ...variants.map(([, datagram]) => datagram)], null);
    expect(scanned.accepted).toBe(1);
    expect(scanned.target.fields[ScanField.status]).toBe(active.status.ok);
    variants.forEach(([reason], index) => {
      expect(active.failure(scanned.target.fields[(index + 1) * active.fieldCount])).toBe(reason);
    });
  });

  it('marks a datagram longer than its slot as truncated, and filters by session', () => {
    const good = datagramFor({ type: PacketType.END, suite: 'aes-256-gcm', sessionId: SESSION, epoch: 0, sequence: 0, streamOffset: 0, payloadBytes: 40 });
    const slab = new Uint8Array(4 * STRIDE);
    const lengths = Uint32Array.from([STRIDE + 1, good.byteLength, good.byteLength, 0]);
    slab.set(good, STRIDE);
    slab.set(good, 2 * STRIDE);
    slab[2 * STRIDE + 8] ^= 1;
    const target = active.createTarget(4);
    expect(active.scan(slab, STRIDE, lengths, 0, 4, SESSION, target)).toBe(1);
    const statuses = [0, 1, 2, 3].map((slot) => target.fields[slot * active.fieldCount]);
    expect(statuses).toEqual([active.status.truncated, active.status.ok, active.status.otherSession, active.status.short]);
  });

  it('splits GRO messages into one entry per datagram, each scanned as if it came alone', () => {
    expect(active.canSegment).toBe(true);
    const messageArbitrary = fc
      .tuple(fc.integer({ min: 1, max: 300 }), fc.array(datagramArbitrary, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 300 }))
      .map(([segmentBytes, datagrams, lastBytes]) =>
        // Every datagram of a message but the last has the segment size; the last is no longer.
        datagrams.map((datagram, index) => {
          const length = index === datagrams.length - 1 ? Math.min(lastBytes, segmentBytes) : segmentBytes;
          const sized = new Uint8Array(length);
          sized.set(datagram.subarray(0, length));
          return sized;
        }),
      );
    fc.assert(
      fc.property(fc.array(messageArbitrary, { minLength: 1, maxLength: 8 }), fc.boolean(), (messages, withSession) => {
        const session = withSession ? SESSION : null;
        const slab = new Uint8Array(messages.length * STRIDE);
        const lengths = new Uint32Array(messages.length);
        const segments = new Uint32Array(messages.length);
        const offsets: number[] = [];
        messages.forEach((datagrams, slot) => {
          let position = 0;
          for (const datagram of datagrams) {
            slab.set(datagram, slot * STRIDE + position);
            offsets.push(slot * STRIDE + position);
            position += datagram.byteLength;
          }
          lengths[slot] = position;
          segments[slot] = datagrams.length > 1 ? datagrams[0].byteLength : 0;
        });
        const flat = messages.flat();
        const alone = scanAll(active, flat, session);
        const target = active.createTarget(flat.length);
        const counts = { entries: -1, accepted: -1, overflow: -1 };
        expect(active.scanMessages(slab, STRIDE, lengths, segments, 0, messages.length, session, target, counts)).toBe(flat.length);
        expect(counts).toEqual({ entries: flat.length, accepted: alone.accepted, overflow: 0 });
        flat.forEach((_, entry) => {
          const fields = target.fields.subarray(entry * active.fieldCount, (entry + 1) * active.fieldCount);
          const expected = alone.target.fields.subarray(entry * active.fieldCount, (entry + 1) * active.fieldCount);
          expect(fields[ScanField.status]).toBe(expected[ScanField.status]);
          if (expected[ScanField.status] !== active.status.ok) return;
          expect([...fields]).toEqual([...expected]);
          expect([...target.layout.subarray(entry * 3, entry * 3 + 3)]).toEqual([offsets[entry], HEADER_BYTES, expected[ScanField.payloadBytes]]);
          expect([...target.nonces.subarray(entry * 12, entry * 12 + 12)]).toEqual([...alone.target.nonces.subarray(entry * 12, entry * 12 + 12)]);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('counts the datagrams of GRO messages beyond the target as overflow, and keeps a truncated message whole', () => {
    const good = datagramFor({ type: PacketType.DATA, suite: 'chacha20-poly1305', sessionId: SESSION, epoch: 1, sequence: 2, streamOffset: 3, payloadBytes: 10 });
    const slab = new Uint8Array(2 * STRIDE);
    for (let index = 0; index < 5; index++) slab.set(good, index * good.byteLength);
    const lengths = Uint32Array.from([5 * good.byteLength, STRIDE + 1]);
    const segments = Uint32Array.from([good.byteLength, good.byteLength]);
    const target = active.createTarget(4);
    const counts = { entries: 0, accepted: 0, overflow: 0 };
    expect(active.scanMessages(slab, STRIDE, lengths, segments, 0, 2, null, target, counts)).toBe(4);
    expect(counts).toEqual({ entries: 4, accepted: 4, overflow: 2 });
    // Room for the truncated message: it is one entry, marked truncated.
    const roomy = active.createTarget(8);
    expect(active.scanMessages(slab, STRIDE, lengths, segments, 0, 2, null, roomy, counts)).toBe(6);
    expect(counts).toEqual({ entries: 6, accepted: 5, overflow: 0 });
    expect(roomy.fields[5 * active.fieldCount]).toBe(active.status.truncated);
    expect(() => active.scanMessages(slab, STRIDE, lengths, new Uint32Array(1), 0, 2, null, roomy, counts)).toThrow(/exceeds lengths .* or segments/);
  });

  it('scans only the slots asked for, starting at first', () => {
    const good = datagramFor({ type: PacketType.DATA, suite: 'chacha20-poly1305', sessionId: SESSION, epoch: 1, sequence: 2, streamOffset: 3, payloadBytes: 10 });
    const scanned = scanAll(active, [good, good], SESSION, 3);
    expect(scanned.accepted).toBe(2);
    expect(scanned.target.fields[0]).toBe(0);
    expect(scanned.target.layout[3 * 3]).toBe(3 * STRIDE);
    expect(active.scan(scanned.slab, STRIDE, scanned.lengths, 5, 0, null, scanned.target)).toBe(0);
  });

  it('refuses bad arguments in TypeScript, naming them', () => {
    const target = active.createTarget(2);
    const slab = new Uint8Array(2 * STRIDE);
    const lengths = new Uint32Array(2);
    expect(() => active.scan([] as unknown as Uint8Array, STRIDE, lengths, 0, 1, null, target)).toThrow(/slab/);
    expect(() => active.scan(slab, STRIDE, [] as unknown as Uint32Array, 0, 1, null, target)).toThrow(/lengths/);
    expect(() => active.scan(slab, 0, lengths, 0, 1, null, target)).toThrow(RangeError);
    expect(() => active.scan(slab, 65_537, lengths, 0, 1, null, target)).toThrow(/stride/);
    expect(() => active.scan(slab, STRIDE, lengths, -1, 1, null, target)).toThrow(/first/);
    expect(() => active.scan(slab, STRIDE, lengths, 0, 1.5, null, target)).toThrow(/count/);
    expect(() => active.scan(slab, STRIDE, lengths, 1, 2, null, target)).toThrow(/slots/);
    expect(() => active.scan(slab, STRIDE, lengths, 0, 2, null, active.createTarget(1))).toThrow(/scan target/);
    expect(() => active.scan(slab, STRIDE, lengths, 0, 1, new Uint8Array(7), target)).toThrow(/session/);
    expect(() => active.createTarget(0)).toThrow(/slots/);
  });

  it('refuses bad arguments again in C++ without touching memory', () => {
    const target = active.createTarget(2);
    const slab = new Uint8Array(2 * STRIDE);
    const lengths = new Uint32Array(2);
    const call = (...overrides: Array<[number, unknown]>) => {
      const args: unknown[] = [slab, STRIDE, lengths, 0, 2, null, 0xff, 0xff, target.fields, target.layout, target.nonces];
      for (const [index, value] of overrides) args[index] = value;
      return () => raw!.scanPackets(...args);
    };
    expect(call()()).toBe(0);
    expect(call([0, 'slab'])).toThrow(TypeError);
    expect(call([1, 0])).toThrow(RangeError);
    expect(call([4, 3])).toThrow(/slab's slots/);
    expect(call([3, 2 ** 33])).toThrow(RangeError);
    expect(call([5, new Uint8Array(3)])).toThrow(/session/);
    expect(call([8, new Float64Array(1)])).toThrow(/fields/);
    expect(call([8, new Float32Array(100)])).toThrow(TypeError);
    expect(call([9, new Uint32Array(1)])).toThrow(/layout/);
    expect(call([10, new Uint8Array(1)])).toThrow(/nonces/);
    expect(call([2, new Uint32Array(1)])).toThrow(/lengths/);
  });
});
