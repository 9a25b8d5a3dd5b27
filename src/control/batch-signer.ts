// Batch signing of registration transcripts. An Ed25519 signature is the largest single cost of
// a registration on the server, and it cannot be shared as such because it must cover each
// client's fresh nonce. So the server queues the transcripts waiting for a signature, and at the
// end of the current event-loop turn (or as soon as `leavesMax` are waiting) builds a Merkle tree
// over them (merkle.ts), signs the root once, and gives every waiting connection the signature,
// its leaf index and its authentication path.
//
// No time window is added: a lone registration is signed in the same turn it arrived, so the
// latency at low load is unchanged. Under load, many hellos are read in one turn of the event loop
// and share a signature, which is where the saving comes from. The queue never holds more than
// `leavesMax` transcripts.

import { MERKLE_LEAVES_MAX, batchRootSignatureInput, buildMerkleTree, merkleLeaf, merklePath } from './merkle.js';

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

export interface BatchSignerStats {
  /** Signatures made. */
  batches: number;
  /** Transcripts signed. */
  leaves: number;
  /** Largest batch so far. */
  largestBatch: number;
}

interface Pending {
  leaf: Buffer;
  callback: BatchSignatureCallback;
}

export class BatchSigner {
  readonly leavesMax: number;
  private readonly sign: (data: Uint8Array) => Buffer;
  private pending: Pending[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  private closed = false;
  readonly stats: BatchSignerStats = { batches: 0, leaves: 0, largestBatch: 0 };

  constructor(sign: (data: Uint8Array) => Buffer, leavesMax: number = SIGN_BATCH_LEAVES_MAX_DEFAULT) {
    if (typeof sign !== 'function') throw new TypeError('sign must be a function');
    if (!Number.isInteger(leavesMax) || leavesMax < 1 || leavesMax > MERKLE_LEAVES_MAX) {
      throw new RangeError(`signBatchLeavesMax must be an integer between 1 and ${MERKLE_LEAVES_MAX}, got ${leavesMax}`);
    }
    this.sign = sign;
    this.leavesMax = leavesMax;
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
    this.pending.push({ leaf: merkleLeaf(transcript), callback });
    if (this.pending.length >= this.leavesMax) this.flush();
    else if (this.scheduled === null) this.scheduled = setImmediate(() => this.flush());
  }

  /** Signs everything waiting now. */
  flush(): void {
    if (this.scheduled !== null) {
      clearImmediate(this.scheduled);
      this.scheduled = null;
    }
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let signature: Buffer;
    let tree: ReturnType<typeof buildMerkleTree>;
    try {
      tree = buildMerkleTree(batch.map((entry) => entry.leaf));
      signature = this.sign(batchRootSignatureInput(tree.root, tree.depth));
    } catch (error) {
      for (const entry of batch) entry.callback(error as Error);
      return;
    }
    this.stats.batches++;
    this.stats.leaves += batch.length;
    if (batch.length > this.stats.largestBatch) this.stats.largestBatch = batch.length;
    for (let index = 0; index < batch.length; index++) {
      batch[index].callback({ signature, leafIndex: index, path: merklePath(tree, index) });
    }
  }

  /** Drops what is waiting (each callback gets an error) and refuses later submissions. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
    const batch = this.pending;
    this.pending = [];
    for (const entry of batch) entry.callback(new Error('the batch signer is closed'));
  }
}
