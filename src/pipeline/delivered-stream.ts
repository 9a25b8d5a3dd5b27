// The receiver's in-order plaintext on its way out: authenticated payloads are copied, in stream
// order, into large chunks that go to the output (OutputWriter) a chunk at a time, and each chunk
// is hashed as it leaves, so the SHA-256 that END is checked against covers exactly the bytes
// written. One write and one hash update per chunk, not per packet, is what keeps this cheap.

import { createHash, type Hash } from 'node:crypto';
import type { OutputWriter } from './output.js';

/**
 * Output is gathered into chunks of this size before it is written. Each write costs a fixed
 * amount on top of its bytes (a system call, and for a FIFO a thread pool round trip); at 1 MiB
 * that is a quarter of what 256 KiB chunks cost, for 5 % less receiver CPU in all.
 */
export const OUTPUT_CHUNK_BYTES = 1024 * 1024;
/**
 * A chunk is at most this fraction of the output's queue bound: the receiver counts the output
 * as behind at half the bound and stops adding to it, so a whole chunk handed over on top of
 * that must still fit.
 */
const CHUNK_FRACTION_OF_QUEUE_MAX = 0.25;
const CHUNK_BYTES_MIN = 4096;
/** A partly filled chunk is written anyway once this long passed, so a slow live pipe stays live. */
export const OUTPUT_FLUSH_MS = 20;
/**
 * Written chunks kept for reuse. A fresh buffer per chunk meant fresh pages (a page fault each,
 * costly in a VM) and a release per chunk for the collector; reusing the few chunks in flight
 * keeps the receiver's memory still. 8 chunks are 8 MiB.
 */
const SPARE_CHUNKS_MAX = 8;

export class DeliveredStream {
  readonly #output: OutputWriter;
  readonly #hash: Hash = createHash('sha256');
  readonly #chunkBytes: number;
  #chunk: Buffer;
  /** Writes of #chunk's pieces not yet completed by the output. */
  #chunkWritesPending = 0;
  /** Chunks whose every write completed, ready for reuse. */
  readonly #spareChunks: Buffer[] = [];
  /** Retired chunks and how many of their pieces' writes are still pending. */
  readonly #retired = new Map<Buffer, number>();
  /** Bytes of #chunk already handed to the output. */
  #chunkStart = 0;
  /** Bytes of #chunk filled. */
  #chunkUsed = 0;
  #lastFlushAtMs = performance.now();
  #bytes = 0;
  #digested = false;

  readonly #reuseChunks: boolean;

  /**
   * `reuseChunks`: the target is done with a chunk's bytes once its write callback fired (files,
   * sockets, pipes), so written chunks may be filled again. A Writable that keeps chunks after
   * the callback (a PassThrough, a collector that stores views) must not get reused chunks.
   */
  constructor(output: OutputWriter, options: { reuseChunks?: boolean } = {}) {
    this.#output = output;
    this.#reuseChunks = options.reuseChunks ?? false;
    this.#chunkBytes = Math.max(CHUNK_BYTES_MIN, Math.min(OUTPUT_CHUNK_BYTES, Math.floor(output.queueBytesMax * CHUNK_FRACTION_OF_QUEUE_MAX)));
    this.#chunk = Buffer.allocUnsafe(this.#chunkBytes);
  }

  /** The size of the chunks the output gets (at most a quarter of its queue bound). */
  get chunkBytes(): number {
    return this.#chunkBytes;
  }

  /** Bytes delivered so far (written or waiting in the current chunk). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends the next payload of the stream (copied: the caller may reuse its buffer). */
  deliver(payload: Uint8Array): void {
    let copied = 0;
    while (copied < payload.byteLength) {
      if (this.#chunkUsed === this.#chunk.byteLength) this.#nextChunk();
      const take = Math.min(payload.byteLength - copied, this.#chunk.byteLength - this.#chunkUsed);
      this.#chunk.set(payload.subarray(copied, copied + take), this.#chunkUsed);
      this.#chunkUsed += take;
      copied += take;
    }
    this.#bytes += payload.byteLength;
  }

  /**
   * Lets `fill` write the next payloads of the stream straight into the current chunk's free
   * space (`chunk[start, end)`, never empty) and returns the bytes it says it wrote: the receive
   * path's in-order gather or open, which writes a batch of payloads in one native call. When
   * the chunk has less than `roomBytes` free (and a fresh chunk would have that), the chunk is
   * handed over and `fill` gets a fresh one.
   */
  deliverWith(fill: (chunk: Buffer, start: number, end: number) => number, roomBytes = 0): number {
    const free = this.#chunk.byteLength - this.#chunkUsed;
    if (free === 0 || (free < roomBytes && roomBytes <= this.#chunkBytes)) this.#nextChunk();
    const start = this.#chunkUsed;
    const written = fill(this.#chunk, start, this.#chunk.byteLength);
    if (!Number.isInteger(written) || written < 0 || written > this.#chunk.byteLength - start) {
      throw new RangeError(`deliverWith: fill must return the bytes it wrote (0 to ${this.#chunk.byteLength - start}), got ${written}`);
    }
    this.#chunkUsed += written;
    this.#bytes += written;
    return written;
  }

  /** Flushes when a chunk's worth is waiting or OUTPUT_FLUSH_MS passed since the last flush. */
  flushIfDue(nowMs: number): void {
    if (this.#chunkUsed - this.#chunkStart >= this.#chunkBytes || nowMs - this.#lastFlushAtMs >= OUTPUT_FLUSH_MS) this.flush();
  }

  /**
   * Hands what was delivered since the last flush to the output without copying it again.
   * Throws the output's E_IO error (target failed, or too far behind).
   */
  flush(): void {
    if (this.#chunkUsed === this.#chunkStart) return;
    this.#lastFlushAtMs = performance.now();
    const chunk = this.#chunk.subarray(this.#chunkStart, this.#chunkUsed);
    this.#chunkStart = this.#chunkUsed;
    this.#hash.update(chunk);
    if (!this.#reuseChunks) {
      this.#output.write(chunk);
      return;
    }
    this.#chunkWritesPending++;
    const owner = this.#chunk;
    this.#output.write(chunk, () => this.#onPieceWritten(owner));
  }

  /** Retires the full current chunk (the output owns it until its writes complete) and takes another. */
  #nextChunk(): void {
    this.flush();
    const retired = this.#chunk;
    const writesPending = this.#chunkWritesPending;
    this.#chunk = this.#spareChunks.pop() ?? Buffer.allocUnsafe(this.#chunkBytes);
    this.#chunkWritesPending = 0;
    this.#chunkStart = 0;
    this.#chunkUsed = 0;
    if (writesPending === 0) this.#recycle(retired);
    else this.#retired.set(retired, writesPending);
  }

  #onPieceWritten(owner: Buffer): void {
    if (owner === this.#chunk) {
      this.#chunkWritesPending--;
      return;
    }
    const pending = (this.#retired.get(owner) ?? 1) - 1;
    if (pending > 0) {
      this.#retired.set(owner, pending);
      return;
    }
    this.#retired.delete(owner);
    this.#recycle(owner);
  }

  #recycle(chunk: Buffer): void {
    if (this.#reuseChunks && this.#spareChunks.length < SPARE_CHUNKS_MAX) this.#spareChunks.push(chunk);
  }

  /** Flushes, then returns the SHA-256 of everything delivered; call once, at the end. */
  digest(): Buffer {
    if (this.#digested) throw new Error('DeliveredStream.digest() was already called');
    this.flush();
    this.#digested = true;
    return this.#hash.digest();
  }
}
