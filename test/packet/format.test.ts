import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnd, encodeEnd, END_PAYLOAD_BYTES } from '../../dist/packet/end.js';
import {
  decodeHeader,
  encodeHeader,
  HEADER_BYTES,
  PacketType,
  payloadBytesFor,
  TAG_BYTES,
  type PacketHeader,
} from '../../dist/packet/format.js';

function datagramFor(header: PacketHeader): Uint8Array {
  const datagram = new Uint8Array(HEADER_BYTES + header.payloadBytes + TAG_BYTES);
  encodeHeader(datagram, 0, header);
  return datagram;
}

const sampleHeader: PacketHeader = {
  type: PacketType.DATA,
  suite: 'chacha20-poly1305',
  sessionId: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
  epoch: 0xdeadbeef,
  sequence: 2 ** 40 + 17,
  streamOffset: 2 ** 52 + 3,
  payloadBytes: 1348,
};

describe('packet header', () => {
  it('round-trips every field', () => {
    const decoded = decodeHeader(datagramFor(sampleHeader));
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    expect({ ...decoded.header, sessionId: [...decoded.header.sessionId] }).toEqual({ ...sampleHeader, sessionId: [...sampleHeader.sessionId] });
  });

  it('round-trips arbitrary valid headers', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(PacketType.DATA, PacketType.END, PacketType.REPAIR, PacketType.KEY_UPDATE, PacketType.CONTROL),
        fc.constantFrom('chacha20-poly1305' as const, 'aes-256-gcm' as const),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.maxSafeNat(),
        fc.maxSafeNat(),
        fc.integer({ min: 0, max: 2000 }),
        (type, suite, sessionId, epoch, sequence, streamOffset, payloadBytes) => {
          const header: PacketHeader = { type, suite, sessionId, epoch, sequence, streamOffset, payloadBytes };
          const decoded = decodeHeader(datagramFor(header));
          expect(decoded.ok).toBe(true);
          if (decoded.ok) {
            expect(decoded.header.sequence).toBe(sequence);
            expect(decoded.header.streamOffset).toBe(streamOffset);
            expect(decoded.header.epoch).toBe(epoch);
            expect([...decoded.header.sessionId]).toEqual([...sessionId]);
            expect(decoded.header.type).toBe(type);
            expect(decoded.header.suite).toBe(suite);
          }
        },
      ),
    );
  });

  it('never throws on random bytes and rejects almost all of them', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), (bytes) => {
        const decoded = decodeHeader(bytes);
        expect(typeof decoded.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on mutations of a valid datagram', () => {
    const valid = datagramFor(sampleHeader);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: valid.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), fc.integer({ min: 0, max: valid.byteLength }), (index, flip, cut) => {
        const mutated = valid.slice(0, cut);
        if (index < mutated.byteLength) mutated[index] ^= flip;
        expect(() => decodeHeader(mutated)).not.toThrow();
      }),
    );
  });

  it.each([
    ['short', new Uint8Array(HEADER_BYTES + TAG_BYTES - 1)],
    ['magic', (() => { const d = datagramFor(sampleHeader); d[0] ^= 1; return d; })()],
    ['version', (() => { const d = datagramFor(sampleHeader); d[2] = 2; return d; })()],
    ['type', (() => { const d = datagramFor(sampleHeader); d[3] = 0; return d; })()],
    ['suite', (() => { const d = datagramFor(sampleHeader); d[4] = 9; return d; })()],
    ['flags', (() => { const d = datagramFor(sampleHeader); d[5] = 1; return d; })()],
    ['length', datagramFor(sampleHeader).subarray(0, HEADER_BYTES + 1348 + TAG_BYTES - 1)],
    ['range', (() => { const d = datagramFor(sampleHeader); d[20] = 0xff; return d; })()],
  ])('reports %s', (reason, datagram) => {
    expect(decodeHeader(datagram)).toEqual({ ok: false, reason });
  });

  it('refuses to encode bad fields', () => {
    const target = new Uint8Array(HEADER_BYTES);
    expect(() => encodeHeader(target, 0, { ...sampleHeader, epoch: -1 })).toThrow(RangeError);
    expect(() => encodeHeader(target, 0, { ...sampleHeader, sequence: 2 ** 53 })).toThrow(/sequence/);
    expect(() => encodeHeader(target, 0, { ...sampleHeader, sessionId: new Uint8Array(7) })).toThrow(/sessionId/);
    expect(() => encodeHeader(target, 1, sampleHeader)).toThrow(/does not fit/);
    expect(() => encodeHeader(target, 0, { ...sampleHeader, type: 9 as never })).toThrow(/type/);
  });

  it('gives 1348 payload bytes per default 1400-byte datagram', () => {
    expect(payloadBytesFor(1400)).toBe(1400 - HEADER_BYTES - TAG_BYTES);
    expect(HEADER_BYTES).toBe(36);
  });
});

describe('END record', () => {
  it('round-trips', () => {
    const target = new Uint8Array(END_PAYLOAD_BYTES);
    const sha256 = new Uint8Array(32).map((_, index) => index);
    encodeEnd(target, 0, { totalBytes: 209_715_200, dataPackets: 155_575, sha256 });
    expect(decodeEnd(target)).toEqual({ totalBytes: 209_715_200, dataPackets: 155_575, sha256 });
  });

  it('rejects wrong sizes and out-of-range lengths', () => {
    expect(decodeEnd(new Uint8Array(END_PAYLOAD_BYTES - 1))).toBeUndefined();
    const target = new Uint8Array(END_PAYLOAD_BYTES).fill(0xff);
    expect(decodeEnd(target)).toBeUndefined();
  });
});
