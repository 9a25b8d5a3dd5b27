// Pre-shared per-client keys: 32 random bytes, stored raw in a file of mode 0600 that is never
// overwritten. Reading refuses a file others can read or one of the wrong size, so a truncated
// or swapped file fails loudly instead of producing a wrong key.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, unlinkSync } from 'node:fs';
import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';
import { readSecretFileSync } from './secret-file.js';
import { writeAllSync } from './write-all.js';

export const PSK_FILE_BYTES = 32;

export function generatePsk(): Buffer {
  return randomBytes(PSK_FILE_BYTES);
}

/** Writes a new key file with mode 0600; E_IO when the file already exists. */
export function writePskFile(path: string, psk: Uint8Array): void {
  requireUint8Array(psk, 'psk');
  if (psk.byteLength !== PSK_FILE_BYTES) throw new RangeError(`psk must be ${PSK_FILE_BYTES} bytes, got ${psk.byteLength}`);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'EEXIST' ? 'the file already exists (sealcast never overwrites a key file)' : (error as Error).message;
    throw new SealcastError('E_IO', `cannot write the key file ${path}: ${reason}`, { cause: error });
  }
  try {
    writeAllSync(fd, psk);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    // A half-written key file would only be refused later; take it away now.
    unlinkSync(path);
    throw new SealcastError('E_IO', `cannot write the key file ${path}: ${(error as Error).message}`, { cause: error });
  }
  closeSync(fd);
}

/**
 * Reads a 32-byte key file: opened first, then checked on the open descriptor (a regular file,
 * mode 0600, exactly 32 bytes). The caller owns the buffer and zeroes it when done.
 */
export function readPskFile(path: string): Buffer {
  return readSecretFileSync(path, { label: 'the key file', bytes: PSK_FILE_BYTES, bytesMax: PSK_FILE_BYTES });
}
