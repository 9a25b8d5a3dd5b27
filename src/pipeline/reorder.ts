// The receiver's reorder window, keyed by stream offset. In-order payloads are delivered at once
// by the caller; this holds payloads that arrived ahead of a hole, up to a fixed number of
// packets, and names the holes when the stream cannot continue.

export type Placement = 'next' | 'old' | 'buffered' | 'ahead' | 'overflow';

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
  readonly #held = new Map<number, Uint8Array>();

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
    return 'ahead';
  }

  /**
   * Keeps a copy of a payload: one that came out of order ('ahead'), or the next one while the
   * caller cannot deliver it yet ('next'; takeNext() returns it).
   */
  hold(offset: number, payload: Uint8Array): void {
    this.#held.set(offset, Uint8Array.prototype.slice.call(payload));
    this.#heldBytes += payload.byteLength;
    this.#heldEndMax = Math.max(this.#heldEndMax, offset + payload.byteLength);
  }

  /** Records that the caller delivered `bytes` at nextOffset. */
  advance(bytes: number): void {
    this.#nextOffset += bytes;
  }

  /** Removes and returns the held payload that starts at nextOffset, if any. */
  takeNext(): Uint8Array | undefined {
    const payload = this.#held.get(this.#nextOffset);
    if (payload !== undefined) {
      this.#held.delete(this.#nextOffset);
      this.#heldBytes -= payload.byteLength;
    }
    return payload;
  }

  /**
   * The holes between nextOffset and `endOffset` (or the last held payload), at most `rangesMax`
   * of them, for an error message.
   */
  missingRanges(endOffset?: number, rangesMax = 4): ByteRange[] {
    const starts = [...this.#held.keys()].sort((a, b) => a - b);
    const ranges: ByteRange[] = [];
    let cursor = this.#nextOffset;
    for (const start of starts) {
      if (start > cursor) ranges.push({ from: cursor, to: start });
      cursor = Math.max(cursor, start + (this.#held.get(start)?.byteLength ?? 0));
      if (ranges.length >= rangesMax) return ranges;
    }
    if (endOffset !== undefined && endOffset > cursor) ranges.push({ from: cursor, to: endOffset });
    return ranges.slice(0, rangesMax);
  }

  clear(): void {
    this.#held.clear();
    this.#heldBytes = 0;
  }
}

export function describeRanges(ranges: readonly ByteRange[]): string {
  return ranges.map((range) => `bytes ${range.from}..${range.to - 1} (${range.to - range.from} bytes)`).join(', ');
}
