// HKDF-SHA256 with one distinct label per use, so that no key is ever used for two purposes
// (DESIGN.md, "Key derivation"). Every derived key is bound to the session id; keys tied to an
// epoch or a client are bound to those too.

import { hkdfSync } from 'node:crypto';
import { requireUint8Array } from '../crypto/validate.js';

export const KDF_LABELS = {
  /** Data key of an epoch -> the AEAD key that seals that epoch's packets. */
  packetKey: 'sealcast v1 packet key',
  /** Data key of an epoch -> the key that seals the next update key U[n+1] on multicast. */
  updateWrapKey: 'sealcast v1 update wrap key',
  /** A client's long-term key (e.g. PSK) -> the key that wraps data keys sent to that client. */
  clientWrapKey: 'sealcast v1 client wrap key',
  /** A client's long-term key -> the MAC key for registration challenge-responses. */
  registrationMacKey: 'sealcast v1 registration mac key',
  /** A client's long-term key -> the MAC key for its deletion proof on withdrawal. */
  deletionProofKey: 'sealcast v1 deletion proof key',
  /** K[n] with salt U[n] -> K[n+1] along the key-update chain. */
  epochChain: 'sealcast epoch',
} as const;

export type KdfLabel = keyof typeof KDF_LABELS;

export const DERIVED_KEY_BYTES = 32;
export const SESSION_ID_BYTES = 8;

/**
 * Builds the HKDF info: label ‖ 0x00 ‖ session id ‖ each context value as 4-byte big-endian
 * (numbers) or length-prefixed bytes (strings and byte arrays). The length prefixes keep
 * different contexts from ever encoding to the same info.
 */
export function kdfInfo(label: KdfLabel, sessionId: Uint8Array, context: ReadonlyArray<number | string | Uint8Array> = []): Buffer {
  requireUint8Array(sessionId, 'sessionId');
  if (sessionId.byteLength !== SESSION_ID_BYTES) {
    throw new RangeError(`sessionId must be ${SESSION_ID_BYTES} bytes, got ${sessionId.byteLength}`);
  }
  const parts: Buffer[] = [Buffer.from(KDF_LABELS[label], 'utf8'), Buffer.of(0), Buffer.from(sessionId)];
  for (const value of context) {
    if (typeof value === 'number') {
      if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
        throw new RangeError(`KDF context number must be a 32-bit unsigned integer, got ${value}`);
      }
      const word = Buffer.alloc(4);
      word.writeUInt32BE(value);
      parts.push(word);
    } else {
      const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
      const length = Buffer.alloc(2);
      if (bytes.byteLength > 0xffff) throw new RangeError(`KDF context value is too long (${bytes.byteLength} bytes)`);
      length.writeUInt16BE(bytes.byteLength);
      parts.push(length, bytes);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Derives a 32-byte key. The caller owns the result and must zero it when done; `ikm` and
 * `salt` are not modified.
 */
export function deriveKey(
  label: KdfLabel,
  ikm: Uint8Array,
  sessionId: Uint8Array,
  context: ReadonlyArray<number | string | Uint8Array> = [],
  salt: Uint8Array = new Uint8Array(0),
): Buffer {
  requireUint8Array(ikm, 'ikm');
  requireUint8Array(salt, 'salt');
  if (ikm.byteLength < 16) throw new RangeError(`ikm must be at least 16 bytes, got ${ikm.byteLength}`);
  const info = kdfInfo(label, sessionId, context);
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, DERIVED_KEY_BYTES));
}
