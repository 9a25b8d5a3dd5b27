// The two keys a registration derives from a client's PSK: the registration MAC key and the
// wrap key. Both are HKDF-SHA256 (RFC 5869) outputs with the labels of keys/kdf.ts and exactly
// equal to deriveKey(label, psk, sessionId, [clientId]) (a test checks this); they are computed
// here with one shared extract step and one HMAC per expand, for a whole batch of registrations
// at once (batch-crypto.ts), because the server derives both keys for every registration.

import { kdfInfo } from '../keys/kdf.js';
import { requireUint8Array } from '../crypto/validate.js';
import { batchCrypto, DIGEST_BYTES, type BatchCrypto } from './batch-crypto.js';

const EMPTY_SALT = Buffer.alloc(DIGEST_BYTES);
const FIRST_BLOCK = Buffer.of(1);

export interface ClientKeys {
  macKey: Buffer;
  wrapKey: Buffer;
}

export interface ClientKeyInput {
  psk: Uint8Array;
  clientId: string;
}

/**
 * HKDF-Expand's input for the first block, info ‖ 0x01, with info = kdfInfo(label, sessionId,
 * [clientId]): written in one allocation, from a prefix shared by the whole batch.
 */
function expandInput(prefix: Buffer, clientId: string): Buffer {
  const idBytes = Buffer.byteLength(clientId, 'utf8');
  if (idBytes > 0xffff) throw new RangeError(`KDF context value is too long (${idBytes} bytes)`);
  const input = Buffer.allocUnsafe(prefix.byteLength + 2 + idBytes + FIRST_BLOCK.byteLength);
  prefix.copy(input, 0);
  input.writeUInt16BE(idBytes, prefix.byteLength);
  input.write(clientId, prefix.byteLength + 2, 'utf8');
  input[input.byteLength - 1] = FIRST_BLOCK[0];
  return input;
}

/**
 * Derives both per-registration keys of many clients with two batch HMAC calls (extract, then
 * both expands of every client). The caller zeroes the keys when done.
 */
export function deriveClientKeysBatch(inputs: readonly ClientKeyInput[], sessionId: Uint8Array, crypto: BatchCrypto = batchCrypto()): ClientKeys[] {
  for (const { psk } of inputs) {
    requireUint8Array(psk, 'psk');
    if (psk.byteLength < 16) throw new RangeError(`psk must be at least 16 bytes, got ${psk.byteLength}`);
  }
  if (inputs.length === 0) return [];
  // RFC 5869: an absent salt is HashLen zero bytes.
  const prks = crypto.hmacEach(
    inputs.map(() => EMPTY_SALT),
    inputs.map((input) => input.psk),
  );
  const macPrefix = kdfInfo('registrationMacKey', sessionId);
  const wrapPrefix = kdfInfo('clientWrapKey', sessionId);
  const keys: Buffer[] = [];
  const messages: Buffer[] = [];
  for (let index = 0; index < inputs.length; index++) {
    const prk = prks.subarray(index * DIGEST_BYTES, (index + 1) * DIGEST_BYTES);
    keys.push(prk, prk);
    messages.push(expandInput(macPrefix, inputs[index].clientId), expandInput(wrapPrefix, inputs[index].clientId));
  }
  let okm: Buffer;
  try {
    okm = crypto.hmacEach(keys, messages);
  } finally {
    prks.fill(0);
  }
  const derived = inputs.map((_, index) => ({
    macKey: Buffer.from(okm.subarray(2 * index * DIGEST_BYTES, (2 * index + 1) * DIGEST_BYTES)),
    wrapKey: Buffer.from(okm.subarray((2 * index + 1) * DIGEST_BYTES, (2 * index + 2) * DIGEST_BYTES)),
  }));
  okm.fill(0);
  return derived;
}

/** Derives both per-registration keys of one client. The caller zeroes them when done. */
export function deriveClientKeys(psk: Uint8Array, sessionId: Uint8Array, clientId: string): ClientKeys {
  return deriveClientKeysBatch([{ psk, clientId }], sessionId)[0];
}
