// The sender's input side (src/pipeline/chunk-reader.ts): however the source chunks its data,
// filling slots the way the sender does (whole slots synchronously while the chunk at hand has
// them, readInto for the slot that straddles chunks) gives full slots holding the input in order,
// a short last slot, and nothing lost or repeated.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkReader, type SlabFill } from '../../dist/pipeline/chunk-reader.js';

async function* chunksOf(input: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let position = 0;
  let index = 0;
  while (position < input.byteLength) {
    const size = Math.max(1, sizes[index++ % sizes.length]);
    yield input.subarray(position, position + size);
    position += size;
  }
}

/** Fills slabs of `slots` slots of `stride` bytes (payload at +header) until the input ends. */
async function readAll(reader: ChunkReader, slots: number, stride: number, header: number, payloadMax: number, useWholeSlots: boolean) {
  const payloads: Uint8Array[] = [];
  for (let slab = 0; slab < 100_000; slab++) {
    const memory = new Uint8Array(slots * stride);
    const lengths = new Uint32Array(slots);
    const fill: SlabFill = { firstByteAtMs: null, flushAfterMs: 60_000 };
    let slot = 0;
    while (slot < slots) {
      if (useWholeSlots) {
        slot += reader.fillWholeSlots(memory, slot * stride + header, stride, payloadMax, lengths, slot, slots - slot, fill);
        if (slot === slots) break;
      }
      const copied = await reader.readInto(memory, slot * stride + header, payloadMax, fill);
      if (copied === 0) break;
      lengths[slot] = copied;
      slot++;
      if (copied < payloadMax) break;
    }
    for (let index = 0; index < slot; index++) {
      payloads.push(memory.slice(index * stride + header, index * stride + header + lengths[index]));
    }
    if (slot > 0) expect(fill.firstByteAtMs).not.toBeNull();
    if (slot < slots) return payloads;
  }
  throw new Error('the input did not end');
}

describe('ChunkReader', () => {
  it('fills every slot completely and in order, however the source chunks its data', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 20_000 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 1400 }),
        fc.integer({ min: 1, max: 9 }),
        fc.boolean(),
        async (inputBytes, sizes, payloadMax, slots, useWholeSlots) => {
          const input = Uint8Array.from({ length: inputBytes }, (_, index) => (index * 131 + 7) & 0xff);
          let chunks = 0;
          const reader = new ChunkReader(chunksOf(input, sizes), () => chunks++);
          const header = 3;
          const payloads = await readAll(reader, slots, payloadMax + header + 2, header, payloadMax, useWholeSlots);
          expect(Buffer.concat(payloads).equals(Buffer.from(input))).toBe(true);
          // Every slot but the last is full.
          payloads.slice(0, -1).forEach((payload) => expect(payload.byteLength).toBe(payloadMax));
          expect(reader.done).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('fills no whole slot from a chunk that cannot fill one, and none before the first chunk arrived', async () => {
    const reader = new ChunkReader(chunksOf(new Uint8Array(100).fill(1), [10]), () => {});
    const memory = new Uint8Array(1000);
    const lengths = new Uint32Array(10);
    expect(reader.fillWholeSlots(memory, 0, 100, 50, lengths, 0, 10)).toBe(0);
    expect(await reader.readInto(memory, 0, 5)).toBe(5);
    // 5 bytes left in the 10-byte chunk: not a whole 50-byte slot.
    expect(reader.fillWholeSlots(memory, 100, 100, 50, lengths, 1, 9)).toBe(0);
    expect(reader.fillWholeSlots(memory, 100, 100, 5, lengths, 1, 9)).toBe(1);
    expect(lengths[1]).toBe(5);
    expect(reader.fillWholeSlots(memory, 100, 100, 0, lengths, 1, 9)).toBe(0);
  });
});
