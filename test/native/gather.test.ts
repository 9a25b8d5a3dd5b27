// The in-order gather of the receive path (native/packet_scan.cc GatherInOrder, wrapped by
// HeaderScanner.gatherInOrder): after a batch was opened, it copies the payloads of the packets
// that continue the stream into the output's chunk and stops at the first one the receiver must
// judge itself. Checked against a TypeScript model of the same rule on random batches (opened or
// not, DATA or END, empty or not, in order or not, fitting or not), at each stop condition, and
// for bad arguments in TypeScript and again in C++.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeHeader, HEADER_BYTES, HeaderField, PacketType, readU64, TAG_BYTES, type PacketHeader } from '../../dist/packet/format.js';
import { loadHeaderScanner, type GatherResult, type HeaderScanner } from '../../dist/packet/scan.js';
import { describeTitle, probeNative } from './availability.js';
import { streamArbitrary } from './stream-arbitrary.js';

const native = probeNative();
const scanner: HeaderScanner | null = native.binding === null ? null : loadHeaderScanner();
const raw = native.binding as unknown as { gatherInOrder(...args: unknown[]): number } | null;

const STRIDE = 2048;
const LAYOUT_WORDS = 3;
const STATUS_OK = 0;
const STATUS_FAILED = 1;
const SESSION = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]);

interface PacketSpec {
  type: number;
  streamOffset: number;
  payloadBytes: number;
  opened: boolean;
}

interface Batch {
  slab: Uint8Array;
  layout: Uint32Array;
  status: Uint8Array;
}

/** Lays packets out as an opened batch: slot i at i * STRIDE, plaintext after the header. */
function batchOf(packets: PacketSpec[], fill = 0): Batch {
  const slab = new Uint8Array(Math.max(1, packets.length) * STRIDE);
  const layout = new Uint32Array(Math.max(1, packets.length) * LAYOUT_WORDS);
  const status = new Uint8Array(Math.max(1, packets.length));
  packets.forEach((packet, index) => {
    const offset = index * STRIDE;
    const header: PacketHeader = {
      type: packet.type as PacketHeader['type'],
      suite: 'chacha20-poly1305',
      sessionId: SESSION,
      epoch: 0,
      sequence: index,
      streamOffset: packet.streamOffset,
      payloadBytes: packet.payloadBytes,
    };
    encodeHeader(slab, offset, header);
    for (let byte = 0; byte < packet.payloadBytes; byte++) slab[offset + HEADER_BYTES + byte] = (index * 31 + byte + fill) & 0xff;
    layout[index * LAYOUT_WORDS] = offset;
    layout[index * LAYOUT_WORDS + 1] = HEADER_BYTES;
    layout[index * LAYOUT_WORDS + 2] = packet.payloadBytes;
    status[index] = packet.opened ? STATUS_OK : STATUS_FAILED;
  });
  return { slab, layout, status };
}

/** The rule, written plainly: what the gather must copy and where it must stop. */
function modelGather(batch: Batch, first: number, count: number, nextOffset: number, target: Uint8Array, start: number, end: number): GatherResult {
  let cursor = start;
  let next = nextOffset;
  let packets = 0;
  for (let slot = first; slot < first + count; slot++) {
    if (batch.status[slot] !== STATUS_OK) break;
    const offset = batch.layout[slot * LAYOUT_WORDS];
    const payloadBytes = batch.layout[slot * LAYOUT_WORDS + 2];
    if (batch.slab[offset + HeaderField.type] !== PacketType.DATA || payloadBytes === 0) break;
    if (readU64(batch.slab, offset + HeaderField.streamOffset) !== next) break;
    if (payloadBytes > end - cursor) break;
    target.set(batch.slab.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + payloadBytes), cursor);
    cursor += payloadBytes;
    next += payloadBytes;
    packets++;
  }
  return { packets, bytes: cursor - start };
}

/** Random streams as the gather sees them: a broken packet is one that did not open. */
const batchArbitrary = streamArbitrary({ typicalPayloadBytes: 1348, payloadBytesMax: STRIDE - HEADER_BYTES - TAG_BYTES, packetsMax: 40 }).map(({ startOffset, packets }) => ({
  startOffset,
  packets: packets.map(({ broken, ...packet }): PacketSpec => ({ ...packet, opened: !broken })),
}));

describe.skipIf(scanner === null)(describeTitle('native in-order gather', native), () => {
  const active = scanner as HeaderScanner;

  it('copies exactly what the model copies and stops where it stops', () => {
    expect(active.canGather).toBe(true);
    fc.assert(
      fc.property(batchArbitrary, fc.nat(8), fc.integer({ min: 0, max: 64 * 1024 }), fc.nat(64), ({ startOffset, packets }, firstRaw, targetFree, targetStart) => {
        const batch = batchOf(packets);
        const first = Math.min(firstRaw, packets.length);
        const count = packets.length - first;
        const nextOffset = first < packets.length ? packets[first].streamOffset : startOffset;
        const targetEnd = targetStart + targetFree;
        const expected = new Uint8Array(targetEnd + 16).fill(0xee);
        const actual = new Uint8Array(targetEnd + 16).fill(0xee);
        const want = modelGather(batch, first, count, nextOffset, expected, targetStart, targetEnd);
        const got: GatherResult = { packets: -1, bytes: -1 };
        active.gatherInOrder(batch.slab, batch.layout, batch.status, first, count, STATUS_OK, nextOffset, actual, targetStart, targetEnd, got);
        expect(got).toEqual(want);
        // Nothing outside [targetStart, targetStart + bytes) is touched.
        expect(Buffer.from(actual).equals(Buffer.from(expected))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('stops at a packet that did not open, an END, an empty packet, an offset that does not follow, and one that does not fit', () => {
    const run = (packets: PacketSpec[], targetBytes = 1 << 16): GatherResult => {
      const batch = batchOf(packets);
      const result: GatherResult = { packets: -1, bytes: -1 };
      active.gatherInOrder(batch.slab, batch.layout, batch.status, 0, packets.length, STATUS_OK, 1000, new Uint8Array(targetBytes), 0, targetBytes, result);
      return result;
    };
    const data = (streamOffset: number, payloadBytes = 100): PacketSpec => ({ type: PacketType.DATA, streamOffset, payloadBytes, opened: true });
    expect(run([data(1000), data(1100), data(1200)])).toEqual({ packets: 3, bytes: 300 });
    expect(run([data(1000), { ...data(1100), opened: false }, data(1200)])).toEqual({ packets: 1, bytes: 100 });
    expect(run([data(1000), { ...data(1100), type: PacketType.END }])).toEqual({ packets: 1, bytes: 100 });
    expect(run([data(1000), data(1100, 0), data(1100)])).toEqual({ packets: 1, bytes: 100 });
    expect(run([data(1000), data(1200)])).toEqual({ packets: 1, bytes: 100 });
    expect(run([data(999)])).toEqual({ packets: 0, bytes: 0 });
    expect(run([data(1000), data(1100)], 150)).toEqual({ packets: 1, bytes: 100 });
    expect(run([])).toEqual({ packets: 0, bytes: 0 });
  });

  it('refuses bad arguments in TypeScript, naming them', () => {
    const batch = batchOf([{ type: PacketType.DATA, streamOffset: 0, payloadBytes: 10, opened: true }]);
    const target = new Uint8Array(64);
    const result: GatherResult = { packets: 0, bytes: 0 };
    const call = (overrides: Partial<{ slab: unknown; layout: unknown; status: unknown; first: number; count: number; next: number; target: unknown; start: number; end: number }>) => () =>
      active.gatherInOrder(
        (overrides.slab ?? batch.slab) as Uint8Array,
        (overrides.layout ?? batch.layout) as Uint32Array,
        (overrides.status ?? batch.status) as Uint8Array,
        overrides.first ?? 0,
        overrides.count ?? 1,
        STATUS_OK,
        overrides.next ?? 0,
        (overrides.target ?? target) as Uint8Array,
        overrides.start ?? 0,
        overrides.end ?? 64,
        result,
      );
    expect(call({ slab: [1, 2] })).toThrow(/slab must be a Uint8Array/);
    expect(call({ layout: new Uint8Array(3) })).toThrow(/layout must be a Uint32Array/);
    expect(call({ status: 'x' })).toThrow(/status must be a Uint8Array/);
    expect(call({ target: 'nope' })).toThrow(/target must be a Uint8Array/);
    expect(call({ first: -1 })).toThrow(/first must be/);
    expect(call({ count: 2 })).toThrow(/exceeds the batch/);
    expect(call({ next: 2 ** 53 })).toThrow(/nextOffset must be/);
    expect(call({ start: 10, end: 5 })).toThrow(/targetStart .* and targetEnd/);
    expect(call({ end: 65 })).toThrow(/must lie within target/);
  });

  it('refuses bad arguments again in C++, and a layout that points outside the slab, without reading past it', () => {
    const binding = raw!;
    const batch = batchOf([{ type: PacketType.DATA, streamOffset: 0, payloadBytes: 10, opened: true }]);
    const target = new Uint8Array(64);
    const bytesOut = new Float64Array(1);
    const args = (changes: Record<number, unknown>) => {
      const list: unknown[] = [batch.slab, batch.layout, batch.status, 0, 1, STATUS_OK, PacketType.DATA, 0, target, 0, 64, bytesOut];
      for (const [index, value] of Object.entries(changes)) list[Number(index)] = value;
      return list;
    };
    expect(binding.gatherInOrder(...args({}))).toBe(1);
    expect(bytesOut[0]).toBe(10);
    expect(() => binding.gatherInOrder(...args({ 0: 'slab' }))).toThrow(/slab must be a Uint8Array/);
    expect(() => binding.gatherInOrder(...args({ 4: 2 }))).toThrow(/exceeds the batch/);
    expect(() => binding.gatherInOrder(...args({ 7: -1 }))).toThrow(/nextOffset must be an integer/);
    expect(() => binding.gatherInOrder(...args({ 10: 65 }))).toThrow(/within target/);
    expect(() => binding.gatherInOrder(...args({ 11: new Float64Array(0) }))).toThrow(/bytesOut/);
    const outside = Uint32Array.from(batch.layout);
    outside[0] = batch.slab.byteLength - HEADER_BYTES;
    expect(() => binding.gatherInOrder(...args({ 1: outside }))).toThrow(/outside the slab/);
    const tooLong = Uint32Array.from(batch.layout);
    tooLong[2] = STRIDE;
    expect(() => binding.gatherInOrder(...args({ 1: tooLong }))).toThrow(/outside the slab/);
  });
});
