// The sender's input when it is a file: read into two buffers that take turns, instead of a
// ReadStream's fresh buffer per read. The sender copies every chunk into packet slots before it
// asks for the next, so a chunk is never needed after that; a fresh 1 MiB buffer per read
// cost a page fault per 4 KiB of it and, as external memory, a full garbage collection every
// 64 MiB or so, which together came to about a tenth of the sender's CPU with jumbo datagrams.
//
// Single use: one pass over the file from its current position, then the descriptor is closed.

import { closeSync, read } from 'node:fs';
import { SealcastError } from '../errors.js';

/** Bytes per read. */
export const FILE_SOURCE_CHUNK_BYTES = 1024 * 1024;

export class FileSource implements AsyncIterable<Uint8Array> {
  readonly #buffers: [Buffer, Buffer];
  #fd: number;
  #iterated = false;
  #iterating = false;
  #stopReason: Error | null = null;

  /** Takes ownership of `fd`, open for reading; `chunkBytes` per read. */
  constructor(fd: number, chunkBytes = FILE_SOURCE_CHUNK_BYTES) {
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be an open file descriptor, got ${fd}`);
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
    this.#fd = fd;
    this.#buffers = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
  }

  /**
   * Yields the file's bytes in order. Each chunk is a view of one of the two buffers and is
   * valid until the next chunk is asked for: the read of the next one is already under way into
   * the other buffer, and the one after goes into this chunk's buffer. A read error, or
   * destroy(), ends the iteration with that error.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.#iterated) throw new Error('a FileSource can be read once');
    this.#iterated = true;
    this.#iterating = true;
    let index = 0;
    let inFlight = this.#read(this.#buffers[0]);
    try {
      for (;;) {
        const bytes = await inFlight;
        if (bytes === 0) return;
        const current = this.#buffers[index];
        index ^= 1;
        inFlight = this.#read(this.#buffers[index]);
        yield current.subarray(0, bytes);
      }
    } finally {
      // The descriptor must not be closed (and its number reused) under a read still running.
      await inFlight.catch(() => 0);
      this.#iterating = false;
      this.#close();
    }
  }

  /**
   * Stops the source: the iteration ends with `error` (E_CLOSED by default) at its next read,
   * and the descriptor is closed (at once when nothing iterates). Idempotent.
   */
  destroy(error?: Error): void {
    this.#stopReason ??= error ?? new SealcastError('E_CLOSED', 'the input was closed');
    if (!this.#iterating) this.#close();
  }

  #read(target: Buffer): Promise<number> {
    if (this.#stopReason !== null) return Promise.reject(this.#stopReason);
    if (this.#fd < 0) return Promise.reject(new SealcastError('E_CLOSED', 'the input was closed'));
    const fd = this.#fd;
    return new Promise((resolve, reject) => {
      read(fd, target, 0, target.byteLength, null, (error, bytes) => (error ? reject(error) : resolve(bytes)));
    });
  }

  #close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    try {
      closeSync(fd);
    } catch {
      // Nothing to do: the descriptor is gone either way.
    }
  }
}
