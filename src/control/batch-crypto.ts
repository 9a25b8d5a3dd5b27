// Batch primitives for the control server's registrations: HMAC-SHA256, SHA-256 and
// ChaCha20-Poly1305 over many items per call. The native implementation (native/control_crypto.h)
// makes one addon call per batch; the node:crypto one, used where the addon is missing, makes
// one object per item. Both give the same bytes (a parity test checks), and both are checked here
// first, with TypeError/RangeError naming the bad value.

import { createCipheriv, createHmac, hash } from 'node:crypto';
import { loadNativeBinding } from '../crypto/native.js';
import { requireUint8Array } from '../crypto/validate.js';

export const DIGEST_BYTES = 32;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const LAYOUT_WORDS = 3;

export interface BatchCrypto {
  readonly name: 'native' | 'node';
  /** HMAC-SHA256(keys[i], messages[i]) at 32 * i of the result. */
  hmacEach(keys: readonly Uint8Array[], messages: readonly Uint8Array[]): Buffer;
  /** SHA-256(messages[i]) at 32 * i of the result. */
  sha256Each(messages: readonly Uint8Array[]): Buffer;
  /**
   * ChaCha20-Poly1305 of plaintexts[i] under keys[i] and nonces[i] with aads[i]: ciphertext and
   * tag of each, as views of one result buffer.
   */
  sealEach(keys: readonly Uint8Array[], nonces: readonly Uint8Array[], aads: readonly Uint8Array[], plaintexts: readonly Uint8Array[]): Buffer[];
}

interface NativeControlCrypto {
  readonly CONTROL_BATCH_MAX: number;
  readonly KEY_BYTES: number;
  readonly NONCE_BYTES: number;
  readonly TAG_BYTES: number;
  readonly LAYOUT_WORDS: number;
  hmacSha256Batch(keySlab: Uint8Array, keyLayout: Uint32Array, messageSlab: Uint8Array, messageLayout: Uint32Array, count: number, target: Uint8Array): void;
  sha256Batch(messageSlab: Uint8Array, messageLayout: Uint32Array, count: number, target: Uint8Array): void;
  sealEachUnderOwnKey(slab: Uint8Array, layout: Uint32Array, nonces: Uint8Array, count: number, keys: Uint8Array): void;
}

function requireItems(items: readonly Uint8Array[], name: string, count?: number): void {
  if (!Array.isArray(items)) throw new TypeError(`${name} must be an array of Uint8Array`);
  if (count !== undefined && items.length !== count) throw new RangeError(`${name} must hold ${count} items, got ${items.length}`);
  for (const item of items) requireUint8Array(item, `${name} item`);
}

function requireSized(items: readonly Uint8Array[], bytes: number, name: string): void {
  for (const item of items) {
    if (item.byteLength !== bytes) throw new RangeError(`${name} items must be ${bytes} bytes, got ${item.byteLength}`);
  }
}

function checkSeal(keys: readonly Uint8Array[], nonces: readonly Uint8Array[], aads: readonly Uint8Array[], plaintexts: readonly Uint8Array[]): void {
  requireItems(keys, 'keys');
  requireItems(nonces, 'nonces', keys.length);
  requireItems(aads, 'aads', keys.length);
  requireItems(plaintexts, 'plaintexts', keys.length);
  requireSized(keys, KEY_BYTES, 'keys');
  requireSized(nonces, NONCE_BYTES, 'nonces');
}

/** One slab holding the items back to back, and their (offset, length) word pairs. */
function pack(items: readonly Uint8Array[]): { slab: Buffer; layout: Uint32Array } {
  let total = 0;
  for (const item of items) total += item.byteLength;
  const slab = Buffer.allocUnsafe(total);
  const layout = new Uint32Array(2 * items.length);
  let offset = 0;
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    slab.set(item, offset);
    layout[2 * index] = offset;
    layout[2 * index + 1] = item.byteLength;
    offset += item.byteLength;
  }
  return { slab, layout };
}

export const nodeBatchCrypto: BatchCrypto = {
  name: 'node',
  hmacEach(keys, messages) {
    requireItems(keys, 'keys');
    requireItems(messages, 'messages', keys.length);
    const target = Buffer.allocUnsafe(keys.length * DIGEST_BYTES);
    for (let index = 0; index < keys.length; index++) {
      createHmac('sha256', keys[index]).update(messages[index]).digest().copy(target, index * DIGEST_BYTES);
    }
    return target;
  },
  sha256Each(messages) {
    requireItems(messages, 'messages');
    const target = Buffer.allocUnsafe(messages.length * DIGEST_BYTES);
    for (let index = 0; index < messages.length; index++) {
      target.set(hash('sha256', messages[index], 'buffer'), index * DIGEST_BYTES);
    }
    return target;
  },
  sealEach(keys, nonces, aads, plaintexts) {
    checkSeal(keys, nonces, aads, plaintexts);
    return keys.map((key, index) => {
      const cipher = createCipheriv('chacha20-poly1305', key, nonces[index], { authTagLength: TAG_BYTES });
      cipher.setAAD(aads[index], { plaintextLength: plaintexts[index].byteLength });
      return Buffer.concat([cipher.update(plaintexts[index]), cipher.final(), cipher.getAuthTag()]);
    });
  },
};

function nativeBatchCrypto(binding: NativeControlCrypto): BatchCrypto {
  const requireCount = (count: number) => {
    if (count > binding.CONTROL_BATCH_MAX) throw new RangeError(`a batch holds at most ${binding.CONTROL_BATCH_MAX} items, got ${count}`);
  };
  return {
    name: 'native',
    hmacEach(keys, messages) {
      requireItems(keys, 'keys');
      requireItems(messages, 'messages', keys.length);
      requireCount(keys.length);
      const packedKeys = pack(keys);
      const packedMessages = pack(messages);
      const target = Buffer.allocUnsafe(keys.length * DIGEST_BYTES);
      try {
        binding.hmacSha256Batch(packedKeys.slab, packedKeys.layout, packedMessages.slab, packedMessages.layout, keys.length, target);
      } finally {
        packedKeys.slab.fill(0);
      }
      return target;
    },
    sha256Each(messages) {
      requireItems(messages, 'messages');
      requireCount(messages.length);
      const packed = pack(messages);
      const target = Buffer.allocUnsafe(messages.length * DIGEST_BYTES);
      binding.sha256Batch(packed.slab, packed.layout, messages.length, target);
      return target;
    },
    sealEach(keys, nonces, aads, plaintexts) {
      checkSeal(keys, nonces, aads, plaintexts);
      requireCount(keys.length);
      const count = keys.length;
      let total = 0;
      for (let index = 0; index < count; index++) total += aads[index].byteLength + plaintexts[index].byteLength + TAG_BYTES;
      // Slots [ AAD | plaintext | tag ] sealed in place, as the packet batches are.
      const slab = Buffer.allocUnsafe(total);
      const layout = new Uint32Array(count * LAYOUT_WORDS);
      const nonceSlab = Buffer.allocUnsafe(count * NONCE_BYTES);
      const keySlab = Buffer.allocUnsafe(count * KEY_BYTES);
      const sealedAt: number[] = [];
      let offset = 0;
      for (let index = 0; index < count; index++) {
        const aad = aads[index];
        const plaintext = plaintexts[index];
        slab.set(aad, offset);
        slab.set(plaintext, offset + aad.byteLength);
        layout[LAYOUT_WORDS * index] = offset;
        layout[LAYOUT_WORDS * index + 1] = aad.byteLength;
        layout[LAYOUT_WORDS * index + 2] = plaintext.byteLength;
        nonceSlab.set(nonces[index], index * NONCE_BYTES);
        keySlab.set(keys[index], index * KEY_BYTES);
        sealedAt.push(offset + aad.byteLength);
        offset += aad.byteLength + plaintext.byteLength + TAG_BYTES;
      }
      try {
        binding.sealEachUnderOwnKey(slab, layout, nonceSlab, count, keySlab);
      } catch (error) {
        slab.fill(0);
        throw error;
      } finally {
        keySlab.fill(0);
      }
      return sealedAt.map((at, index) => slab.subarray(at, at + plaintexts[index].byteLength + TAG_BYTES));
    },
  };
}

let cached: BatchCrypto | null = null;

/** The native batch crypto when the addon has it, else node:crypto's. */
export function batchCrypto(): BatchCrypto {
  if (cached !== null) return cached;
  try {
    const binding = loadNativeBinding() as unknown as Partial<NativeControlCrypto>;
    // The slot layout and sizes written here must be the addon's own.
    const sameSizes =
      binding.KEY_BYTES === KEY_BYTES && binding.NONCE_BYTES === NONCE_BYTES && binding.TAG_BYTES === TAG_BYTES && binding.LAYOUT_WORDS === LAYOUT_WORDS;
    if (sameSizes && typeof binding.hmacSha256Batch === 'function' && typeof binding.sha256Batch === 'function' && typeof binding.sealEachUnderOwnKey === 'function') {
      cached = nativeBatchCrypto(binding as NativeControlCrypto);
      return cached;
    }
  } catch {
    // No addon: node:crypto below.
  }
  cached = nodeBatchCrypto;
  return cached;
}

/** For tests: the native implementation, or null where the addon lacks it. */
export function nativeBatchCryptoOrNull(): BatchCrypto | null {
  const chosen = batchCrypto();
  return chosen.name === 'native' ? chosen : null;
}
