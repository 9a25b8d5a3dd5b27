// Wrapping an epoch's key bundle for one client: ChaCha20-Poly1305 (node:crypto; the control
// plane is not the hot path) under the client's wrap key, which is derived from its own long-term
// key with HKDF label clientWrapKey and bound to the session and client id. The AAD binds the
// protocol version, session id, client id, key kind and epoch, so a wrapped key cannot be moved to
// another client, session or epoch. The nonce is 12 random bytes per wrap: each wrap key belongs
// to one (session, client) pair and wraps one bundle per epoch, a handful of messages, so the
// chance that two random nonces collide under one key is negligible (about n^2 / 2^97).

import { createDecipheriv } from 'node:crypto';
import { batchCrypto, type BatchCrypto } from './batch-crypto.js';
import { nonces } from './random-pool.js';
import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';
import {
  DATA_KEY_BYTES,
  EPOCH_MAX,
  PROTOCOL_VERSION,
  WRAP_NONCE_BYTES,
  WRAP_TAG_BYTES,
  type KeyKind,
  type WrappedKey,
} from './messages.js';

const WRAP_AAD_LABEL = Buffer.from('sealcast v1 key wrap\0', 'utf8');
const WRAP_CIPHER = 'chacha20-poly1305';

/** What a client receives for an epoch: the data key, and the update key when the chain is used. */
export interface EpochKeyBundle {
  epoch: number;
  dataKey: Uint8Array;
  updateKey?: Uint8Array;
}

export interface WrapContext {
  sessionId: Uint8Array;
  clientId: string;
  keyKind: KeyKind;
}

export function keyWrapAad(context: WrapContext, epoch: number): Buffer {
  const clientId = Buffer.from(context.clientId, 'utf8');
  const kind = Buffer.from(context.keyKind, 'utf8');
  const aad = Buffer.allocUnsafe(WRAP_AAD_LABEL.byteLength + 1 + context.sessionId.byteLength + 2 + clientId.byteLength + 4 + 2 + kind.byteLength);
  let offset = WRAP_AAD_LABEL.copy(aad, 0);
  offset = aad.writeUInt8(PROTOCOL_VERSION, offset);
  aad.set(context.sessionId, offset);
  offset += context.sessionId.byteLength;
  offset = aad.writeUInt16BE(clientId.byteLength, offset);
  offset += clientId.copy(aad, offset);
  offset = aad.writeUInt32BE(epoch, offset);
  offset = aad.writeUInt16BE(kind.byteLength, offset);
  kind.copy(aad, offset);
  return aad;
}

function requireKey32(value: unknown, name: string): asserts value is Uint8Array {
  requireUint8Array(value, name);
  if (value.byteLength !== DATA_KEY_BYTES) throw new RangeError(`${name} must be ${DATA_KEY_BYTES} bytes, got ${value.byteLength}`);
}

export interface WrapTarget {
  wrapKey: Uint8Array;
  context: WrapContext;
}

/** Wraps one bundle for many clients, each under its own wrap key, with one batch call. */
export function wrapKeyBundles(targets: readonly WrapTarget[], bundle: EpochKeyBundle, crypto: BatchCrypto = batchCrypto()): WrappedKey[] {
  for (const target of targets) requireKey32(target.wrapKey, 'wrapKey');
  requireKey32(bundle.dataKey, 'dataKey');
  if (bundle.updateKey !== undefined) requireKey32(bundle.updateKey, 'updateKey');
  if (!Number.isInteger(bundle.epoch) || bundle.epoch < 0 || bundle.epoch > EPOCH_MAX) {
    throw new RangeError(`epoch must be an integer between 0 and ${EPOCH_MAX}, got ${bundle.epoch}`);
  }
  if (targets.length === 0) return [];
  const plaintext = bundle.updateKey ? Buffer.concat([bundle.dataKey, bundle.updateKey]) : Buffer.from(bundle.dataKey);
  const wrapNonces = targets.map(() => nonces.take(WRAP_NONCE_BYTES));
  try {
    const sealed = crypto.sealEach(
      targets.map((target) => target.wrapKey),
      wrapNonces,
      targets.map((target) => keyWrapAad(target.context, bundle.epoch)),
      targets.map(() => plaintext),
    );
    return targets.map((target, index) => ({ keyKind: target.context.keyKind, epoch: bundle.epoch, nonce: wrapNonces[index], sealed: sealed[index] }));
  } finally {
    plaintext.fill(0);
  }
}

export function wrapKeyBundle(wrapKey: Uint8Array, context: WrapContext, bundle: EpochKeyBundle): WrappedKey {
  return wrapKeyBundles([{ wrapKey, context }], bundle)[0];
}

/**
 * Opens a wrapped bundle. Throws SealcastError('E_AUTH') when the tag fails (wrong key, or the
 * bundle was made for another client, session or epoch). The returned keys belong to the caller,
 * who zeroes them when done.
 */
export function unwrapKeyBundle(wrapKey: Uint8Array, context: WrapContext, wrapped: WrappedKey): Required<Pick<EpochKeyBundle, 'epoch' | 'dataKey'>> & { updateKey?: Buffer; dataKey: Buffer } {
  requireKey32(wrapKey, 'wrapKey');
  if (wrapped.keyKind !== context.keyKind) {
    throw new SealcastError('E_PROTOCOL', `wrapped key is of kind ${wrapped.keyKind}, expected ${context.keyKind}`);
  }
  const ciphertextBytes = wrapped.sealed.byteLength - WRAP_TAG_BYTES;
  const decipher = createDecipheriv(WRAP_CIPHER, wrapKey, wrapped.nonce, { authTagLength: WRAP_TAG_BYTES });
  decipher.setAAD(keyWrapAad(context, wrapped.epoch), { plaintextLength: ciphertextBytes });
  decipher.setAuthTag(wrapped.sealed.subarray(ciphertextBytes));
  const plaintext = decipher.update(wrapped.sealed.subarray(0, ciphertextBytes));
  try {
    decipher.final();
  } catch {
    plaintext.fill(0);
    throw new SealcastError('E_AUTH', `the wrapped key for epoch ${wrapped.epoch} failed authentication (wrong pre-shared key, or it was not made for this client and session)`);
  }
  const dataKey = Buffer.from(plaintext.subarray(0, DATA_KEY_BYTES));
  const updateKey = plaintext.byteLength > DATA_KEY_BYTES ? Buffer.from(plaintext.subarray(DATA_KEY_BYTES)) : undefined;
  plaintext.fill(0);
  return updateKey ? { epoch: wrapped.epoch, dataKey, updateKey } : { epoch: wrapped.epoch, dataKey };
}
