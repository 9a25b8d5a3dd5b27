// Batch signing of registration transcripts. An Ed25519 signature is the largest single cost of
// a registration on the server, and it cannot be shared as such because it must cover each
// client's fresh nonce. So the server queues the transcripts waiting for a signature, builds a
// Merkle tree over them (merkle.ts), signs the root once, and gives every waiting connection the
// signature, its leaf index and its authentication path.
//
// When to sign: when the signer has been idle for at least `windowMs`, a transcript is signed at
// the end of the event-loop turn it arrived in (together with whatever else arrived in that turn),
// so a lone registration waits for nothing. While registrations keep coming (the previous
// signature is less than `windowMs` old), the signer collects for `windowMs` before it signs, so
// the batch grows with the load. As soon as `leavesMax` transcripts wait, it signs at once. So a
// transcript waits at most `windowMs`, and the queue never holds more than `leavesMax`.

import { MERKLE_LEAVES_MAX, batchRootSignatureInput, buildMerkleTree, merkleLeaves, merklePath } from './merkle.js';
import { requireUint8Array } from '../crypto/validate.js';

/** What a connection receives for its transcript. */
export interface BatchSignature {
  /** Ed25519 signature over batchRootSignatureInput(root, path.length). */
  signature: Buffer;
  leafIndex: number;
  path: Buffer[];
}

/** Called once per submitted transcript, with the signature or with the error that prevented it. */
export type BatchSignatureCallback = (result: BatchSignature | Error) => void;

export const SIGN_BATCH_LEAVES_MAX_DEFAULT = 256;
export const SIGN_BATCH_WINDOW_MS_DEFAULT = 2;
export const SIGN_BATCH_WINDOW_MS_MAX = 100;

export interface BatchSignerStats {
  /** Signatures made. */
  batches: number;
  /** Transcripts signed. */
  leaves: number;
  /** Largest batch so far. */
  largestBatch: number;
}

interface Pending {
  transcript: Uint8Array;
  callback: BatchSignatureCallback;
}

export class BatchSigner {
  readonly leavesMax: number;
  readonly windowMs: number;
  private readonly sign: (data: Uint8Array) => Buffer;
  private pending: Pending[] = [];
  private scheduled: { immediate: NodeJS.Immediate } | { timer: NodeJS.Timeout } | null = null;
  /** performance.now() of the last signature; -Infinity before the first. */
  private lastSignedAt = -Infinity;
  private closed = false;
  readonly stats: BatchSignerStats = { batches: 0, leaves: 0, largestBatch: 0 };

  constructor(sign: (data: Uint8Array) => Buffer, leavesMax: number = SIGN_BATCH_LEAVES_MAX_DEFAULT, windowMs: number = SIGN_BATCH_WINDOW_MS_DEFAULT) {
    if (typeof sign !== 'function') throw new TypeError('sign must be a function');
    if (!Number.isInteger(leavesMax) || leavesMax < 1 || leavesMax > MERKLE_LEAVES_MAX) {
      throw new RangeError(`signBatchLeavesMax must be an integer between 1 and ${MERKLE_LEAVES_MAX}, got ${leavesMax}`);
    }
    if (!Number.isInteger(windowMs) || windowMs < 0 || windowMs > SIGN_BATCH_WINDOW_MS_MAX) {
      throw new RangeError(`signBatchWindowMs must be an integer between 0 and ${SIGN_BATCH_WINDOW_MS_MAX}, got ${windowMs}`);
    }
    this.sign = sign;
    this.leavesMax = leavesMax;
    this.windowMs = windowMs;
  }

  /** Number of transcripts waiting for the next signature (never more than leavesMax). */
  get waiting(): number {
    return this.pending.length;
  }

  /**
   * Queues a transcript. The callback runs later, from the signer, never from inside this call
   * unless the queue just reached leavesMax; callers must be ready for either.
   */
  submit(transcript: Uint8Array, callback: BatchSignatureCallback): void {
    if (this.closed) {
      callback(new Error('the batch signer is closed'));
      return;
    }
    requireUint8Array(transcript, 'transcript');
    this.pending.push({ transcript, callback });
    if (this.pending.length >= this.leavesMax) {
      this.flush();
    } else if (this.scheduled === null) {
      if (this.windowMs > 0 && performance.now() - this.lastSignedAt < this.windowMs) {
        this.scheduled = { timer: setTimeout(() => this.flush(), this.windowMs) };
      } else {
        this.scheduled = { immediate: setImmediate(() => this.flush()) };
      }
    }
  }

  private cancelScheduled(): void {
    if (this.scheduled === null) return;
    if ('timer' in this.scheduled) clearTimeout(this.scheduled.timer);
    else clearImmediate(this.scheduled.immediate);
    this.scheduled = null;
  }

  /** Signs everything waiting now. */
  flush(): void {
    this.cancelScheduled();
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.lastSignedAt = performance.now();
    let signature: Buffer;
    let tree: ReturnType<typeof buildMerkleTree>;
    try {
      // Every leaf and every level of the tree is hashed with one batch call.
      tree = buildMerkleTree(merkleLeaves(batch.map((entry) => entry.transcript)));
      signature = this.sign(batchRootSignatureInput(tree.root, tree.depth));
    } catch (error) {
      for (const entry of batch) entry.callback(error as Error);
      return;
    }
    this.stats.batches++;
    this.stats.leaves += batch.length;
    if (batch.length > this.stats.largestBatch) this.stats.largestBatch = batch.length;
    // Every waiting transcript gets its answer even if one callback throws; the first error is
    // rethrown afterwards so that it is not lost.
    let failure: unknown = null;
    for (let index = 0; index < batch.length; index++) {
      try {
        batch[index].callback({ signature, leafIndex: index, path: merklePath(tree, index) });
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== null) throw failure;
  }

  /** Drops what is waiting (each callback gets an error) and refuses later submissions. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelScheduled();
    const batch = this.pending;
    this.pending = [];
    for (const entry of batch) entry.callback(new Error('the batch signer is closed'));
  }
}
