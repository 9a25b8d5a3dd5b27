// The receiver's in-order plaintext on its way out: authenticated payloads are copied, in stream
// order, into large chunks that go to the output (OutputWriter) a chunk at a time, and each chunk
// is hashed as it leaves, so the SHA-256 that END is checked against covers exactly the bytes
// written. One write and one hash update per chunk, not per packet, is what keeps this cheap.

import { createHash, type Hash } from 'node:crypto';
import type { OutputWriter } from './output.js';

/** Output is gathered into chunks of this size before it is written. */
export const OUTPUT_CHUNK_BYTES = 256 * 1024;
/** A partly filled chunk is written anyway once this long passed, so a slow live pipe stays live. */
export const OUTPUT_FLUSH_MS = 20;

export class DeliveredStream {
  readonly #output: OutputWriter;
  readonly #hash: Hash = createHash('sha256');
  #chunk: Buffer = Buffer.allocUnsafe(OUTPUT_CHUNK_BYTES);
  /** Bytes of #chunk already handed to the output. */
  #chunkStart = 0;
  /** Bytes of #chunk filled. */
  #chunkUsed = 0;
  #lastFlushAtMs = performance.now();
  #bytes = 0;
  #digested = false;

  constructor(output: OutputWriter) {
    this.#output = output;
  }

  /** Bytes delivered so far (written or waiting in the current chunk). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends the next payload of the stream (copied: the caller may reuse its buffer). */
  deliver(payload: Uint8Array): void {
    let copied = 0;
    while (copied < payload.byteLength) {
      if (this.#chunkUsed === this.#chunk.byteLength) {
        this.flush();
        // The full chunk now belongs to the output; later bytes go to a fresh one.
        this.#chunk = Buffer.allocUnsafe(OUTPUT_CHUNK_BYTES);
        this.#chunkStart = 0;
        this.#chunkUsed = 0;
      }
      const take = Math.min(payload.byteLength - copied, this.#chunk.byteLength - this.#chunkUsed);
      this.#chunk.set(payload.subarray(copied, copied + take), this.#chunkUsed);
      this.#chunkUsed += take;
      copied += take;
    }
    this.#bytes += payload.byteLength;
  }

  /** Flushes when a chunk's worth is waiting or OUTPUT_FLUSH_MS passed since the last flush. */
  flushIfDue(nowMs: number): void {
    if (this.#chunkUsed - this.#chunkStart >= OUTPUT_CHUNK_BYTES || nowMs - this.#lastFlushAtMs >= OUTPUT_FLUSH_MS) this.flush();
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
    this.#output.write(chunk);
  }

  /** Flushes, then returns the SHA-256 of everything delivered; call once, at the end. */
  digest(): Buffer {
    if (this.#digested) throw new Error('DeliveredStream.digest() was already called');
    this.flush();
    this.#digested = true;
    return this.#hash.digest();
  }
}
