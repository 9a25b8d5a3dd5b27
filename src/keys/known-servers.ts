// Trust on first use for control servers. A line per server: "HOST:PORT SHA256:<fingerprint>".
// The first time a client meets a server without a pinned fingerprint, it records what it saw
// and warns; afterwards a different fingerprint for the same address is refused, because that is
// exactly what a man in the middle looks like.

import { closeSync, constants, fstatSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SealcastError } from '../errors.js';
import { defaultConfigDir, isFingerprint } from './identity.js';
import { isMissingFileError, readSecretFileSync } from './secret-file.js';
import { writeAllSync } from './write-all.js';

const KNOWN_SERVERS_BYTES_MAX = 1024 * 1024;

export function defaultKnownServersPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultConfigDir(env), 'known_servers');
}

export function serverAddressKey(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Reads the file into address -> fingerprint; a missing file is empty. Malformed lines are ignored. */
export function readKnownServers(file: string): Map<string, string> {
  const known = new Map<string, string>();
  let bytes: Buffer;
  try {
    // Not a secret, but read like one: opened first, checked on the descriptor (a FIFO or device
    // must neither block this synchronous read nor be read without end), and bounded.
    bytes = readSecretFileSync(file, { label: 'the known-servers file', bytesMax: KNOWN_SERVERS_BYTES_MAX, errorCode: 'E_IO', requirePrivate: false });
  } catch (error) {
    if (isMissingFileError(error)) return known;
    throw error;
  }
  const text = bytes.toString('utf8');
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const [address, fingerprint] = trimmed.split(/\s+/);
    if (address && isFingerprint(fingerprint) && !known.has(address)) known.set(address, fingerprint);
  }
  return known;
}

export type KnownServerOutcome = 'matched' | 'recorded';

/**
 * Checks `fingerprint` for the server at `address` against `file`. Returns 'matched' when the
 * file already names it, 'recorded' after adding a first-contact entry (the caller warns), and
 * throws E_AUTH when the file holds a different fingerprint for that address.
 */
export function checkKnownServer(file: string, address: string, fingerprint: string): KnownServerOutcome {
  const known = readKnownServers(file).get(address);
  if (known === fingerprint) return 'matched';
  if (known !== undefined) {
    throw new SealcastError(
      'E_AUTH',
      `the control server at ${address} presented fingerprint ${fingerprint}, but ${file} records ${known} for it. ` +
        `This may be a man-in-the-middle attack. If the server's key really changed, remove its line from ${file} ` +
        'or pass the new fingerprint with --server-fingerprint.',
    );
  }
  appendKnownServer(file, `${address} ${fingerprint}\n`);
  return 'recorded';
}

/**
 * Appends one line through a single descriptor: created with mode 0600 when missing, opened
 * without blocking (a FIFO without a reader fails at once), and checked with fstat to be a
 * regular file before anything is written to it.
 */
function appendKnownServer(file: string, line: string): void {
  let fd: number;
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | (constants.O_NOCTTY ?? 0), 0o600);
  } catch (error) {
    throw new SealcastError('E_IO', `cannot record the server in ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new SealcastError('E_IO', `cannot record the server in ${file}: it is not a regular file`);
    writeAllSync(fd, Buffer.from(line, 'utf8'));
  } catch (error) {
    if (error instanceof SealcastError) throw error;
    throw new SealcastError('E_IO', `cannot record the server in ${file}: ${(error as Error).message}`, { cause: error });
  } finally {
    closeSync(fd);
  }
}
