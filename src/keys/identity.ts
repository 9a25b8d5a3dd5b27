// The server's long-term Ed25519 signing key. Clients pin its fingerprint (SHA-256 of the raw
// 32-byte public key, "SHA256:" + base64url) and check the server's signature over every
// registration transcript. The key file is PKCS#8 PEM, created on first use with mode 0600 in a
// directory of mode 0700, and refused when others can read it.
//
// node:crypto keeps the private key inside an OpenSSL object that JavaScript cannot zero; only
// the PEM text read from disk is zeroed after parsing.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';
import { readSecretFileSync } from './secret-file.js';
import { writeAllSync } from './write-all.js';

export const FINGERPRINT_PREFIX = 'SHA256:';
const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9_-]{43}$/;
const KEY_FILE_BYTES_MAX = 16 * 1024;

export interface ServerIdentity {
  /** Raw 32-byte Ed25519 public key, as sent in the challenge. */
  readonly publicKey: Buffer;
  readonly fingerprint: string;
  /** The file it came from, or null for an in-memory identity. */
  readonly path: string | null;
  /** True when this call created the key file. */
  readonly created: boolean;
  sign(data: Uint8Array): Buffer;
}

export function fingerprintOf(publicKey: Uint8Array): string {
  requireUint8Array(publicKey, 'publicKey');
  return FINGERPRINT_PREFIX + createHash('sha256').update(publicKey).digest('base64url');
}

export function isFingerprint(value: unknown): value is string {
  return typeof value === 'string' && FINGERPRINT_PATTERN.test(value);
}

/** Checks a fingerprint given by a user; E_ARG with the expected form when it is malformed. */
export function parseFingerprint(text: string): string {
  const trimmed = String(text).trim();
  if (!isFingerprint(trimmed)) {
    const shown = JSON.stringify(String(text).trim().slice(0, 80));
    throw new SealcastError('E_ARG', `server fingerprint must look like SHA256:<43 base64url characters> (as printed by the sender), got ${shown}`);
  }
  return trimmed;
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new SealcastError('E_KEY', 'the server key is not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

function identityFrom(privateKey: KeyObject, path: string | null, created: boolean): ServerIdentity {
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  return {
    publicKey,
    fingerprint: fingerprintOf(publicKey),
    path,
    created,
    sign: (data) => sign(null, data, privateKey),
  };
}

/** A fresh identity that lives only in memory (tests, benchmarks, throwaway servers). */
export function generateIdentity(): ServerIdentity {
  const { privateKey } = generateKeyPairSync('ed25519');
  return identityFrom(privateKey, null, false);
}

/** Verifies an Ed25519 signature by a raw 32-byte public key; false on any malformed input. */
export function verifyServerSignature(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}

export function defaultConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'sealcast');
}

export function defaultServerKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultConfigDir(env), 'server_ed25519.pem');
}

function loadIdentity(path: string): ServerIdentity {
  // Opened first and checked on the descriptor: a FIFO or device would block the synchronous
  // read (and with it the whole process), and a file swapped after a check must not be read.
  const pem = readSecretFileSync(path, { label: 'the server key', bytesMax: KEY_FILE_BYTES_MAX, hint: 'to be an Ed25519 key' });
  try {
    const privateKey = createPrivateKey({ key: pem, format: 'pem' });
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw new SealcastError('E_KEY', `the server key ${path} is a ${privateKey.asymmetricKeyType} key; sealcast needs Ed25519`);
    }
    return identityFrom(privateKey, path, false);
  } catch (error) {
    if (error instanceof SealcastError) throw error;
    throw new SealcastError('E_KEY', `the server key ${path} is not a PEM private key: ${(error as Error).message}`, { cause: error });
  } finally {
    pem.fill(0);
  }
}

/**
 * Loads the server's signing key from `path`, creating it (mode 0600) when the file does not
 * exist. `created` tells the caller to announce the new fingerprint.
 */
export function loadOrCreateIdentity(path: string = defaultServerKeyPath()): ServerIdentity {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('server key path must be a non-empty string');
  let fd: number;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadIdentity(path);
    throw new SealcastError('E_IO', `cannot create the server key ${path}: ${(error as Error).message}`, { cause: error });
  }
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = Buffer.from(privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 'utf8');
  try {
    writeAllSync(fd, pem);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    // A half-written key would be refused (or worse, parsed) on the next start; take it away.
    unlinkSync(path);
    throw new SealcastError('E_IO', `cannot write the server key ${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    pem.fill(0);
  }
  closeSync(fd);
  return identityFrom(privateKey, path, true);
}
