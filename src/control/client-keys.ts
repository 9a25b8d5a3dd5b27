// The two keys a registration derives from a client's PSK: the registration MAC key and the
// wrap key. Both are HKDF-SHA256 (RFC 5869) outputs with the labels of keys/kdf.ts and exactly
// equal to deriveKey(label, psk, sessionId, [clientId]) (a test checks this); they are computed
// here with one shared extract step and one HMAC per expand, because node's hkdfSync costs
// several times more per call and the server derives both keys for every registration.

import { createHmac } from 'node:crypto';
import { kdfInfo, type KdfLabel } from '../keys/kdf.js';
import { requireUint8Array } from '../crypto/validate.js';

const HASH_BYTES = 32;
const EMPTY_SALT = Buffer.alloc(HASH_BYTES);
const FIRST_BLOCK = Buffer.of(1);

export interface ClientKeys {
  macKey: Buffer;
  wrapKey: Buffer;
}

function expandOneBlock(prk: Buffer, label: KdfLabel, sessionId: Uint8Array, clientId: string): Buffer {
  return createHmac('sha256', prk).update(kdfInfo(label, sessionId, [clientId])).update(FIRST_BLOCK).digest();
}

/** Derives both per-registration keys. The caller zeroes them when done. */
export function deriveClientKeys(psk: Uint8Array, sessionId: Uint8Array, clientId: string): ClientKeys {
  requireUint8Array(psk, 'psk');
  if (psk.byteLength < 16) throw new RangeError(`psk must be at least 16 bytes, got ${psk.byteLength}`);
  // RFC 5869: an absent salt is HashLen zero bytes.
  const prk = createHmac('sha256', EMPTY_SALT).update(psk).digest();
  try {
    return {
      macKey: expandOneBlock(prk, 'registrationMacKey', sessionId, clientId),
      wrapKey: expandOneBlock(prk, 'clientWrapKey', sessionId, clientId),
    };
  } finally {
    prk.fill(0);
  }
}
