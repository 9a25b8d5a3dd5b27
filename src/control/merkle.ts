// The Merkle tree behind batch signing: the server hashes each registration transcript waiting
// for a signature as one leaf, signs the root once, and hands each client its leaf index and
// authentication path. A client recomputes the root from its own transcript and path, so the one
// signature still covers every transcript of the batch individually.
//
// Hashing is SHA-256 with one-byte domain prefixes (0x00 for a leaf, 0x01 for an inner node,
// as in RFC 6962), so a leaf can never be passed off as an inner node or the other way round.
// A tree of n leaves has depth ceil(log2 n) and every path has exactly `depth` entries; a
// missing right-hand subtree counts as 32 zero bytes, which no SHA-256 output is known to equal.
// The signed message binds the depth, so a path of another length never verifies.

import { hash } from 'node:crypto';
import { requireUint8Array } from '../crypto/validate.js';
import { batchCrypto, type BatchCrypto } from './batch-crypto.js';

export const MERKLE_HASH_BYTES = 32;
/** Deepest tree a client accepts: 2^12 = 4 096 registrations under one signature. */
export const MERKLE_DEPTH_MAX = 12;
export const MERKLE_LEAVES_MAX = 2 ** MERKLE_DEPTH_MAX;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;
const EMPTY_SUBTREE = Buffer.alloc(MERKLE_HASH_BYTES);
const ROOT_SIGNATURE_LABEL = Buffer.from('sealcast v1 registration batch root\0', 'utf8');

/** SHA-256(0x00 ‖ transcript). */
export function merkleLeaf(transcript: Uint8Array): Buffer {
  requireUint8Array(transcript, 'transcript');
  const input = Buffer.allocUnsafe(1 + transcript.byteLength);
  input[0] = LEAF_PREFIX;
  input.set(transcript, 1);
  return hash('sha256', input, 'buffer');
}

/** The leaf hashes of many transcripts, with one batch call. */
export function merkleLeaves(transcripts: readonly Uint8Array[], crypto: BatchCrypto = batchCrypto()): Buffer[] {
  const inputs = transcripts.map((transcript) => {
    requireUint8Array(transcript, 'transcript');
    const input = Buffer.allocUnsafe(1 + transcript.byteLength);
    input[0] = LEAF_PREFIX;
    input.set(transcript, 1);
    return input;
  });
  return splitDigests(crypto.sha256Each(inputs), inputs.length);
}

function splitDigests(digests: Buffer, count: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let index = 0; index < count; index++) parts.push(digests.subarray(index * MERKLE_HASH_BYTES, (index + 1) * MERKLE_HASH_BYTES));
  return parts;
}

// One scratch buffer for inner nodes: JavaScript never interleaves two calls.
const nodeInput = Buffer.alloc(1 + 2 * MERKLE_HASH_BYTES);
nodeInput[0] = NODE_PREFIX;

/** SHA-256(0x01 ‖ left ‖ right). */
function merkleNode(left: Uint8Array, right: Uint8Array): Buffer {
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + MERKLE_HASH_BYTES);
  return hash('sha256', nodeInput, 'buffer');
}

/** The bytes the server signs for a batch: a role label, the depth and the root. */
export function batchRootSignatureInput(root: Uint8Array, depth: number): Buffer {
  requireUint8Array(root, 'root');
  if (root.byteLength !== MERKLE_HASH_BYTES) throw new RangeError(`root must be ${MERKLE_HASH_BYTES} bytes, got ${root.byteLength}`);
  requireDepth(depth);
  const input = Buffer.allocUnsafe(ROOT_SIGNATURE_LABEL.byteLength + 1 + MERKLE_HASH_BYTES);
  ROOT_SIGNATURE_LABEL.copy(input, 0);
  input[ROOT_SIGNATURE_LABEL.byteLength] = depth;
  input.set(root, ROOT_SIGNATURE_LABEL.byteLength + 1);
  return input;
}

function requireDepth(depth: number): void {
  if (!Number.isInteger(depth) || depth < 0 || depth > MERKLE_DEPTH_MAX) {
    throw new RangeError(`Merkle depth must be an integer between 0 and ${MERKLE_DEPTH_MAX}, got ${depth}`);
  }
}

export interface MerkleTree {
  root: Buffer;
  depth: number;
  /** Hashes per level, leaves first; a level may be shorter than 2^(depth - level). */
  levels: Buffer[][];
}

/** Builds the tree over 1 to MERKLE_LEAVES_MAX leaf hashes (see merkleLeaf), one batch call per level. */
export function buildMerkleTree(leaves: readonly Buffer[], crypto: BatchCrypto = batchCrypto()): MerkleTree {
  if (!Array.isArray(leaves) || leaves.length < 1 || leaves.length > MERKLE_LEAVES_MAX) {
    throw new RangeError(`a Merkle batch holds 1 to ${MERKLE_LEAVES_MAX} leaves, got ${Array.isArray(leaves) ? leaves.length : typeof leaves}`);
  }
  for (const leaf of leaves) {
    requireUint8Array(leaf, 'leaf');
    if (leaf.byteLength !== MERKLE_HASH_BYTES) throw new RangeError(`a Merkle leaf must be ${MERKLE_HASH_BYTES} bytes, got ${leaf.byteLength}`);
  }
  const levels: Buffer[][] = [leaves.slice()];
  let level = levels[0];
  while (level.length > 1) {
    const inputs: Buffer[] = [];
    for (let index = 0; index < level.length; index += 2) {
      const input = Buffer.allocUnsafe(1 + 2 * MERKLE_HASH_BYTES);
      input[0] = NODE_PREFIX;
      input.set(level[index], 1);
      input.set(index + 1 < level.length ? level[index + 1] : EMPTY_SUBTREE, 1 + MERKLE_HASH_BYTES);
      inputs.push(input);
    }
    const next = splitDigests(crypto.sha256Each(inputs), inputs.length);
    levels.push(next);
    level = next;
  }
  return { root: level[0], depth: levels.length - 1, levels };
}

/** The authentication path of leaf `index`: its sibling at each level, leaves first. */
export function merklePath(tree: MerkleTree, index: number): Buffer[] {
  const leafCount = tree.levels[0].length;
  if (!Number.isInteger(index) || index < 0 || index >= leafCount) {
    throw new RangeError(`leaf index must be an integer between 0 and ${leafCount - 1}, got ${index}`);
  }
  const path: Buffer[] = [];
  let position = index;
  for (let level = 0; level < tree.depth; level++) {
    const sibling = position ^ 1;
    const nodes = tree.levels[level];
    path.push(sibling < nodes.length ? nodes[sibling] : EMPTY_SUBTREE);
    position >>>= 1;
  }
  return path;
}

/**
 * Recomputes the root from a leaf, its index and its path. Throws RangeError for a path longer
 * than MERKLE_DEPTH_MAX, an element that is not 32 bytes, or an index that does not fit the
 * path (index >= 2^path.length), so that one leaf has exactly one position.
 */
export function merkleRootFromPath(leaf: Uint8Array, index: number, path: readonly Uint8Array[]): Buffer {
  requireUint8Array(leaf, 'leaf');
  if (leaf.byteLength !== MERKLE_HASH_BYTES) throw new RangeError(`leaf must be ${MERKLE_HASH_BYTES} bytes, got ${leaf.byteLength}`);
  if (!Array.isArray(path) || path.length > MERKLE_DEPTH_MAX) {
    throw new RangeError(`a Merkle path has at most ${MERKLE_DEPTH_MAX} entries, got ${Array.isArray(path) ? path.length : typeof path}`);
  }
  if (!Number.isInteger(index) || index < 0 || index >= 2 ** path.length) {
    throw new RangeError(`leaf index must be an integer between 0 and ${2 ** path.length - 1} for a path of ${path.length}, got ${index}`);
  }
  let node: Buffer = Buffer.from(leaf);
  let position = index;
  for (const sibling of path) {
    requireUint8Array(sibling, 'path entry');
    if (sibling.byteLength !== MERKLE_HASH_BYTES) throw new RangeError(`a Merkle path entry must be ${MERKLE_HASH_BYTES} bytes, got ${sibling.byteLength}`);
    node = position & 1 ? merkleNode(sibling, node) : merkleNode(node, sibling);
    position >>>= 1;
  }
  return node;
}
