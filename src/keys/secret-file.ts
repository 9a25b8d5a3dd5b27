// Reading a secret (a key) from a file, safely. The file is opened first and every check is made
// on the open descriptor (fstat), so what is checked is what is read: checking a path and then
// opening it again would let the file be swapped in between. The open does not block (a FIFO
// would otherwise wait forever for a writer, freezing a synchronous caller), anything but a
// regular file is refused, the read is bounded, and every buffer that held key bytes and is not
// handed to the caller is zeroed.

import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { SealcastError, type ErrorCode } from '../errors.js';

export interface SecretFileRules {
  /** How errors name the file, e.g. "key file" or "the server key". */
  label: string;
  /** The exact size a valid file has; leave out for any size up to bytesMax. */
  bytes?: number;
  /** The largest file read at all. */
  bytesMax: number;
  /** Appended to size errors, e.g. "(make one with: sealcast keygen FILE)". */
  hint?: string;
  /** The code of every error about this file. Default E_KEY. */
  errorCode?: ErrorCode;
  /**
   * Refuse a file that group or others may access (default true). False only for files that are
   * not secret but must still be read safely (the known-servers list).
   */
  requirePrivate?: boolean;
}

/**
 * Read-only, non-blocking (a FIFO without a writer opens at once and is then refused instead of
 * blocking), and never becoming the process's controlling terminal.
 */
const SECRET_OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOCTTY ?? 0);

/** Reads and checks a secret file; the caller owns the returned buffer and zeroes it when done. */
export function readSecretFileSync(path: string, rules: SecretFileRules): Buffer {
  requireRules(path, rules);
  let fd: number;
  try {
    fd = openSync(path, SECRET_OPEN_FLAGS);
  } catch (error) {
    throw fileError(rules, `cannot read ${rules.label} ${path}: ${describeError(error)}`, error);
  }
  try {
    const buffer = readBuffer(path, rules, fstatSync(fd));
    let filled = 0;
    try {
      while (filled < buffer.byteLength) {
        const bytesRead = readSync(fd, buffer, filled, buffer.byteLength - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
    } catch (error) {
      buffer.fill(0);
      throw fileError(rules, `cannot read ${rules.label} ${path}: ${describeError(error)}`, error);
    }
    return takeExact(path, rules, buffer, filled);
  } finally {
    closeSync(fd);
  }
}

/** readSecretFileSync without blocking the event loop on the file system. */
export async function readSecretFile(path: string, rules: SecretFileRules): Promise<Buffer> {
  requireRules(path, rules);
  let handle: FileHandle;
  try {
    handle = await open(path, SECRET_OPEN_FLAGS);
  } catch (error) {
    throw fileError(rules, `cannot read ${rules.label} ${path}: ${describeError(error)}`, error);
  }
  try {
    const buffer = readBuffer(path, rules, await handle.stat());
    let filled = 0;
    try {
      while (filled < buffer.byteLength) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.byteLength - filled, null);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
    } catch (error) {
      buffer.fill(0);
      throw fileError(rules, `cannot read ${rules.label} ${path}: ${describeError(error)}`, error);
    }
    return takeExact(path, rules, buffer, filled);
  } finally {
    await handle.close();
  }
}

/** True when `error` says the file does not exist (for callers where that is not an error). */
export function isMissingFileError(error: unknown): boolean {
  return error instanceof SealcastError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function requireRules(path: string, rules: SecretFileRules): void {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`${rules.label} path must be a non-empty string, got ${JSON.stringify(path)}`);
  if (!Number.isSafeInteger(rules.bytesMax) || rules.bytesMax < 1) throw new RangeError(`bytesMax must be a positive integer, got ${rules.bytesMax}`);
}

/**
 * Checks the open file's own metadata and returns the buffer to read it into: one byte larger
 * than the file, so that a file that grew after fstat is noticed instead of read in part.
 */
function readBuffer(path: string, rules: SecretFileRules, stats: Stats): Buffer {
  if (!stats.isFile()) throw fileError(rules, `${rules.label} ${path} is not a regular file (it is ${kindOf(stats)})`);
  if (rules.requirePrivate !== false && process.platform !== 'win32' && (stats.mode & 0o077) !== 0) {
    const mode = (stats.mode & 0o777).toString(8).padStart(4, '0');
    throw fileError(rules, `${rules.label} ${path} is accessible by group or others (mode ${mode}); restrict it with: chmod 600 ${path}`);
  }
  checkSize(path, rules, stats.size);
  return Buffer.alloc(stats.size + 1);
}

function checkSize(path: string, rules: SecretFileRules, size: number): void {
  const hint = rules.hint !== undefined ? ` ${rules.hint}` : '';
  if (rules.bytes !== undefined && size !== rules.bytes) {
    throw fileError(rules, `${rules.label} ${path} must hold exactly ${rules.bytes} bytes, it holds ${size}${hint}`);
  }
  if (size > rules.bytesMax) throw fileError(rules, `${rules.label} ${path} is too large (${size} bytes, at most ${rules.bytesMax})${hint}`);
}

/** The first `filled` bytes in a buffer of their own; the read buffer is zeroed either way. */
function takeExact(path: string, rules: SecretFileRules, buffer: Buffer, filled: number): Buffer {
  try {
    if (filled === buffer.byteLength) throw fileError(rules, `${rules.label} ${path} grew while it was read; try again once it is complete`);
    // It shrank between fstat and read (truncated, or being rewritten).
    checkSize(path, rules, filled);
    const secret = Buffer.alloc(filled);
    buffer.copy(secret, 0, 0, filled);
    return secret;
  } finally {
    buffer.fill(0);
  }
}

function fileError(rules: SecretFileRules, message: string, cause?: unknown): SealcastError {
  return new SealcastError(rules.errorCode ?? 'E_KEY', message, cause === undefined ? undefined : { cause });
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSocket()) return 'a socket';
  return 'neither a file nor a directory';
}

function describeError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined ? code : String((error as Error).message ?? error);
}
