// Key files of the control plane: the server's signing key, PSK files and the known-servers file.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadOrCreateIdentity, parseFingerprint, fingerprintOf, defaultServerKeyPath, verifyServerSignature } from '../../dist/keys/identity.js';
import { generatePsk, readPskFile, writePskFile } from '../../dist/keys/psk.js';
import { checkKnownServer, defaultKnownServersPath, serverAddressKey } from '../../dist/keys/known-servers.js';
import { SealcastError } from '../../dist/errors.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return error instanceof SealcastError ? error.code : `not a SealcastError: ${String(error)}`;
  }
  return undefined;
}

describe('server identity', () => {
  it('is created once with mode 0600 in a 0700 directory, then loaded with the same fingerprint', () => {
    const path = join(dir, 'conf', 'server.pem');
    const created = loadOrCreateIdentity(path);
    expect(created.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'conf')).mode & 0o777).toBe(0o700);
    expect(created.fingerprint).toMatch(/^SHA256:[A-Za-z0-9_-]{43}$/);
    expect(created.fingerprint).toBe(fingerprintOf(created.publicKey));
    const loaded = loadOrCreateIdentity(path);
    expect(loaded.created).toBe(false);
    expect(loaded.fingerprint).toBe(created.fingerprint);
    const data = randomBytes(50);
    expect(verifyServerSignature(created.publicKey, data, loaded.sign(data))).toBe(true);
    expect(verifyServerSignature(created.publicKey, randomBytes(50), loaded.sign(data))).toBe(false);
  });

  it('refuses a key file others can read, or one that is not an Ed25519 key', () => {
    const path = join(dir, 'server.pem');
    loadOrCreateIdentity(path);
    chmodSync(path, 0o644);
    expect(codeOf(() => loadOrCreateIdentity(path))).toBe('E_KEY');
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a key', { mode: 0o600 });
    expect(codeOf(() => loadOrCreateIdentity(junk))).toBe('E_KEY');
  });

  it('checks fingerprints typed by users, and defaults under the config directory', () => {
    expect(codeOf(() => parseFingerprint('SHA256:short'))).toBe('E_ARG');
    const fingerprint = fingerprintOf(randomBytes(32));
    expect(parseFingerprint(` ${fingerprint}\n`)).toBe(fingerprint);
    expect(defaultServerKeyPath({ XDG_CONFIG_HOME: '/x/conf' })).toBe('/x/conf/sealcast/server_ed25519.pem');
    expect(defaultKnownServersPath({ HOME: '/home/u' })).toBe('/home/u/.config/sealcast/known_servers');
  });
});

describe('PSK files', () => {
  it('are written with mode 0600, never overwritten, and read back exactly', () => {
    const path = join(dir, 'alice.psk');
    const psk = generatePsk();
    writePskFile(path, psk);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readPskFile(path).equals(psk)).toBe(true);
    expect(codeOf(() => writePskFile(path, generatePsk()))).toBe('E_IO');
    expect(readFileSync(path).equals(psk)).toBe(true);
  });

  it('refuse a readable-by-others, short, long or missing file with E_KEY', () => {
    const open = join(dir, 'open.psk');
    writeFileSync(open, randomBytes(32), { mode: 0o644 });
    chmodSync(open, 0o644);
    expect(codeOf(() => readPskFile(open))).toBe('E_KEY');
    for (const size of [31, 33, 0]) {
      const path = join(dir, `size-${size}.psk`);
      writeFileSync(path, randomBytes(size), { mode: 0o600 });
      expect(codeOf(() => readPskFile(path))).toBe('E_KEY');
    }
    expect(codeOf(() => readPskFile(join(dir, 'missing.psk')))).toBe('E_KEY');
  });
});

describe('known servers', () => {
  it('records the first contact, matches it later and refuses a change', () => {
    const file = join(dir, 'cfg', 'known_servers');
    const address = serverAddressKey('127.0.0.1', 7000);
    const first = fingerprintOf(randomBytes(32));
    expect(checkKnownServer(file, address, first)).toBe('recorded');
    expect(checkKnownServer(file, address, first)).toBe('matched');
    expect(checkKnownServer(file, serverAddressKey('::1', 7000), first)).toBe('recorded');
    expect(readFileSync(file, 'utf8')).toBe(`127.0.0.1:7000 ${first}\n[::1]:7000 ${first}\n`);
    expect(() => checkKnownServer(file, address, fingerprintOf(randomBytes(32)))).toThrow(new RegExp(`records ${first}.*${file}`));
  });
});
