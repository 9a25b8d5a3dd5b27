// The contract every AEAD backend (native C++ over OpenSSL, WASM over libsodium) fulfils.
//
// Work crosses the boundary in batches: a caller-owned slab holds many packet slots, a layout
// array says where each slot is, and one call seals or opens them all in place. A slot is
//   [ AAD (the packet header) | payload | tag ]
// and its nonce is the 12-byte value minted by keys/ (4-byte epoch prefix, 8-byte sequence).

/** Suites that may appear on the wire. ChaCha20-Poly1305 is the default (DESIGN.md). */
export const WIRE_SUITES = ['chacha20-poly1305', 'aes-256-gcm'] as const;
export type WireSuiteName = (typeof WIRE_SUITES)[number];

/**
 * Every suite name a backend may implement. The AES-GCM variants with shorter keys exist so that
 * the full Wycheproof AES-GCM set can run against the same code path; they are never offered
 * on the wire.
 */
export const ALL_SUITES = ['chacha20-poly1305', 'aes-256-gcm', 'aes-128-gcm', 'aes-192-gcm'] as const;
export type SuiteName = (typeof ALL_SUITES)[number];

export const DEFAULT_SUITE: WireSuiteName = 'chacha20-poly1305';

export type BackendName = 'native' | 'wasm';

/** One batch of packet slots in caller-owned memory. */
export interface PacketBatch {
  /** The memory holding every slot. Sealing and opening rewrite payloads and tags in place. */
  slab: Uint8Array;
  /**
   * `count * layoutWords` words; for slot i: [i*3] byte offset of the slot in `slab`,
   * [i*3+1] AAD bytes, [i*3+2] payload bytes. The tag follows the payload. Slots must be in
   * increasing offset order and must not overlap.
   */
  layout: Uint32Array;
  /** `count * nonceBytes` bytes: the nonce of slot i at [i*nonceBytes, (i+1)*nonceBytes). */
  nonces: Uint8Array;
  /** How many slots of the layout to process. */
  count: number;
}

/** Sizes and codes every backend reports from its own implementation. */
export interface BackendConstants {
  readonly keyBytes: number;
  readonly nonceBytes: number;
  readonly tagBytes: number;
  readonly layoutWords: number;
  /** Largest payload one slot may carry. */
  readonly payloadBytesMax: number;
  /** Largest AAD one slot may carry. */
  readonly aadBytesMax: number;
  /** Per-slot result of openBatch: authenticated, plaintext in place. */
  readonly statusOk: number;
  /** Per-slot result of openBatch: tag did not verify; the payload region was zeroed. */
  readonly statusAuthFailed: number;
}

/** A key schedule for one suite and one key, set up once and used for many batches. */
export interface AeadKey {
  readonly suite: SuiteName;
  readonly backend: BackendName;
  /** Encrypts every slot's payload in place and writes its tag after it. */
  sealBatch(batch: PacketBatch): void;
  /**
   * Verifies and decrypts every slot in place. Writes one status per slot into `status`
   * (statusOk or statusAuthFailed) and returns how many authenticated. A slot that fails
   * has its payload zeroed, so unauthenticated plaintext is never exposed.
   */
  openBatch(batch: PacketBatch, status: Uint8Array): number;
  /** Wipes the key schedule. Later calls throw E_CLOSED. Idempotent. */
  destroy(): void;
  readonly destroyed: boolean;
}

export interface CryptoBackend {
  readonly name: BackendName;
  /** Suites this backend implements (a subset of ALL_SUITES). */
  readonly suites: readonly SuiteName[];
  /** The OpenSSL version the native backend links against; null for WASM. */
  readonly openSslVersion: string | null;
  readonly constants: BackendConstants;
  /** Creates a key schedule. The caller keeps ownership of `key` and should zero it after use. */
  createKey(suite: SuiteName, key: Uint8Array): AeadKey;
}

export function isSuiteName(value: unknown): value is SuiteName {
  return typeof value === 'string' && (ALL_SUITES as readonly string[]).includes(value);
}

export function isWireSuiteName(value: unknown): value is WireSuiteName {
  return typeof value === 'string' && (WIRE_SUITES as readonly string[]).includes(value);
}
