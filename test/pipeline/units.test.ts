import { describe, expect, it } from 'vitest';
import { describeRanges, ReorderWindow } from '../../dist/pipeline/reorder.js';
import { rampFraction, TokenBucket } from '../../dist/pipeline/token-bucket.js';
import { parseGroup, parseRate, parseSeconds, parsePacketSize } from '../../dist/cli/options.js';

describe('TokenBucket', () => {
  it('lets a full burst through, then paces at the rate', () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 3000, () => now);
    expect(bucket.take(1000)).toBe(0);
    expect(bucket.take(1000)).toBe(0);
    expect(bucket.take(1000)).toBe(0);
    expect(bucket.take(1000)).toBeCloseTo(1000);
    now += 500;
    expect(bucket.take(1000)).toBeCloseTo(500);
    now += 500;
    expect(bucket.take(1000)).toBe(0);
  });

  it('never accumulates more than the burst', () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 2000, () => now);
    now += 1_000_000;
    expect(bucket.take(2000)).toBe(0);
    expect(bucket.take(1)).toBeGreaterThan(0);
  });

  it('lets a request bigger than the burst through once the bucket is full', () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 100, () => now);
    expect(bucket.take(500)).toBe(0);
    expect(bucket.take(500)).toBeGreaterThan(0);
    now += 10_000;
    expect(bucket.take(500)).toBe(0);
  });

  it('changes rate without losing tokens already earned', () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 1000, () => now);
    expect(bucket.take(1000)).toBe(0);
    now += 500;
    bucket.setRate(2000);
    expect(bucket.take(1000)).toBeCloseTo(250);
    now += 250;
    expect(bucket.take(1000)).toBe(0);
    expect(() => bucket.setRate(0)).toThrow(RangeError);
  });

  it('ramps from 10 % to the full rate', () => {
    expect(rampFraction(0, 250)).toBeCloseTo(0.1);
    expect(rampFraction(125, 250)).toBeCloseTo(0.55);
    expect(rampFraction(250, 250)).toBe(1);
    expect(rampFraction(10_000, 250)).toBe(1);
    expect(rampFraction(5, 0)).toBe(1);
  });

  it('rejects bad rates', () => {
    expect(() => new TokenBucket(0, 100)).toThrow(RangeError);
    expect(() => new TokenBucket(Number.POSITIVE_INFINITY, 100)).toThrow(RangeError);
  });
});

describe('ReorderWindow', () => {
  it('places next, old, held and ahead payloads and releases held ones in order', () => {
    const window = new ReorderWindow(100, 4, 10_000);
    expect(window.place(100)).toBe('next');
    expect(window.place(50)).toBe('old');
    expect(window.place(110)).toBe('ahead');
    window.hold(110, new Uint8Array(10));
    window.hold(120, new Uint8Array(10));
    expect(window.place(110)).toBe('buffered');
    window.advance(10);
    expect(window.nextOffset).toBe(110);
    expect(window.takeRun(0)?.byteLength).toBe(10);
    window.advance(10);
    expect(window.takeRun(0)?.byteLength).toBe(10);
    window.advance(10);
    expect(window.takeRun(0)).toBeUndefined();
    expect(window.heldPackets).toBe(0);
  });

  it('copies held payloads, so the caller may reuse its buffer', () => {
    const window = new ReorderWindow(0, 4, 1000);
    const payload = new Uint8Array(10).fill(5);
    window.hold(10, payload);
    payload.fill(0);
    window.advance(10);
    expect([...window.takeRun(0)!]).toEqual(new Array(10).fill(5));
  });

  it('overflows at its packet bound and at its span bound', () => {
    const window = new ReorderWindow(0, 2, 100);
    window.hold(10, new Uint8Array(10));
    window.hold(20, new Uint8Array(10));
    expect(window.place(30)).toBe('overflow');
    const heavy = new ReorderWindow(0, 100, 10_000, 25);
    heavy.hold(10, new Uint8Array(20));
    expect(heavy.place(30)).toBe('ahead');
    heavy.hold(30, new Uint8Array(20));
    expect(heavy.place(50)).toBe('overflow');
    heavy.advance(10);
    expect(heavy.takeRun(0)?.byteLength).toBe(20);
    expect(heavy.place(50)).toBe('ahead');
    const wide = new ReorderWindow(0, 100, 100);
    expect(wide.place(101)).toBe('overflow');
    expect(wide.place(100)).toBe('ahead');
  });

  it('names the same holes as a plain sort of the held payloads, and gives each back intact, whatever the order of arrival', async () => {
    const fc = (await import('fast-check')).default;
    // A stream of packets of awkward sizes, some lost for a while, arriving in any order; the
    // receiver's moves: deliver in order what it can, hold the rest.
    const scenario = fc.record({
      // Starts near a MiB boundary too: held payloads are stored in one block per MiB.
      startOffset: fc.constantFrom(1000, (1 << 20) - 3000, 5 * (1 << 20) - 20),
      sizes: fc.array(fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1000, max: 1400 })), { minLength: 1, maxLength: 120 }),
      order: fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
      endExtra: fc.nat(100),
      rangesMax: fc.integer({ min: 1, max: 70 }),
    });
    fc.assert(
      fc.property(scenario, ({ startOffset, sizes, order, endExtra, rangesMax }) => {
        const starts: number[] = [];
        let offset = startOffset;
        for (const size of sizes) {
          starts.push(offset);
          offset += size;
        }
        const window = new ReorderWindow(startOffset, 10_000, 1 << 30, 1 << 30);
        const payloadAt = (start: number, size: number) => Uint8Array.from({ length: size }, (_, at) => (start * 7 + at) & 0xff);
        const held = new Map<number, number>();
        const model = (endOffset: number) => {
          const ranges: Array<{ from: number; to: number }> = [];
          let cursor = window.nextOffset;
          for (const start of [...held.keys()].sort((a, b) => a - b)) {
            if (start > cursor) ranges.push({ from: cursor, to: start });
            cursor = Math.max(cursor, start + held.get(start)!);
          }
          if (endOffset > cursor) ranges.push({ from: cursor, to: endOffset });
          return ranges.slice(0, rangesMax);
        };
        for (const pick of order) {
          const index = pick % sizes.length;
          const start = starts[index];
          const placement = window.place(start);
          // One payload at a time, or (as the receiver does) every payload that lies back to
          // back at once: the run must be exactly the held payloads from nextOffset on, in order.
          const drainHeld = () => {
            const take = () => window.takeRun(pick % 5 < 2 ? 0 : pick % 5 === 2 ? 3000 : Infinity);
            for (let next = take(); next !== undefined; next = take()) {
              const expected: Uint8Array[] = [];
              let cursor = window.nextOffset;
              while (cursor < window.nextOffset + next.byteLength && held.has(cursor)) {
                expected.push(payloadAt(cursor, held.get(cursor)!));
                held.delete(cursor);
                cursor += expected.at(-1)!.byteLength;
              }
              expect(cursor).toBe(window.nextOffset + next.byteLength);
              expect(Buffer.from(next).equals(Buffer.concat(expected))).toBe(true);
              window.advance(next.byteLength);
            }
          };
          if (placement === 'next' && pick % 3 === 0) {
            // As while the output is behind: the next payload waits in the window too.
            window.hold(start, payloadAt(start, sizes[index]));
            held.set(start, sizes[index]);
            if (pick % 2 === 0) drainHeld();
          } else if (placement === 'next') {
            window.advance(sizes[index]);
            drainHeld();
          } else if (placement === 'ahead') {
            window.hold(start, payloadAt(start, sizes[index]));
            held.set(start, sizes[index]);
          }
          expect(window.missingRanges(offset + endExtra, rangesMax)).toEqual(model(offset + endExtra));
          expect(window.heldPackets).toBe(held.size);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('takes back-to-back held payloads as one run, which ends at a hole, at a block boundary and at its byte bound', () => {
    const MiB = 1 << 20;
    const fill = (start: number) => new Uint8Array(10).fill(start & 0xff);
    const window = new ReorderWindow(MiB - 30, 100, 1 << 30);
    // Held: 10 bytes at MiB-20 and MiB-10 (block 0), 10 at MiB (block 1), and 10 at MiB+20
    // behind a hole of 10.
    for (const start of [MiB - 20, MiB - 10, MiB, MiB + 20]) window.hold(start, fill(start));
    expect(window.takeRun(Infinity)).toBeUndefined();
    window.advance(10);
    const run = window.takeRun(Infinity)!;
    expect([...run]).toEqual([...fill(MiB - 20), ...fill(MiB - 10)]);
    expect(window.heldPackets).toBe(2);
    window.advance(20);
    expect(window.takeRun(Infinity)?.byteLength).toBe(10);
    window.advance(10);
    expect(window.takeRun(Infinity)).toBeUndefined();
    expect(window.missingRanges()).toEqual([{ from: MiB + 10, to: MiB + 20 }]);

    const bounded = new ReorderWindow(0, 100, 1 << 30);
    for (const start of [10, 20, 30]) bounded.hold(start, fill(start));
    bounded.advance(10);
    // A bound below two payloads still gives the first one; the next run takes the rest.
    expect([...bounded.takeRun(15)!]).toEqual([...fill(10)]);
    bounded.advance(10);
    expect([...bounded.takeRun(20)!]).toEqual([...fill(20), ...fill(30)]);
    bounded.advance(20);
    expect(bounded.heldPackets).toBe(0);

    // A payload longer than a block's margin (none is, at datagram sizes) is kept as its own
    // copy and given back alone, between runs.
    const long = new ReorderWindow(0, 100, 1 << 30);
    const big = Uint8Array.from({ length: 70_000 }, (_, at) => at & 0xff);
    long.hold(10, big);
    long.hold(70_010, fill(70_010));
    long.advance(10);
    expect(Buffer.from(long.takeRun(Infinity)!).equals(Buffer.from(big))).toBe(true);
    long.advance(70_000);
    expect([...long.takeRun(Infinity)!]).toEqual([...fill(70_010)]);
  });

  it('bounds the blocks sparse payloads would take, and reuses the blocks the stream passed', () => {
    const MiB = 1 << 20;
    // 4 MiB of held bytes: 6 blocks at most (4 plus the two a run straddles).
    const window = new ReorderWindow(0, 10_000, 1 << 30, 4 * MiB);
    for (let block = 1; block <= 6; block++) {
      expect(window.place(block * MiB)).toBe('ahead');
      window.hold(block * MiB, new Uint8Array(100).fill(block));
    }
    expect(window.place(7 * MiB)).toBe('overflow');
    // A payload in a block already there still fits.
    expect(window.place(3 * MiB + 100)).toBe('ahead');
    // Delivering the first MiB (as the caller would) passes block 0 and frees room.
    window.advance(MiB);
    expect([...window.takeRun(0)!.subarray(0, 3)]).toEqual([1, 1, 1]);
    window.advance(100);
    expect(window.place(2 * MiB - 1)).toBe('ahead');
    window.advance(MiB - 100);
    expect(window.place(7 * MiB)).toBe('ahead');
    expect(window.heldPackets).toBe(5);
  });

  it('names the missing ranges', () => {
    const window = new ReorderWindow(0, 10, 10_000);
    window.hold(20, new Uint8Array(10));
    window.hold(50, new Uint8Array(10));
    expect(window.missingRanges(100)).toEqual([
      { from: 0, to: 20 },
      { from: 30, to: 50 },
      { from: 60, to: 100 },
    ]);
    expect(describeRanges([{ from: 0, to: 20 }])).toBe('bytes 0..19 (20 bytes)');
  });
});

describe('CLI option parsers', () => {
  it.each([
    ['400M', 400e6],
    ['1G', 1e9],
    ['1.5G', 1.5e9],
    ['800k', 800e3],
    ['2000000', 2e6],
    ['100Mbit/s', 100e6],
  ])('parses rate %s', (text, bits) => {
    expect(parseRate(text)).toBe(bits);
  });

  it.each(['', 'fast', '-1M', '1T', '5', '1e9'])('rejects rate "%s"', (text) => {
    expect(() => parseRate(text)).toThrow(/--rate/);
  });

  it('parses and checks groups', () => {
    expect(parseGroup('239.1.2.3:5000')).toEqual({ address: '239.1.2.3', port: 5000 });
    expect(() => parseGroup('10.0.0.1:5000')).toThrow(/not an IPv4 multicast/);
    expect(() => parseGroup('239.1.2.3')).toThrow(/ADDR:PORT/);
    expect(() => parseGroup('239.1.2.3:0')).toThrow(/port/);
    expect(() => parseGroup('[ff02::1]:5000')).toThrow(/IPv6/);
  });

  it('parses seconds and packet sizes', () => {
    expect(parseSeconds('1.5', '--idle-timeout', false)).toBe(1500);
    expect(parseSeconds('0', '--start-timeout', true)).toBe(0);
    expect(() => parseSeconds('0', '--idle-timeout', false)).toThrow(/--idle-timeout/);
    expect(parsePacketSize('65507')).toBe(65507);
    expect(() => parsePacketSize('65508')).toThrow(/--packet-size/);
    expect(() => parsePacketSize('10')).toThrow(/--packet-size/);
  });
});

describe('OutputWriter', () => {
  it('respects write() returning false, delivers everything in order, and reports idle', async () => {
    const { Writable } = await import('node:stream');
    const { OutputWriter } = await import('../../dist/pipeline/output.js');
    const received: number[] = [];
    const slow = new Writable({
      highWaterMark: 4,
      write(chunk: Buffer, _encoding, callback) {
        received.push(...chunk);
        setTimeout(callback, 2);
      },
    });
    // Count writes the stream receives while it has asked its writer to wait for 'drain'.
    let writesWhileFull = 0;
    let writes = 0;
    const originalWrite = slow.write.bind(slow);
    slow.write = ((chunk: Uint8Array, callback?: (error?: Error | null) => void) => {
      writes++;
      if (slow.writableNeedDrain) writesWhileFull++;
      return originalWrite(chunk, callback);
    }) as typeof slow.write;
    const writer = new OutputWriter(slow, 1024);
    for (let index = 0; index < 50; index++) writer.write(Uint8Array.of(index, index));
    await writer.idle();
    expect(received).toEqual(Array.from({ length: 50 }, (_, index) => [index, index]).flat());
    expect(writes).toBe(50);
    expect(writesWhileFull).toBe(0);
  });

  it('fails with E_IO instead of queueing beyond its bound', async () => {
    const { Writable } = await import('node:stream');
    const { OutputWriter } = await import('../../dist/pipeline/output.js');
    const stuck = new Writable({ highWaterMark: 1, write() {} });
    const writer = new OutputWriter(stuck, 100);
    writer.write(new Uint8Array(10));
    writer.write(new Uint8Array(60));
    expect(() => writer.write(new Uint8Array(60))).toThrow(/not keeping up/);
  });

  it('reports a failing target as E_IO', async () => {
    const { Writable } = await import('node:stream');
    const { OutputWriter } = await import('../../dist/pipeline/output.js');
    const broken = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('EPIPE'));
      },
    });
    const writer = new OutputWriter(broken, 100);
    writer.write(new Uint8Array(1));
    await expect(writer.idle()).rejects.toMatchObject({ code: 'E_IO' });
  });
});

describe('DeliveredStream', () => {
  // Payloads of awkward sizes, so chunks are filled across payload boundaries.
  function payloads(count: number, seed: number): Uint8Array[] {
    return Array.from({ length: count }, (_, index) => Uint8Array.from({ length: 1 + ((index * 7919 + seed) % 70_000) }, (_, at) => (at * 31 + index + seed) & 0xff));
  }

  async function deliverAll(reuseChunks: boolean, target: import('node:stream').Writable, parts: Uint8Array[], flushEvery: number, gatherEvery = 0) {
    const { OutputWriter } = await import('../../dist/pipeline/output.js');
    const { DeliveredStream } = await import('../../dist/pipeline/delivered-stream.js');
    const writer = new OutputWriter(target, 256 * 1024 * 1024);
    const stream = new DeliveredStream(writer, { reuseChunks });
    for (const [index, part] of parts.entries()) {
      if (gatherEvery > 0 && index % gatherEvery === 0) {
        // As the receive path's in-order gather does: copy what fits into the chunk directly,
        // and hand the rest over as usual.
        const taken = stream.deliverWith((chunk, start, end) => {
          const take = Math.min(part.byteLength, end - start);
          chunk.set(part.subarray(0, take), start);
          return take;
        });
        if (taken < part.byteLength) stream.deliver(part.subarray(taken));
      } else {
        stream.deliver(part);
      }
      if (index % flushEvery === 0) stream.flush();
      // Let write callbacks run between deliveries, as the event loop does.
      if (index % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const digest = stream.digest();
    await writer.idle();
    return { digest, bytes: stream.bytes };
  }

  it('writes every payload in order and hashes exactly what it wrote, reusing chunks only after their writes completed', async () => {
    const { createHash } = await import('node:crypto');
    const { Writable } = await import('node:stream');
    const parts = payloads(200, 3);
    const expected = Buffer.concat(parts);
    const written: Buffer[] = [];
    let overwrittenInFlight = 0;
    // Callbacks come late; at callback time the chunk must still hold what was written.
    const late = new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        const copy = Buffer.from(chunk);
        written.push(copy);
        setTimeout(() => {
          if (!copy.equals(chunk)) overwrittenInFlight++;
          callback();
        }, 1);
      },
    });
    const { digest, bytes } = await deliverAll(true, late, parts, 7);
    expect(overwrittenInFlight).toBe(0);
    expect(Buffer.concat(written).equals(expected)).toBe(true);
    expect(bytes).toBe(expected.byteLength);
    expect(digest.equals(createHash('sha256').update(expected).digest())).toBe(true);
  });

  it('takes payloads written straight into its chunk (deliverWith) in order with the rest, and refuses a bad count', async () => {
    const { createHash } = await import('node:crypto');
    const { Writable } = await import('node:stream');
    const parts = payloads(300, 5);
    const expected = Buffer.concat(parts);
    const written: Buffer[] = [];
    const collector = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written.push(Buffer.from(chunk));
        setImmediate(callback);
      },
    });
    const { digest, bytes } = await deliverAll(true, collector, parts, 5, 2);
    expect(bytes).toBe(expected.byteLength);
    expect(Buffer.concat(written).equals(expected)).toBe(true);
    expect(digest.equals(createHash('sha256').update(expected).digest())).toBe(true);

    const { OutputWriter } = await import('../../dist/pipeline/output.js');
    const { DeliveredStream } = await import('../../dist/pipeline/delivered-stream.js');
    const stream = new DeliveredStream(new OutputWriter(new Writable({ write: (_chunk, _encoding, callback) => callback() }), 1 << 20));
    expect(() => stream.deliverWith((_chunk, start, end) => end - start + 1)).toThrow(RangeError);
    expect(() => stream.deliverWith(() => -1)).toThrow(/fill must return the bytes it wrote/);
    expect(stream.bytes).toBe(0);
  });

  it('keeps its chunks to a quarter of the output queue bound, and takes a fresh chunk when asked for room', async () => {
    const { Writable } = await import('node:stream');
    const { OutputWriter } = await import('../../dist/pipeline/output.js');
    const { DeliveredStream, OUTPUT_CHUNK_BYTES } = await import('../../dist/pipeline/delivered-stream.js');
    const sink = () => new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const chunkOffered = (stream: InstanceType<typeof DeliveredStream>, roomBytes = 0): { chunk: Buffer; start: number; end: number } => {
      let offered: { chunk: Buffer; start: number; end: number } | null = null;
      stream.deliverWith((chunk, start, end) => {
        offered = { chunk, start, end };
        return 0;
      }, roomBytes);
      return offered!;
    };
    // A 1 MiB queue bound: the receiver counts the output as behind at half of it, so a chunk
    // handed over on top must still fit.
    const small = new DeliveredStream(new OutputWriter(sink(), 1 << 20));
    expect(chunkOffered(small).end).toBe(256 * 1024);
    const large = new DeliveredStream(new OutputWriter(sink(), 64 << 20));
    expect(chunkOffered(large).end).toBe(OUTPUT_CHUNK_BYTES);

    const writes: number[] = [];
    const counting = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        writes.push(chunk.byteLength);
        callback();
      },
    });
    const stream = new DeliveredStream(new OutputWriter(counting, 64 << 20), { reuseChunks: true });
    stream.deliver(new Uint8Array(OUTPUT_CHUNK_BYTES - 100));
    const first = chunkOffered(stream, 50);
    expect(first.start).toBe(OUTPUT_CHUNK_BYTES - 100);
    // 100 bytes left and 200 wanted: the chunk goes out as it is and a fresh one is offered.
    const fresh = chunkOffered(stream, 200);
    expect(fresh.chunk).not.toBe(first.chunk);
    expect(fresh.start).toBe(0);
    expect(writes).toEqual([OUTPUT_CHUNK_BYTES - 100]);
    // Room no chunk has: the current chunk is kept, and the caller must take another way.
    stream.deliver(new Uint8Array(10));
    expect(chunkOffered(stream, OUTPUT_CHUNK_BYTES + 1).start).toBe(10);
    expect(stream.bytes).toBe(OUTPUT_CHUNK_BYTES - 90);
  });

  it('never refills a chunk for a target that keeps what it was given', async () => {
    const { Writable } = await import('node:stream');
    const parts = payloads(150, 11);
    const kept: Buffer[] = [];
    // Keeps the views themselves, as a PassThrough's buffer would.
    const keeper = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        kept.push(chunk);
        callback();
      },
    });
    await deliverAll(false, keeper, parts, 3);
    expect(Buffer.concat(kept).equals(Buffer.concat(parts))).toBe(true);
  });
});
