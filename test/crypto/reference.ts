// The reference implementation every backend is compared with: node:crypto, one
// createCipheriv per packet (OpenSSL underneath, but through a different code path).

import { createCipheriv, createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import type { SuiteName } from '../../dist/crypto/backend.js';

export const TAG_BYTES = 16;

export interface Sealed {
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

export function referenceSeal(suite: SuiteName, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Sealed {
  if (suite === 'chacha20-poly1305') {
    const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { ciphertext, tag: cipher.getAuthTag() };
  }
  const cipher = createCipheriv(suite as CipherGCMTypes, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** Returns the plaintext, or null when the tag does not verify. */
export function referenceOpen(
  suite: SuiteName,
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Uint8Array | null {
  try {
    if (suite === 'chacha20-poly1305') {
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad, { plaintextLength: ciphertext.length });
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    }
    const decipher = createDecipheriv(suite as CipherGCMTypes, key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    return null;
  }
}
