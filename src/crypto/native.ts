// The native backend: a C++ addon (native/) over the OpenSSL that Node itself ships. One call
// seals or opens a whole batch in place; the key schedule is set up once per key.
//
// Every argument is validated here, with the same checks the WASM backend uses, before the
// addon is called; the addon asserts the same facts again and throws rather than touch memory
// outside the caller's arrays.

import { createRequire } from 'node:module';
import { SealcastError } from '../errors.js';
import { isSuiteName, type AeadKey, type BackendConstants, type CryptoBackend, type PacketBatch, type SuiteName } from './backend.js';
import { requireKey, requireSuite, requireUint8Array, validateBatch } from './validate.js';

/** One key schedule inside the addon. */
export interface NativeKeyHandle {
  sealBatch(slab: Uint8Array, layout: Uint32Array, nonces: Uint8Array, count: number): void;
  /** Returns how many slots authenticated. */
  openBatch(slab: Uint8Array, layout: Uint32Array, nonces: Uint8Array, count: number, status: Uint8Array): number;
  /**
   * The receive path's in-order open (native/open_in_order.h): opens the packets from `first` on
   * that continue the stream at `nextOffset` straight into target[targetStart, targetEnd) and
   * writes [packets, bytes, stop, needBytes] to `resultOut`. Absent from older builds.
   */
  openInOrder?(
    slab: Uint8Array,
    layout: Uint32Array,
    nonces: Uint8Array,
    count: number,
    status: Uint8Array,
    first: number,
    dataType: number,
    nextOffset: number,
    target: Uint8Array,
    targetStart: number,
    targetEnd: number,
    resultOut: Float64Array,
  ): number;
  destroy(): void;
  readonly destroyed: boolean;
  readonly suite: string | null;
  /**
   * How ChaCha20-Poly1305 is computed: OpenSSL's EVP AEAD, its ChaCha20/Poly1305 primitives, or
   * those with the lanes kernel (native/chacha_lanes.h) for block 0 and each payload's last blocks.
   */
  readonly engine: 'evp' | 'primitives' | 'lanes' | null;
}

/** What `build/Release/sealcast.node` exports. Internal: use `loadNativeBackend()`. */
export interface NativeBinding {
  readonly KEY_BYTES: number;
  readonly NONCE_BYTES: number;
  readonly TAG_BYTES: number;
  readonly LAYOUT_WORDS: number;
  readonly PAYLOAD_BYTES_MAX: number;
  readonly AAD_BYTES_MAX: number;
  readonly STATUS_OK: number;
  readonly STATUS_AUTH_FAILED: number;
  readonly SUITES: readonly string[];
  readonly SUITE_KEY_BYTES: Readonly<Record<string, number>>;
  readonly OPENSSL_VERSION: string;
  /** True when Node exports OpenSSL's ChaCha20 and Poly1305 primitives (the faster engine). */
  readonly CHACHA_PRIMITIVES_AVAILABLE: boolean;
  /** True when, besides the primitives, the CPU runs the lanes kernels (AVX-512F and IFMA): the fastest engine. */
  readonly CHACHA_LANES_AVAILABLE: boolean;
  /**
   * `engine` "auto" (default) picks the fastest engine that passes its self-check ('lanes', then
   * 'primitives', then 'evp'); "primitives" leaves out the lanes kernel; "evp" forces EVP.
   */
  readonly AeadKey: new (suite: string, key: Uint8Array, engine?: 'auto' | 'primitives' | 'evp') => NativeKeyHandle;
}

/** Where the addon may be, relative to this file once compiled (dist/crypto/native.js). */
const ADDON_PATHS = ['../../build/Release/sealcast.node', '../../build/Debug/sealcast.node'] as const;

/** Each native AeadKey's addon handle, for the few addon calls that take a key (see nativeKeyHandle). */
const handles = new WeakMap<AeadKey, NativeKeyHandle>();

/**
 * The addon handle behind `key`, or null when `key` is not a native backend key. Internal: for
 * addon calls that combine a key with other native work, such as the receive path's in-order
 * open (packet/scan.ts), which validate their other arguments themselves.
 */
export function nativeKeyHandle(key: AeadKey): NativeKeyHandle | null {
  return handles.get(key) ?? null;
}

let cachedBinding: NativeBinding | null = null;
let cachedBackend: CryptoBackend | null = null;
let cachedFailure: SealcastError | null = null;

/**
 * Loads the raw addon. Exposed for the tests that check the C++ assertions directly; library
 * code uses `loadNativeBackend()`, which validates every argument first.
 */
export function loadNativeBinding(): NativeBinding {
  if (cachedBinding !== null) return cachedBinding;
  if (cachedFailure !== null) throw cachedFailure;
  const require = createRequire(import.meta.url);
  const reasons: string[] = [];
  for (const path of ADDON_PATHS) {
    try {
      cachedBinding = require(path) as NativeBinding;
      return cachedBinding;
    } catch (error) {
      reasons.push(`${path}: ${firstLine(error)}`);
    }
  }
  cachedFailure = new SealcastError(
    'E_BACKEND',
    `the native addon could not be loaded (run \`npm run build:native\`); tried ${reasons.join('; ')}`,
  );
  throw cachedFailure;
}

/** How ChaCha20-Poly1305 keys of a native backend are computed (see NativeBinding.AeadKey). */
export type NativeChachaEngine = 'auto' | 'primitives' | 'evp';

/**
 * Loads the native backend once and returns the same instance afterwards. `chachaEngine` other
 * than 'auto' gives a separate backend whose ChaCha20-Poly1305 keys use at most that engine, so
 * that the tests can run every engine the machine has through the same checks.
 */
export function loadNativeBackend(chachaEngine: NativeChachaEngine = 'auto'): CryptoBackend {
  if (chachaEngine !== 'auto') {
    if (chachaEngine !== 'primitives' && chachaEngine !== 'evp') {
      throw new RangeError(`chachaEngine must be "auto", "primitives" or "evp", got ${JSON.stringify(chachaEngine)}`);
    }
    return createNativeBackend(loadNativeBinding(), chachaEngine);
  }
  if (cachedBackend !== null) return cachedBackend;
  const binding = loadNativeBinding();
  cachedBackend = createNativeBackend(binding, 'auto');
  return cachedBackend;
}

function createNativeBackend(binding: NativeBinding, chachaEngine: NativeChachaEngine): CryptoBackend {
  const constants: BackendConstants = Object.freeze({
    keyBytes: binding.KEY_BYTES,
    nonceBytes: binding.NONCE_BYTES,
    tagBytes: binding.TAG_BYTES,
    layoutWords: binding.LAYOUT_WORDS,
    payloadBytesMax: binding.PAYLOAD_BYTES_MAX,
    aadBytesMax: binding.AAD_BYTES_MAX,
    statusOk: binding.STATUS_OK,
    statusAuthFailed: binding.STATUS_AUTH_FAILED,
  });
  // Only suites both sides know: an addon built from newer sources may offer more.
  const suites = Object.freeze(binding.SUITES.filter(isSuiteName));
  const backend: CryptoBackend = {
    name: 'native',
    suites,
    openSslVersion: binding.OPENSSL_VERSION,
    constants,
    createKey(suite: SuiteName, key: Uint8Array): AeadKey {
      requireSuite(backend, suite);
      requireKey(suite, key, constants);
      return new NativeAeadKey(suite, new binding.AeadKey(suite, key, chachaEngine), constants);
    },
  };
  return Object.freeze(backend);
}

class NativeAeadKey implements AeadKey {
  readonly suite: SuiteName;
  readonly backend = 'native' as const;
  readonly #handle: NativeKeyHandle;
  readonly #constants: BackendConstants;
  // Mirrors the handle's state, so that the liveness check costs no call into the addon.
  #destroyed = false;

  constructor(suite: SuiteName, handle: NativeKeyHandle, constants: BackendConstants) {
    this.suite = suite;
    this.#handle = handle;
    this.#constants = constants;
    handles.set(this, handle);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  sealBatch(batch: PacketBatch): void {
    this.#requireLive();
    validateBatch(batch, this.#constants);
    this.#handle.sealBatch(batch.slab, batch.layout, batch.nonces, batch.count);
  }

  openBatch(batch: PacketBatch, status: Uint8Array): number {
    this.#requireLive();
    requireUint8Array(status, 'status');
    validateBatch(batch, this.#constants, status);
    return this.#handle.openBatch(batch.slab, batch.layout, batch.nonces, batch.count, status);
  }

  /** Frees the OpenSSL contexts (which cleanses their key schedules) and cleanses the addon's own key words. */
  destroy(): void {
    this.#destroyed = true;
    this.#handle.destroy();
  }

  #requireLive(): void {
    if (this.#destroyed) throw new SealcastError('E_CLOSED', 'this AEAD key was destroyed');
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n', 1)[0] ?? message;
}
