// The process-wide register of packet keys that seal, so that no two sealing contexts ever use
// one (key, epoch). Every context starts its sequences at 0, so two contexts sealing under the
// same key and epoch would repeat (key, nonce) pairs: the one thing an AEAD must never do.
//
// A packet key is recognised by what it does, not by where it came from: the guard seals a fixed
// probe under a nonce that no packet ever uses and keeps a keyed hash of the result (a key check
// value). The same key bytes therefore match however the caller obtained them: derived twice
// from one data key and session id, created twice from the same bytes, on either backend, or the
// same AeadKey object handed to two Senders with different session ids. The register holds only
// HMACs under a key drawn at random for this process; neither the key nor its check value is
// ever stored.

import { createHmac, randomBytes } from 'node:crypto';
import type { AeadKey, BackendConstants } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';

/**
 * How many keys that finished sealing are remembered. A released key is refused for the rest of
 * the process while it is remembered, because a new context would start its sequences at 0
 * again under it. Random session ids are the real protection across runs; this bound only keeps
 * the register's memory fixed.
 */
export const RETIRED_FINGERPRINTS_MAX = 4096;

/** The probe's AAD; its payload is zeros. */
const PROBE_AAD = Buffer.from('sealcast v1 key check', 'utf8');
const PROBE_PAYLOAD_BYTES = 32;
/**
 * Nonce bytes of the probe: all ones. A packet nonce is epoch ‖ sequence and sequences stay below
 * 2^53 (NonceSequencer), so no packet is ever sealed under this nonce. Sealing the same probe under
 * it again gives the same bytes, which reveals nothing new about the key.
 */
const PROBE_NONCE_BYTE = 0xff;

/** Drawn once per process; only fingerprints made with it are stored. */
const fingerprintKey = randomBytes(32);
/** Fingerprint -> owner id of the context sealing with it now. */
const liveOwners = new Map<string, number>();
/** Fingerprint -> owner id of the context that sealed with it; oldest first. */
const retiredOwners = new Map<string, number>();
let ownerCount = 0;

/** A fresh owner id for one sealing context. */
export function newSealingOwner(): number {
  ownerCount += 1;
  return ownerCount;
}

/**
 * The fingerprint of (key, epoch): an HMAC under this process's random key over the suite, the
 * epoch and the probe sealed with `key`. Equal fingerprints mean the same AEAD key and epoch, so
 * the same nonce space.
 */
export function packetKeyFingerprint(key: AeadKey, epoch: number, constants: BackendConstants): string {
  const aadBytes = PROBE_AAD.byteLength;
  const slab = new Uint8Array(aadBytes + PROBE_PAYLOAD_BYTES + constants.tagBytes);
  slab.set(PROBE_AAD, 0);
  const layout = new Uint32Array(constants.layoutWords);
  layout[0] = 0;
  layout[1] = aadBytes;
  layout[2] = PROBE_PAYLOAD_BYTES;
  const nonces = new Uint8Array(constants.nonceBytes).fill(PROBE_NONCE_BYTE);
  try {
    key.sealBatch({ slab, layout, nonces, count: 1 });
    const epochBytes = Buffer.alloc(4);
    epochBytes.writeUInt32BE(epoch);
    return createHmac('sha256', fingerprintKey).update(key.suite).update(Buffer.of(0)).update(epochBytes).update(slab.subarray(aadBytes)).digest('hex');
  } finally {
    // The sealed probe is keystream of this key: not needed once hashed.
    slab.fill(0);
  }
}

/**
 * Records that `owner` seals under `fingerprint`. Throws E_KEY when another context seals under
 * it now or sealed under it earlier in this process (while remembered).
 */
export function claimFingerprint(fingerprint: string, owner: number): void {
  const liveOwner = liveOwners.get(fingerprint);
  if (liveOwner !== undefined && liveOwner !== owner) {
    throw new SealcastError(
      'E_KEY',
      'this packet key (same key and epoch) is already sealing in another Sender of this process; two Senders with one packet key would repeat nonces. ' +
        'Give each Sender its own session id (or data key): leave sessionId out and the Sender draws a random one',
    );
  }
  const retiredOwner = retiredOwners.get(fingerprint);
  if (retiredOwner !== undefined && retiredOwner !== owner) {
    throw new SealcastError(
      'E_KEY',
      'this packet key (same key and epoch) already sealed a session in this process; sealing again would repeat nonces. Start a new session with a fresh session id',
    );
  }
  retiredOwners.delete(fingerprint);
  liveOwners.set(fingerprint, owner);
}

/**
 * Ends `owner`'s claim on `fingerprint`. When it sealed anything, the fingerprint stays refused
 * for other contexts (up to RETIRED_FINGERPRINTS_MAX remembered, oldest forgotten first).
 */
export function releaseFingerprint(fingerprint: string, owner: number, sealed: boolean): void {
  if (liveOwners.get(fingerprint) !== owner) return;
  liveOwners.delete(fingerprint);
  if (!sealed) return;
  retiredOwners.set(fingerprint, owner);
  if (retiredOwners.size > RETIRED_FINGERPRINTS_MAX) {
    const oldest = retiredOwners.keys().next().value as string;
    retiredOwners.delete(oldest);
  }
}
