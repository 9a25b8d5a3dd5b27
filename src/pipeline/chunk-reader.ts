// The sender's input side: pulls chunks from the caller's async iterable (a file or stdin
// stream) and copies them into slot payloads, so every packet is full however the source chunks
// its data, and a slow live source still goes out after a bounded wait.

import { SealcastError } from '../errors.js';

/** The state of one slab being filled: when its first byte arrived, and how long it may wait after that. */
export interface SlabFill {
  firstByteAtMs: number | null;
  flushAfterMs: number;
}

/**
 * Pulls chunks from an async iterable and copies them into caller regions, so slot payloads are
 * filled completely regardless of how the source chunks its data.
 */
export class ChunkReader {
  readonly #iterator: AsyncIterator<Uint8Array>;
  readonly #onChunk: (chunk: Uint8Array) => void;
  #chunk: Uint8Array | null = null;
  #position = 0;
  /** A read of the source still under way when the last readInto stopped at its deadline. */
  #pending: Promise<IteratorResult<Uint8Array>> | null = null;
  done = false;

  constructor(source: AsyncIterable<Uint8Array>, onChunk: (chunk: Uint8Array) => void) {
    this.#iterator = source[Symbol.asyncIterator]();
    this.#onChunk = onChunk;
  }

  /**
   * Copies up to `bytes` into target at offset. Returns fewer at the end of the input, or when
   * the slab being filled got its first byte `fill.flushAfterMs` ago and the source has nothing
   * ready (without a `fill`, it waits for the source as long as it takes).
   */
  async readInto(target: Uint8Array, offset: number, bytes: number, fill?: SlabFill): Promise<number> {
    let copied = 0;
    while (copied < bytes) {
      if (this.#chunk === null || this.#position >= this.#chunk.byteLength) {
        if (this.done) break;
        const deadlineMs = fill?.firstByteAtMs != null ? fill.firstByteAtMs + fill.flushAfterMs : undefined;
        const next = await this.#nextChunk(deadlineMs);
        if (next === 'late') break;
        if (next.done) {
          this.done = true;
          this.#chunk = null;
          break;
        }
        const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        if (!(chunk instanceof Uint8Array)) throw new TypeError('the input must yield Uint8Array chunks');
        this.#onChunk(chunk);
        this.#chunk = chunk;
        this.#position = 0;
        continue;
      }
      const take = Math.min(bytes - copied, this.#chunk.byteLength - this.#position);
      if (fill !== undefined && fill.firstByteAtMs === null) fill.firstByteAtMs = performance.now();
      target.set(this.#chunk.subarray(this.#position, this.#position + take), offset + copied);
      this.#position += take;
      copied += take;
    }
    return copied;
  }

  /**
   * Fills whole slots synchronously from the chunk at hand: slot i (from `firstSlot`, at most
   * `slotsMax`) gets `bytesPerSlot` bytes at `firstOffset + (i - firstSlot) * stride`, and
   * lengths[i] is set. Stops at the first slot the chunk cannot fill entirely (readInto takes
   * that one, across chunks) and returns how many it filled. Most of a large input goes this way:
   * an await per packet cost more than the copy.
   */
  fillWholeSlots(target: Uint8Array, firstOffset: number, stride: number, bytesPerSlot: number, lengths: Uint32Array, firstSlot: number, slotsMax: number, fill?: SlabFill): number {
    const chunk = this.#chunk;
    if (chunk === null || bytesPerSlot <= 0) return 0;
    const slots = Math.min(slotsMax, Math.floor((chunk.byteLength - this.#position) / bytesPerSlot));
    if (slots <= 0) return 0;
    if (fill !== undefined && fill.firstByteAtMs === null) fill.firstByteAtMs = performance.now();
    let position = this.#position;
    for (let index = 0; index < slots; index++) {
      target.set(chunk.subarray(position, position + bytesPerSlot), firstOffset + index * stride);
      lengths[firstSlot + index] = bytesPerSlot;
      position += bytesPerSlot;
    }
    this.#position = position;
    return slots;
  }

  async #nextChunk(deadlineMs: number | undefined): Promise<IteratorResult<Uint8Array> | 'late'> {
    this.#pending ??= this.#iterator.next();
    const pending = this.#pending;
    let result: IteratorResult<Uint8Array> | 'late';
    try {
      if (deadlineMs === undefined) {
        result = await pending;
      } else {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), Math.max(0, deadlineMs - performance.now()));
        });
        try {
          result = await Promise.race([pending, late]);
        } finally {
          clearTimeout(timer);
        }
      }
    } catch (error) {
      this.#pending = null;
      throw new SealcastError('E_IO', `reading the input failed: ${(error as Error).message}`, { cause: error });
    }
    if (result !== 'late') this.#pending = null;
    return result;
  }
}
