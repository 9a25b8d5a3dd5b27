// Pre-shared per-client keys: 32 random bytes, stored raw in a file of mode 0600 that is never
// overwritten. Reading refuses a file others can read or one of the wrong size, so a truncated
// or swapped file fails loudly instead of producing a wrong key.

import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readSync, fstatSync, writeSync, unlinkSync } from 'node:fs';
import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';

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
    writeSync(fd, psk);
  } catch (error) {
    closeSync(fd);
    unlinkSync(path);
    throw new SealcastError('E_IO', `cannot write the key file ${path}: ${(error as Error).message}`, { cause: error });
  }
  closeSync(fd);
}

/** Reads a 32-byte key file. The caller owns the buffer and zeroes it when done. */
export function readPskFile(path: string): Buffer {
  let fd: number;
  try {
    // Non-blocking, so that opening a FIFO returns at once and is refused below instead of
    // waiting forever for a writer; a regular file reads the same either way.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new SealcastError('E_KEY', `cannot read the key file ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const stats = fstatSync(fd);
    const { mode, size } = stats;
    if (!stats.isFile()) throw new SealcastError('E_KEY', `the key file ${path} is not a regular file`);
    if ((mode & 0o077) !== 0) {
      throw new SealcastError('E_KEY', `the key file ${path} has mode ${(mode & 0o777).toString(8)}; restrict it with: chmod 600 ${path}`);
    }
    if (size !== PSK_FILE_BYTES) {
      throw new SealcastError('E_KEY', `the key file ${path} must hold exactly ${PSK_FILE_BYTES} bytes, it has ${size}`);
    }
    const psk = Buffer.alloc(PSK_FILE_BYTES);
    const read = readSync(fd, psk, 0, PSK_FILE_BYTES, 0);
    if (read !== PSK_FILE_BYTES) {
      psk.fill(0);
      throw new SealcastError('E_KEY', `the key file ${path} could not be read in full`);
    }
    return psk;
  } finally {
    closeSync(fd);
  }
}
