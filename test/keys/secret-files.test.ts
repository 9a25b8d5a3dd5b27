// Key files are opened first and checked on the open descriptor: a file swapped after a check
// must never be the one read, anything but a regular file is refused at once (never blocking,
// never read without end), and writers create key files with O_CREAT|O_EXCL and mode 0600.

import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs, { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fingerprintOf, loadOrCreateIdentity } from '../../dist/keys/identity.js';
import { readKeyFile, writeNewKeyFile } from '../../dist/keys/key-file.js';
import { checkKnownServer, readKnownServers } from '../../dist/keys/known-servers.js';
import { readPskFile, writePskFile } from '../../dist/keys/psk.js';
import { errorOf } from '../helpers/error-of.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-secret-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Makes the first successful stat or open of `path` (through node:fs or node:fs/promises, as the
 * library imports them) swap another file into its place right after. A reader that checks a
 * path and then opens it again reads the swapped-in file; one that checks its open descriptor
 * does not. Returns whether the swap happened and a function that undoes the patch.
 */
function swapAfterFirstTouch(path: string, replacement: string): { swapped: () => boolean; restore: () => void } {
  let swapped = false;
  const swap = (): void => {
    if (swapped) return;
    swapped = true;
    renameSync(replacement, path);
  };
  const restores: Array<() => void> = [];
  const patch = (target: Record<string, unknown>, name: string, async: boolean): void => {
    const original = target[name] as (...args: unknown[]) => unknown;
    restores.push(() => (target[name] = original));
    target[name] = function (this: unknown, ...args: unknown[]) {
      const result = original.apply(this, args);
      if (args[0] !== path) return result;
      if (async) return (result as Promise<unknown>).then((value) => (swap(), value));
      swap();
      return result;
    };
  };
  for (const name of ['statSync', 'lstatSync', 'openSync']) patch(fs as unknown as Record<string, unknown>, name, false);
  for (const name of ['stat', 'lstat', 'open']) patch(fsp as unknown as Record<string, unknown>, name, true);
  syncBuiltinESMExports();
  return {
    swapped: () => swapped,
    restore: () => {
      for (const restore of restores) restore();
      syncBuiltinESMExports();
    },
  };
}

function writeFile600(path: string, bytes: Uint8Array | string): void {
  writeFileSync(path, bytes, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** A readable-by-everyone file with other bytes, waiting next to `path` to be swapped in. */
function decoy(path: string, bytes: Uint8Array | string): string {
  const decoyPath = `${path}.decoy`;
  writeFileSync(decoyPath, bytes);
  chmodSync(decoyPath, 0o644);
  return decoyPath;
}


function pem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
}

describe('a key file swapped after it was checked', () => {
  it('readKeyFile returns the bytes of the file it checked, never the swapped-in file', async () => {
    const path = join(dir, 'group.key');
    const original = randomBytes(32);
    writeFile600(path, original);
    const race = swapAfterFirstTouch(path, decoy(path, randomBytes(32)));
    let key: Buffer;
    try {
      key = await readKeyFile(path);
    } finally {
      race.restore();
    }
    expect(race.swapped()).toBe(true);
    expect(key.equals(original)).toBe(true);
  });

  it('readPskFile returns the bytes of the file it checked', () => {
    const path = join(dir, 'client.psk');
    const original = randomBytes(32);
    writeFile600(path, original);
    const race = swapAfterFirstTouch(path, decoy(path, randomBytes(32)));
    let psk: Buffer;
    try {
      psk = readPskFile(path);
    } finally {
      race.restore();
    }
    expect(race.swapped()).toBe(true);
    expect(psk.equals(original)).toBe(true);
  });

  it('the server key loaded is the one checked', () => {
    const path = join(dir, 'server_ed25519.pem');
    const original = pem();
    writeFile600(path, original);
    const expected = loadOrCreateIdentity(path).fingerprint;
    const race = swapAfterFirstTouch(path, decoy(path, pem()));
    let fingerprint: string;
    try {
      fingerprint = loadOrCreateIdentity(path).fingerprint;
    } finally {
      race.restore();
    }
    expect(race.swapped()).toBe(true);
    expect(fingerprint).toBe(expected);
  });
});

describe('key paths that are not regular files', () => {
  it('refuses a directory and a device as a group key, PSK or server key, naming what it is', async () => {
    const directory = join(dir, 'a-directory');
    mkdirSync(directory, { mode: 0o700 });
    await expect(readKeyFile(directory)).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/not a regular file \(it is a directory\)/) });
    await expect(readKeyFile('/dev/null')).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/not a regular file \(it is a device\)/) });
    expect(errorOf(() => readPskFile(directory))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/it is a directory/) });
    expect(errorOf(() => readPskFile('/dev/zero'))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/it is a device/) });
    expect(errorOf(() => loadOrCreateIdentity('/dev/zero'))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/it is a device/) });
  });

  it('refuses a device or a directory as the known-servers file instead of reading it', () => {
    expect(errorOf(() => readKnownServers('/dev/null'))).toMatchObject({ code: 'E_IO', message: expect.stringMatching(/not a regular file/) });
    const directory = join(dir, 'known');
    mkdirSync(directory);
    expect(errorOf(() => readKnownServers(directory))).toMatchObject({ code: 'E_IO', message: expect.stringMatching(/not a regular file/) });
  });

  it('refuses a server key too large to be one, before reading it', () => {
    const path = join(dir, 'huge.pem');
    writeFile600(path, Buffer.alloc(64 * 1024, 0x41));
    expect(errorOf(() => loadOrCreateIdentity(path))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/too large/) });
  });

  // The known-servers reader is synchronous: blocking on a FIFO would freeze the whole process,
  // so these run in a child process that a timeout ends.
  const knownServersModule = pathToFileURL(resolve('dist/keys/known-servers.js')).href;

  function inChild(body: string): { timedOut: boolean; result: { code?: string; message?: string; ok?: boolean } | null } {
    const script = `import * as known from ${JSON.stringify(knownServersModule)};
try { ${body}; console.log(JSON.stringify({ ok: true })); }
catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 5_000, encoding: 'utf8' });
    const timedOut = child.error !== undefined || child.signal !== null;
    return { timedOut, result: timedOut ? null : JSON.parse(child.stdout.trim()) };
  }

  it('refuses a FIFO as the known-servers file at once, reading and recording', () => {
    const path = join(dir, 'known_servers');
    execFileSync('mkfifo', ['-m', '600', path]);
    const read = inChild(`known.readKnownServers(${JSON.stringify(path)})`);
    expect(read.timedOut).toBe(false);
    expect(read.result).toMatchObject({ code: 'E_IO', message: expect.stringMatching(/not a regular file/) });
    const fingerprint = fingerprintOf(randomBytes(32));
    const check = inChild(`known.checkKnownServer(${JSON.stringify(path)}, '127.0.0.1:7000', ${JSON.stringify(fingerprint)})`);
    expect(check.timedOut).toBe(false);
    expect(check.result).toMatchObject({ code: 'E_IO' });
  }, 20_000);
});

describe('key file writers', () => {
  it('create every key file with mode 0600 even under an open umask, and the known-servers file too', async () => {
    const previous = process.umask(0);
    try {
      await writeNewKeyFile(join(dir, 'group.key'));
      writePskFile(join(dir, 'client.psk'), randomBytes(32));
      loadOrCreateIdentity(join(dir, 'config', 'server_ed25519.pem'));
      checkKnownServer(join(dir, 'config', 'known_servers'), '127.0.0.1:7000', fingerprintOf(randomBytes(32)));
    } finally {
      process.umask(previous);
    }
    for (const name of ['group.key', 'client.psk', 'config/server_ed25519.pem', 'config/known_servers']) {
      expect(statSync(join(dir, name)).mode & 0o777, name).toBe(0o600);
    }
    expect(statSync(join(dir, 'config')).mode & 0o777).toBe(0o700);
  });

  it('never write through a symlink planted at the path (O_EXCL), nor create its target', async () => {
    const target = join(dir, 'target');
    for (const name of ['group.key', 'client.psk']) symlinkSync(target, join(dir, name));
    await expect(writeNewKeyFile(join(dir, 'group.key'))).rejects.toMatchObject({ code: 'E_IO', message: expect.stringMatching(/already exists/) });
    expect(errorOf(() => writePskFile(join(dir, 'client.psk'), randomBytes(32)))).toMatchObject({ code: 'E_IO', message: expect.stringMatching(/already exists/) });
    expect(fs.existsSync(target)).toBe(false);
  });

  it('a recorded server is read back, one line per server', () => {
    const file = join(dir, 'known_servers');
    const first = fingerprintOf(randomBytes(32));
    const second = fingerprintOf(randomBytes(32));
    expect(checkKnownServer(file, '127.0.0.1:7000', first)).toBe('recorded');
    expect(checkKnownServer(file, '127.0.0.1:7001', second)).toBe('recorded');
    expect(readKnownServers(file)).toEqual(new Map([['127.0.0.1:7000', first], ['127.0.0.1:7001', second]]));
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
  });
});
