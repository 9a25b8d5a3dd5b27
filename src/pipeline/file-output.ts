// The receiver's `-o FILE` target. A regular file is written synchronously, from the receive
// loop itself, the way udp-receiver and uftpd write theirs: a write into the page cache does not
// wait for the disk (unless the kernel throttles a writer that dirties pages faster than the
// disk takes them, which an asynchronous write would only turn into a growing queue), and
// handing each chunk to libuv's thread pool instead cost a thread wake-up and a completion
// wake-up per chunk on top of the write, an inter-processor interrupt each in a VM (with 1 MiB
// chunks, writing synchronously took the receiver's CPU down by about 5 %). Anything else (a
// FIFO, a terminal, a character device) may block for as long as its reader likes, so it gets
// Node's asynchronous WriteStream.

import { close, closeSync, createWriteStream, fstatSync, open, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { SealcastError } from '../errors.js';

/** Output files are created with this mode: the plaintext is the subscriber's alone. */
export const OUTPUT_FILE_MODE = 0o600;

/**
 * A FIFO or device target's high-water mark: several output chunks, so that the chunks that
 * arrive while one write is in flight go to the kernel in one writev.
 */
const STREAM_HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** A regular file written with writeSync; the descriptor is closed when the stream ends or is destroyed. */
export class FileOutput extends Writable {
  #fd: number;

  /** Takes ownership of `fd`, an open regular file. */
  constructor(fd: number) {
    super({ decodeStrings: false });
    if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`fd must be an open file descriptor, got ${fd}`);
    this.#fd = fd;
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      writeWhole(this.#fd, chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback(this.#close());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    callback(this.#close() ?? error);
  }

  /** Closes the descriptor once; returns the close error, if any. */
  #close(): Error | null {
    const fd = this.#fd;
    if (fd < 0) return null;
    this.#fd = -1;
    try {
      closeSync(fd);
      return null;
    } catch (error) {
      return error as Error;
    }
  }
}

/** Writes all of `data`; a write that makes no progress is an error rather than a spin. */
function writeWhole(fd: number, data: Uint8Array): void {
  let written = 0;
  while (written < data.byteLength) {
    const count = writeSync(fd, data, written, data.byteLength - written);
    if (count <= 0) throw new Error(`write made no progress after ${written} of ${data.byteLength} bytes`);
    written += count;
  }
}

/**
 * Creates or truncates `path` (mode 0600) and returns the Writable to receive into: a FileOutput
 * for a regular file, a WriteStream for anything else. The open itself is asynchronous, since
 * opening a FIFO waits for its reader. Fails with E_IO naming the path and the reason.
 */
export async function openFileOutput(path: string): Promise<Writable> {
  const failure = (error: unknown): SealcastError =>
    new SealcastError('E_IO', `cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  // A plain descriptor, not a FileHandle: a FileHandle closes its descriptor when it is
  // collected, which would pull the file out from under the stream that owns it.
  const fd = await new Promise<number>((resolve, reject) => {
    open(path, 'w', OUTPUT_FILE_MODE, (error, opened) => (error ? reject(failure(error)) : resolve(opened)));
  });
  let regular: boolean;
  try {
    regular = fstatSync(fd).isFile();
  } catch (error) {
    close(fd, () => {});
    throw failure(error);
  }
  if (regular) return new FileOutput(fd);
  return createWriteStream(path, { fd, autoClose: true, highWaterMark: STREAM_HIGH_WATER_BYTES });
}
