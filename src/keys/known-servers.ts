// Trust on first use for control servers. A line per server: "HOST:PORT SHA256:<fingerprint>".
// The first time a client meets a server without a pinned fingerprint, it records what it saw
// and warns; afterwards a different fingerprint for the same address is refused, because that is
// exactly what a man in the middle looks like.

import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SealcastError } from '../errors.js';
import { defaultConfigDir, isFingerprint } from './identity.js';

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
  let text: string;
  try {
    if (statSync(file).size > KNOWN_SERVERS_BYTES_MAX) {
      throw new SealcastError('E_IO', `the known-servers file ${file} is larger than ${KNOWN_SERVERS_BYTES_MAX} bytes`);
    }
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return known;
    if (error instanceof SealcastError) throw error;
    throw new SealcastError('E_IO', `cannot read the known-servers file ${file}: ${(error as Error).message}`, { cause: error });
  }
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
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    closeSync(openSync(file, 'a', 0o600));
    appendFileSync(file, `${address} ${fingerprint}\n`);
  } catch (error) {
    throw new SealcastError('E_IO', `cannot record the server in ${file}: ${(error as Error).message}`, { cause: error });
  }
  return 'recorded';
}
