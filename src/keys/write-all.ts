// A write that does not stop short: writeSync may write fewer bytes than asked (a full disk, a
// signal), and a key file cut short is a different key.

import { writeSync } from 'node:fs';

/** Writes every byte of `data` at the descriptor's current position; throws on error or no progress. */
export function writeAllSync(fd: number, data: Uint8Array): void {
  let written = 0;
  while (written < data.byteLength) {
    const count = writeSync(fd, data, written, data.byteLength - written);
    if (count <= 0) throw new Error(`write made no progress after ${written} of ${data.byteLength} bytes`);
    written += count;
  }
}
