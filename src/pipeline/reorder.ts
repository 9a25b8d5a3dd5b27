// The receiver's reorder window, keyed by stream offset. In-order payloads are delivered at once
// by the caller; this holds payloads that arrived ahead of a hole, up to a fixed number of
// packets, and names the holes: for repair requests (every few milliseconds while a hole is
// open) and when the stream cannot continue. The holes are kept as a sorted list updated as
// payloads are held and delivered, so naming them costs nothing like a sort of every held offset
// (which, with thousands of packets held behind a hole, had taken a third of a receiver's time).

export type Placement = 'next' | 'old' | 'buffered' | 'ahead' | 'overflow';

/**
 * Held payloads are copied into blocks, one per MiB of the stream they start in, instead of an
 * allocation each: behind a hole thousands of packets wait, and a fresh copy per packet kept the
 * collector busy. A block has room for the last payload starting in its MiB to run over its end.
 */
const BLOCK_SPAN_BYTES = 1 << 20;
const BLOCK_BYTES = BLOCK_SPAN_BYTES + 65_536;
/** Blocks kept for reuse once the stream passed them. */
const SPARE_BLOCKS_MAX = 8;

export interface ByteRange {
  /** First missing byte. */
  from: number;
  /** One past the last missing byte. */
  to: number;
}

export class ReorderWindow {
  readonly packetsMax: number;
  readonly spanBytesMax: number;
  readonly heldBytesMax: number;
  #nextOffset: number;
  #heldBytes = 0;
  /** One past the furthest byte ever held (stale once everything held was delivered). */
  #heldEndMax = 0;
  /** Held payloads by stream offset: views into #blocks. */
  readonly #held = new Map<number, Uint8Array>();
  /** Block index (offset / BLOCK_SPAN_BYTES) -> block. */
  readonly #blocks = new Map<number, Buffer>();
  readonly #spareBlocks: Buffer[] = [];
  /** The lowest block index in #blocks (Infinity when none): advance() looks further only past it. */
  #lowestBlock = Infinity;
  /** The blocks bound: the held bytes bound, in blocks, plus the two a run straddles. */
  readonly #blocksMax: number;
  /**
   * The holes between nextOffset and the end of the furthest payload held, ascending and
   * disjoint, from index #gapsHead on (the ones before it were passed). Empty while nothing is
   * held.
   */
  #gaps: ByteRange[] = [];
  #gapsHead = 0;

  /**
   * `packetsMax` bounds how many payloads wait; `spanBytesMax` bounds how far ahead of the next
   * expected byte a payload may start before the hole counts as lost; `heldBytesMax` bounds the
   * memory the held copies take (jumbo datagrams would otherwise multiply it).
   */
  constructor(startOffset: number, packetsMax: number, spanBytesMax: number, heldBytesMax = 64 * 1024 * 1024) {
    if (!Number.isSafeInteger(startOffset) || startOffset < 0) throw new RangeError(`startOffset must be a non-negative safe integer, got ${startOffset}`);
    if (!Number.isInteger(packetsMax) || packetsMax < 1) throw new RangeError(`packetsMax must be a positive integer, got ${packetsMax}`);
    if (!(spanBytesMax > 0)) throw new RangeError(`spanBytesMax must be positive, got ${spanBytesMax}`);
    this.#nextOffset = startOffset;
    this.packetsMax = packetsMax;
    this.spanBytesMax = spanBytesMax;
    this.heldBytesMax = heldBytesMax;
    this.#blocksMax = Math.ceil(heldBytesMax / BLOCK_SPAN_BYTES) + 2;
  }

  /** The first stream byte not yet delivered. */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  get heldPackets(): number {
    return this.#held.size;
  }

  /** One past the last byte held, or nextOffset when nothing is held. */
  get heldEndOffset(): number {
    return this.#held.size === 0 ? this.#nextOffset : Math.max(this.#heldEndMax, this.#nextOffset);
  }

  /** Where a payload starting at `offset` belongs, without changing anything. */
  place(offset: number): Placement {
    if (offset === this.#nextOffset) return 'next';
    if (offset < this.#nextOffset) return 'old';
    if (this.#held.has(offset)) return 'buffered';
    if (this.#held.size >= this.packetsMax || this.#heldBytes >= this.heldBytesMax || offset - this.#nextOffset > this.spanBytesMax) return 'overflow';
    // Sparse payloads (one in every few MiB) would each take a block: those are bounded too.
    if (this.#blocks.size >= this.#blocksMax && !this.#blocks.has(Math.floor(offset / BLOCK_SPAN_BYTES))) return 'overflow';
    return 'ahead';
  }

  /**
   * Keeps a copy of a payload: one that came out of order ('ahead'), or the next one while the
   * caller cannot deliver it yet ('next'; takeRun() returns it).
   */
  hold(offset: number, payload: Uint8Array): void {
    const end = offset + payload.byteLength;
    const coveredEnd = this.heldEndOffset;
    if (offset >= coveredEnd) {
      if (offset > coveredEnd) this.#gaps.push({ from: coveredEnd, to: offset });
    } else {
      this.#cover(offset, Math.min(end, coveredEnd));
    }
    this.#held.set(offset, this.#store(offset, payload));
    this.#heldBytes += payload.byteLength;
    this.#heldEndMax = Math.max(this.#heldEndMax, end);
  }

  /** Copies a payload into the block of the MiB it starts in and returns the view of the copy. */
  #store(offset: number, payload: Uint8Array): Uint8Array {
    if (payload.byteLength > BLOCK_BYTES - BLOCK_SPAN_BYTES) return Uint8Array.prototype.slice.call(payload);
    const index = Math.floor(offset / BLOCK_SPAN_BYTES);
    let block = this.#blocks.get(index);
    if (block === undefined) {
      block = this.#spareBlocks.pop() ?? Buffer.allocUnsafeSlow(BLOCK_BYTES);
      this.#blocks.set(index, block);
      this.#lowestBlock = Math.min(this.#lowestBlock, index);
    }
    const position = offset - index * BLOCK_SPAN_BYTES;
    block.set(payload, position);
    return block.subarray(position, position + payload.byteLength);
  }

  /** Recycles the blocks of every MiB the stream has passed (their payloads were delivered). */
  #releaseBlocks(): void {
    const passed = Math.floor(this.#nextOffset / BLOCK_SPAN_BYTES);
    if (passed <= this.#lowestBlock) return;
    let lowest = Infinity;
    for (const [index, block] of this.#blocks) {
      if (index >= passed) {
        lowest = Math.min(lowest, index);
        continue;
      }
      this.#blocks.delete(index);
      if (this.#spareBlocks.length < SPARE_BLOCKS_MAX) this.#spareBlocks.push(block);
    }
    this.#lowestBlock = lowest;
  }

  /**
   * Records that the caller delivered `bytes` at nextOffset. What takeRun() returned must
   * have been copied by then: its block may be reused.
   */
  advance(bytes: number): void {
    this.#nextOffset += bytes;
    this.#releaseBlocks();
    const gaps = this.#gaps;
    while (this.#gapsHead < gaps.length && gaps[this.#gapsHead].to <= this.#nextOffset) this.#gapsHead++;
    if (this.#gapsHead < gaps.length && gaps[this.#gapsHead].from < this.#nextOffset) gaps[this.#gapsHead].from = this.#nextOffset;
    this.#compactGaps();
  }

  /** Removes [from, to) from the holes: a payload held there fills it. */
  #cover(from: number, to: number): void {
    const gaps = this.#gaps;
    // The first hole that ends after `from` (holes are ascending and disjoint).
    let low = this.#gapsHead;
    let high = gaps.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (gaps[middle].to <= from) low = middle + 1;
      else high = middle;
    }
    const kept: ByteRange[] = [];
    let index = low;
    for (; index < gaps.length && gaps[index].from < to; index++) {
      const gap = gaps[index];
      if (gap.from < from) kept.push({ from: gap.from, to: from });
      if (gap.to > to) kept.push({ from: to, to: gap.to });
    }
    gaps.splice(low, index - low, ...kept);
  }

  /** Drops passed holes from the front of the list once they are a good share of it. */
  #compactGaps(): void {
    if (this.#gapsHead === this.#gaps.length) {
      this.#gaps = [];
      this.#gapsHead = 0;
    } else if (this.#gapsHead > 64 && this.#gapsHead * 2 > this.#gaps.length) {
      this.#gaps = this.#gaps.slice(this.#gapsHead);
      this.#gapsHead = 0;
    }
  }

  /**
   * Removes the held payloads that continue the stream from nextOffset for as long as they lie
   * back to back in one block, and returns a single view of them all (undefined when nothing
   * held starts at nextOffset). Payloads are stored at their place in their MiB's block, so a
   * stretch released by a repaired hole is already contiguous: the caller copies it out and
   * advances once, instead of once per packet (per-packet delivery had cost a lossy receiver
   * more than its crypto). The run stops before it would pass `bytesMax`, but always holds the
   * first payload (`bytesMax` 0 takes exactly one): the caller bounds how much one delivery may
   * hand to its output. The view stays valid until the next advance().
   */
  takeRun(bytesMax: number): Uint8Array | undefined {
    const held = this.#held;
    const first = held.get(this.#nextOffset);
    if (first === undefined) return undefined;
    held.delete(this.#nextOffset);
    let bytes = first.byteLength;
    for (;;) {
      const next = held.get(this.#nextOffset + bytes);
      if (next === undefined || next.buffer !== first.buffer || next.byteOffset !== first.byteOffset + bytes) break;
      if (bytes + next.byteLength > bytesMax) break;
      held.delete(this.#nextOffset + bytes);
      bytes += next.byteLength;
    }
    this.#heldBytes -= bytes;
    return bytes === first.byteLength ? first : new Uint8Array(first.buffer, first.byteOffset, bytes);
  }

  /**
   * The holes between nextOffset and `endOffset` (or the last held payload), at most `rangesMax`
   * of them, for an error message.
   */
  missingRanges(endOffset?: number, rangesMax = 4): ByteRange[] {
    const ranges: ByteRange[] = [];
    const gaps = this.#gaps;
    for (let index = this.#gapsHead; index < gaps.length && ranges.length < rangesMax; index++) {
      ranges.push({ from: gaps[index].from, to: gaps[index].to });
    }
    const cursor = this.heldEndOffset;
    if (endOffset !== undefined && endOffset > cursor && ranges.length < rangesMax) ranges.push({ from: cursor, to: endOffset });
    return ranges;
  }

  clear(): void {
    this.#held.clear();
    this.#blocks.clear();
    this.#lowestBlock = Infinity;
    this.#heldBytes = 0;
    this.#gaps = [];
    this.#gapsHead = 0;
  }
}

export function describeRanges(ranges: readonly ByteRange[]): string {
  return ranges.map((range) => `bytes ${range.from}..${range.to - 1} (${range.to - range.from} bytes)`).join(', ');
}
