// Packet keys: the AEAD keys that seal DATA and END packets, one per (session, epoch, suite),
// derived from that epoch's data key. The sender reads its key from a PacketKeySource; the
// receiver asks a PacketKeyLookup. The CLI's --key-file mode fills both from one group key
// (GroupKeyRing, group-key-ring.ts, on the receiving side); the control plane fills them from
// keys it delivers.

import type { AeadKey, CryptoBackend, WireSuiteName } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { PoolKeyHandle } from '../pool/pool.js';
import { deriveKey } from './kdf.js';

/**
 * Derives the packet key of one epoch and sets it up on `backend`. The suite is bound into the
 * derivation so one data key never yields the same AEAD key bytes for two algorithms. The
 * derived bytes are zeroed before returning; the caller destroys the AeadKey.
 */
export function derivePacketKey(
  backend: CryptoBackend,
  suite: WireSuiteName,
  dataKey: Uint8Array,
  sessionId: Uint8Array,
  epoch: number,
): AeadKey {
  if (!backend.suites.includes(suite)) {
    throw new SealcastError('E_BACKEND', `suite ${suite} is not available on the ${backend.name} backend (it offers ${backend.suites.join(', ')}); build the native addon or choose chacha20-poly1305`);
  }
  const keyBytes = derivePacketKeyBytes(suite, dataKey, sessionId, epoch);
  try {
    return backend.createKey(suite, keyBytes);
  } finally {
    keyBytes.fill(0);
  }
}

/**
 * The raw packet-key bytes, for callers that install the key elsewhere too (a worker pool).
 * The caller zeroes them.
 */
export function derivePacketKeyBytes(suite: WireSuiteName, dataKey: Uint8Array, sessionId: Uint8Array, epoch: number): Buffer {
  return deriveKey('packetKey', dataKey, sessionId, [epoch, suite]);
}

/** What the sender seals with: read once per slab, so a rotation takes effect at a slab boundary. */
export interface PacketKeySource {
  readonly epoch: number;
  readonly key: AeadKey;
  /**
   * The same key installed in an AeadPool, when the sender seals on worker threads. It must hold
   * exactly the bytes behind `key`.
   */
  readonly poolKey?: PoolKeyHandle;
}

/**
 * A PacketKeySource whose epoch can move forward. Epochs never go back, because sequences
 * continue across epochs and a key must never see a nonce twice. The caller destroys keys it
 * replaced once no batch can still use them.
 */
export class EpochKeySource implements PacketKeySource {
  #epoch: number;
  #key: AeadKey;
  #poolKey: PoolKeyHandle | undefined;

  constructor(epoch: number, key: AeadKey, poolKey?: PoolKeyHandle) {
    requireEpoch(epoch);
    this.#epoch = epoch;
    this.#key = key;
    this.#poolKey = poolKey;
  }

  get poolKey(): PoolKeyHandle | undefined {
    return this.#poolKey;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get key(): AeadKey {
    return this.#key;
  }

  /** Switches to a new epoch's key; returns the previous key for the caller to destroy. */
  advance(epoch: number, key: AeadKey, poolKey?: PoolKeyHandle): AeadKey {
    requireEpoch(epoch);
    if (epoch <= this.#epoch) throw new RangeError(`epoch must increase (current ${this.#epoch}, got ${epoch})`);
    const previous = this.#key;
    this.#epoch = epoch;
    this.#key = key;
    this.#poolKey = poolKey;
    return previous;
  }
}

/**
 * What the receiver opens with. Returns undefined when it has no key for that session/epoch
 * (the packet is then counted and dropped). It may be replaced on a live Receiver.
 */
export type PacketKeyLookup = (sessionId: Uint8Array, epoch: number, suite: WireSuiteName) => AeadKey | undefined;

function requireEpoch(epoch: number): void {
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff_ffff) {
    throw new RangeError(`epoch must be a 32-bit unsigned integer, got ${epoch}`);
  }
}

export { GroupKeyRing, type GroupKeyRingOptions, type GroupKeyRingStats } from './group-key-ring.js';
