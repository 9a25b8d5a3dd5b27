import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameDecoder, encodeFrame, FRAME_HEADER_BYTES } from '../../dist/control/frames.js';
import { SealcastError } from '../../dist/errors.js';

/** Splits bytes at the given cut points (any order, any count). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

describe('frame decoder', () => {
  it('round-trips any sequence of frames however the bytes are split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((payload) => encodeFrame(payload, 1024)));
          const decoder = new FrameDecoder(1024);
          const frames: Buffer[] = [];
          for (const chunk of split(stream, cuts)) frames.push(...decoder.push(chunk));
          expect(frames.map((f) => Buffer.from(f).toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
          expect(decoder.idle).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('on random bytes either yields frames or fails with E_PROTOCOL, never buffering more than a frame', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 1, max: 512 }), (bytes, cuts, max) => {
        const decoder = new FrameDecoder(max);
        try {
          for (const chunk of split(Buffer.from(bytes), cuts)) {
            for (const f of decoder.push(chunk)) expect(f.byteLength).toBeLessThanOrEqual(max);
            expect(decoder.bufferedBytes).toBeLessThanOrEqual(FRAME_HEADER_BYTES + max);
          }
        } catch (error) {
          expect(error).toBeInstanceOf(SealcastError);
          expect((error as SealcastError).code).toBe('E_PROTOCOL');
          expect(decoder.failed).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses an oversized frame from its header alone, and stays failed', () => {
    const decoder = new FrameDecoder(64 * 1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(64 * 1024 + 1);
    expect(() => decoder.push(header)).toThrow(/exceeds the maximum of 65536 bytes/);
    expect(decoder.bufferedBytes).toBe(0);
    expect(() => decoder.push(encodeFrame(Buffer.from('{}')))).toThrow(/already failed/);
  });

  it('refuses an empty frame', () => {
    expect(() => new FrameDecoder().push(Buffer.alloc(4))).toThrow(/empty frame/);
  });

  it('reports a truncated frame as not idle', () => {
    const decoder = new FrameDecoder();
    const whole = encodeFrame(Buffer.from('hello'));
    expect(decoder.push(whole.subarray(0, whole.byteLength - 1))).toEqual([]);
    expect(decoder.idle).toBe(false);
    expect(decoder.push(whole.subarray(whole.byteLength - 1)).map(String)).toEqual(['hello']);
    expect(decoder.idle).toBe(true);
  });

  it('validates its arguments', () => {
    expect(() => new FrameDecoder(0)).toThrow(RangeError);
    expect(() => new FrameDecoder().push('text' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => encodeFrame(Buffer.alloc(0))).toThrow(RangeError);
    expect(() => encodeFrame(Buffer.alloc(11), 10)).toThrow(/exceeds the maximum/);
  });
});
