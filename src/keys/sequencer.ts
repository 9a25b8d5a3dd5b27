// The only place sealcast mints nonces (DESIGN.md): nonce = epoch (4 bytes BE) ‖ sequence
// (8 bytes BE). Sequences increase across the whole session, epochs included, and are never
// handed out twice, so no (key, nonce) pair can repeat. The sequencer refuses to wrap. A Sender
// mints through a SealingContext (sealing-context.ts), which first takes the process-wide claim
// on the packet key, so no second sequencer ever counts from 0 under the same key and epoch.

import { SealcastError } from '../errors.js';

export const NONCE_BYTES = 12;
/** Sequences stay safe integers so they never lose precision in JS numbers. */
export const SEQUENCE_LIMIT = Number.MAX_SAFE_INTEGER;

export class NonceSequencer {
  #next: number;
  readonly #limit: number;

  /** `limit` is exclusive; tests lower it to exercise exhaustion. */
  constructor(first = 0, limit = SEQUENCE_LIMIT) {
    if (!Number.isSafeInteger(first) || first < 0) throw new RangeError(`first sequence must be a non-negative safe integer, got ${first}`);
    if (!Number.isSafeInteger(limit) || limit <= first) throw new RangeError(`limit must be a safe integer above ${first}, got ${limit}`);
    this.#next = first;
    this.#limit = limit;
  }

  /** The next sequence that would be handed out. */
  get next(): number {
    return this.#next;
  }

  /** Reserves `count` consecutive sequences and returns the first. Throws instead of wrapping. */
  reserve(count: number): number {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
    if (this.#next > this.#limit - count) {
      throw new SealcastError('E_KEY', `sequence space exhausted for this session (next ${this.#next}, asked for ${count}); start a new session`);
    }
    const first = this.#next;
    this.#next += count;
    return first;
  }
}

/** Writes the nonce for (epoch, sequence) at `offset` of `target`. */
export function writeNonce(target: Uint8Array, offset: number, epoch: number, sequence: number): void {
  // Byte writes rather than a DataView: this runs once per packet on both sides.
  writeU32BE(target, offset, epoch);
  writeU32BE(target, offset + 4, Math.floor(sequence / 0x1_0000_0000));
  writeU32BE(target, offset + 8, sequence >>> 0);
}

function writeU32BE(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = (value >>> 16) & 0xff;
  target[offset + 2] = (value >>> 8) & 0xff;
  target[offset + 3] = value & 0xff;
}
