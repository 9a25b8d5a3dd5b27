// One session's nonce minting on the sending side: the sequencer plus the guard's claim on the
// packet key it mints for. A Sender asks this for every block of sequences, so no nonce is
// minted under a key before this context holds the process-wide claim on that key and epoch.

import type { AeadKey, BackendConstants } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import { claimFingerprint, newSealingOwner, packetKeyFingerprint, releaseFingerprint } from './sealing-guard.js';
import { NonceSequencer } from './sequencer.js';

interface Claim {
  readonly key: AeadKey;
  readonly epoch: number;
  readonly fingerprint: string;
  sealed: boolean;
}

export class SealingContext {
  readonly #constants: BackendConstants;
  readonly #owner = newSealingOwner();
  readonly #sequencer: NonceSequencer;
  /** The (key, epoch) minted for last; a change of either makes a new claim. */
  #claim: Claim | null = null;
  #closed = false;

  /** `sequencer` is for tests that lower the sequence limit. */
  constructor(constants: BackendConstants, sequencer: NonceSequencer = new NonceSequencer()) {
    this.#constants = constants;
    this.#sequencer = sequencer;
  }

  /**
   * Claims (key, epoch) for this context without minting. Throws E_KEY when another live or
   * earlier context of this process holds it, E_CLOSED after close().
   */
  claim(key: AeadKey, epoch: number): void {
    if (this.#closed) throw new SealcastError('E_CLOSED', 'this sealing context is closed; a session seals once');
    const current = this.#claim;
    if (current !== null && current.key === key && current.epoch === epoch) return;
    const fingerprint = packetKeyFingerprint(key, epoch, this.#constants);
    // Claim the new key before letting go of the old, so a failure leaves the old claim intact.
    claimFingerprint(fingerprint, this.#owner);
    if (current !== null && current.fingerprint !== fingerprint) releaseFingerprint(current.fingerprint, this.#owner, current.sealed);
    this.#claim = { key, epoch, fingerprint, sealed: current !== null && current.fingerprint === fingerprint ? current.sealed : false };
  }

  /**
   * Reserves `count` consecutive sequences to seal under (key, epoch) and returns the first.
   * Sequences keep increasing across epochs and keys within the context.
   */
  reserve(key: AeadKey, epoch: number, count: number): number {
    this.claim(key, epoch);
    const first = this.#sequencer.reserve(count);
    this.#claim!.sealed = true;
    return first;
  }

  /** The next sequence that would be minted. */
  get nextSequence(): number {
    return this.#sequencer.next;
  }

  /** Releases the claim; a key that sealed anything stays refused to other contexts. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const current = this.#claim;
    this.#claim = null;
    if (current !== null) releaseFingerprint(current.fingerprint, this.#owner, current.sealed);
  }
}
