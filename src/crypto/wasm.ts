// The WASM backend: libsodium compiled to WebAssembly (libsodium-wrappers). It is the fallback
// when the native addon cannot be built or SEALCAST_BACKEND=wasm is set, and offers
// ChaCha20-Poly1305 only. Every call crosses into the WASM heap, so it is much slower than the
// native batch path; it exists so sealcast works everywhere, not to be fast.

import type sodiumModule from 'libsodium-wrappers';
import { SealcastError } from '../errors.js';
import type { AeadKey, BackendConstants, CryptoBackend, PacketBatch, SuiteName } from './backend.js';
import { requireKey, requireSuite, requireUint8Array, validateBatch } from './validate.js';

type Sodium = typeof sodiumModule;

const STATUS_OK = 0;
const STATUS_AUTH_FAILED = 1;
const LAYOUT_WORDS = 3;
/** One slot carries at most one UDP datagram, so 64 KiB bounds both AAD and payload. */
const SLOT_REGION_BYTES_MAX = 65_536;

let loaded: Promise<CryptoBackend> | null = null;

export function loadWasmBackend(): Promise<CryptoBackend> {
  // Imported on first use: compiling libsodium's WebAssembly costs every process tens of
  // milliseconds, which one that runs on the native backend need not pay.
  loaded ??= import('libsodium-wrappers').then(async ({ default: sodium }) => {
    await sodium.ready;
    return createWasmBackend(sodium);
  });
  return loaded;
}

function createWasmBackend(sodium: Sodium): CryptoBackend {
  const constants: BackendConstants = Object.freeze({
    keyBytes: sodium.crypto_aead_chacha20poly1305_ietf_KEYBYTES,
    nonceBytes: sodium.crypto_aead_chacha20poly1305_ietf_NPUBBYTES,
    tagBytes: sodium.crypto_aead_chacha20poly1305_ietf_ABYTES,
    layoutWords: LAYOUT_WORDS,
    payloadBytesMax: SLOT_REGION_BYTES_MAX,
    aadBytesMax: SLOT_REGION_BYTES_MAX,
    statusOk: STATUS_OK,
    statusAuthFailed: STATUS_AUTH_FAILED,
  });
  const backend: CryptoBackend = {
    name: 'wasm',
    suites: Object.freeze(['chacha20-poly1305'] as SuiteName[]),
    openSslVersion: null,
    constants,
    createKey(suite: SuiteName, key: Uint8Array): AeadKey {
      requireSuite(backend, suite);
      requireKey(suite, key, constants);
      return new WasmChaChaKey(sodium, constants, key);
    },
  };
  return Object.freeze(backend);
}

class WasmChaChaKey implements AeadKey {
  readonly suite: SuiteName = 'chacha20-poly1305';
  readonly backend = 'wasm' as const;
  readonly #sodium: Sodium;
  readonly #constants: BackendConstants;
  readonly #key: Uint8Array;
  #destroyed = false;

  constructor(sodium: Sodium, constants: BackendConstants, key: Uint8Array) {
    this.#sodium = sodium;
    this.#constants = constants;
    // A private copy, so the caller may zero its own buffer; ours is zeroed by destroy().
    this.#key = new Uint8Array(key);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  sealBatch(batch: PacketBatch): void {
    this.#requireLive();
    validateBatch(batch, this.#constants);
    const { slab, layout, nonces, count } = batch;
    const { nonceBytes, tagBytes } = this.#constants;
    for (let slot = 0; slot < count; slot++) {
      const offset = layout[slot * LAYOUT_WORDS];
      const aadBytes = layout[slot * LAYOUT_WORDS + 1];
      const payloadBytes = layout[slot * LAYOUT_WORDS + 2];
      const payloadOffset = offset + aadBytes;
      const sealed = this.#sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        slab.subarray(payloadOffset, payloadOffset + payloadBytes),
        slab.subarray(offset, payloadOffset),
        null,
        nonces.subarray(slot * nonceBytes, (slot + 1) * nonceBytes),
        this.#key,
      );
      slab.set(sealed.ciphertext, payloadOffset);
      slab.set(sealed.mac.subarray(0, tagBytes), payloadOffset + payloadBytes);
    }
  }

  openBatch(batch: PacketBatch, status: Uint8Array): number {
    this.#requireLive();
    requireUint8Array(status, 'status');
    validateBatch(batch, this.#constants, status);
    const { slab, layout, nonces, count } = batch;
    const { nonceBytes, tagBytes } = this.#constants;
    let authenticated = 0;
    for (let slot = 0; slot < count; slot++) {
      const offset = layout[slot * LAYOUT_WORDS];
      const aadBytes = layout[slot * LAYOUT_WORDS + 1];
      const payloadBytes = layout[slot * LAYOUT_WORDS + 2];
      const payloadOffset = offset + aadBytes;
      const tagOffset = payloadOffset + payloadBytes;
      let plaintext: Uint8Array | null = null;
      try {
        plaintext = this.#sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(
          null,
          slab.subarray(payloadOffset, tagOffset),
          slab.subarray(tagOffset, tagOffset + tagBytes),
          slab.subarray(offset, payloadOffset),
          nonces.subarray(slot * nonceBytes, (slot + 1) * nonceBytes),
          this.#key,
        );
      } catch {
        plaintext = null;
      }
      if (plaintext === null) {
        slab.fill(0, payloadOffset, tagOffset);
        status[slot] = STATUS_AUTH_FAILED;
      } else {
        slab.set(plaintext, payloadOffset);
        plaintext.fill(0);
        status[slot] = STATUS_OK;
        authenticated++;
      }
    }
    return authenticated;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#key.fill(0);
    this.#destroyed = true;
  }

  #requireLive(): void {
    if (this.#destroyed) throw new SealcastError('E_CLOSED', 'this AEAD key was destroyed');
  }
}
