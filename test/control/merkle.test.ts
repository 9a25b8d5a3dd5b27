// The Merkle tree behind batch signing: every leaf's path leads to the root, and any change to
// the leaf, its index or its path leads elsewhere. Checked against an independent reference
// (node:crypto createHash, written out here) and with fast-check.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import {
  MERKLE_DEPTH_MAX,
  MERKLE_LEAVES_MAX,
  batchRootSignatureInput,
  buildMerkleTree,
  merkleLeaf,
  merklePath,
  merkleRootFromPath,
} from '../../dist/control/merkle.js';
import { BatchSigner } from '../../dist/control/batch-signer.js';
import { generateIdentity, verifyServerSignature } from '../../dist/keys/identity.js';

const sha256 = (...parts: Uint8Array[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};
const ZERO = Buffer.alloc(32);

/** Reference root: pad to a power of two with empty subtrees (32 zero bytes), hash pairs up. */
function referenceRoot(leaves: Buffer[]): { root: Buffer; depth: number } {
  let depth = 0;
  while (2 ** depth < leaves.length) depth++;
  // undefined marks an empty subtree; it hashes as 32 zero bytes next to a real one.
  let level: Array<Buffer | undefined> = leaves.slice();
  for (let height = 0; height < depth; height++) {
    const next: Array<Buffer | undefined> = [];
    for (let index = 0; index < 2 ** (depth - height); index += 2) {
      const [left, right] = [level[index], level[index + 1]];
      next.push(left === undefined && right === undefined ? undefined : sha256(Buffer.of(1), left ?? ZERO, right ?? ZERO));
    }
    level = next;
  }
  return { root: level[0] as Buffer, depth };
}

const leafHashes = (count: number) => Array.from({ length: count }, () => merkleLeaf(randomBytes(100)));

describe('Merkle batch tree', () => {
  it('hashes leaves as SHA-256(0x00 ‖ transcript) and nodes as SHA-256(0x01 ‖ left ‖ right)', () => {
    const transcript = randomBytes(150);
    expect(merkleLeaf(transcript).equals(sha256(Buffer.of(0), transcript))).toBe(true);
    const [a, b, c] = leafHashes(3);
    const tree = buildMerkleTree([a, b, c]);
    expect(tree.depth).toBe(2);
    const left = sha256(Buffer.of(1), a, b);
    const right = sha256(Buffer.of(1), c, ZERO);
    expect(tree.root.equals(sha256(Buffer.of(1), left, right))).toBe(true);
    // One leaf: the root is the leaf and the path is empty.
    const single = buildMerkleTree([a]);
    expect(single.depth).toBe(0);
    expect(single.root.equals(a)).toBe(true);
    expect(merklePath(single, 0)).toEqual([]);
  });

  it('matches the reference root for every batch size, and every leaf path leads to it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), (count) => {
        const leaves = leafHashes(count);
        const tree = buildMerkleTree(leaves);
        const reference = referenceRoot(leaves);
        expect(tree.depth).toBe(reference.depth);
        expect(tree.root.equals(reference.root)).toBe(true);
        for (let index = 0; index < count; index++) {
          const path = merklePath(tree, index);
          expect(path).toHaveLength(tree.depth);
          expect(merkleRootFromPath(leaves[index], index, path).equals(tree.root)).toBe(true);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a changed leaf, index or path entry never leads to the same root', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 70 }).chain((count) => fc.tuple(fc.constant(count), fc.nat({ max: count - 1 }), fc.nat(), fc.nat({ max: 255 }), fc.integer({ min: 0, max: 2 }))),
        ([count, index, where, bit, what]) => {
          const leaves = leafHashes(count);
          const tree = buildMerkleTree(leaves);
          const path = merklePath(tree, index).map((entry) => Buffer.from(entry));
          let leaf = Buffer.from(leaves[index]);
          let position = index;
          if (what === 0) leaf[where % 32] ^= 1 << (bit % 8);
          else if (what === 1) position = (index + 1 + (where % (2 ** tree.depth - 1))) % 2 ** tree.depth;
          else path[where % path.length][bit % 32] ^= 1 << (where % 8);
          expect(merkleRootFromPath(leaf, position, path).equals(tree.root)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses paths over the bound, indexes that do not fit the path, and malformed entries', () => {
    const leaf = merkleLeaf(randomBytes(10));
    const entry = randomBytes(32);
    expect(() => merkleRootFromPath(leaf, 0, Array(MERKLE_DEPTH_MAX + 1).fill(entry))).toThrow(RangeError);
    expect(() => merkleRootFromPath(leaf, 0, Array(MERKLE_DEPTH_MAX).fill(entry))).not.toThrow();
    expect(() => merkleRootFromPath(leaf, 4, [entry, entry])).toThrow(/between 0 and 3/);
    expect(() => merkleRootFromPath(leaf, -1, [entry])).toThrow(RangeError);
    expect(() => merkleRootFromPath(leaf, 0.5, [entry])).toThrow(RangeError);
    expect(() => merkleRootFromPath(leaf, 0, [randomBytes(31)])).toThrow(/32 bytes/);
    expect(() => merkleRootFromPath(randomBytes(31), 0, [])).toThrow(/32 bytes/);
    expect(() => buildMerkleTree([])).toThrow(RangeError);
    expect(() => buildMerkleTree(Array(MERKLE_LEAVES_MAX + 1).fill(leaf))).toThrow(RangeError);
    expect(() => buildMerkleTree([randomBytes(16)])).toThrow(/32 bytes/);
    expect(() => batchRootSignatureInput(leaf, MERKLE_DEPTH_MAX + 1)).toThrow(RangeError);
  });

  it('the signed input binds the depth, so one root signed at one depth is not valid at another', () => {
    const root = randomBytes(32);
    expect(batchRootSignatureInput(root, 3).equals(batchRootSignatureInput(root, 4))).toBe(false);
  });
});

describe('BatchSigner', () => {
  it('signs everything submitted in one event-loop turn under one signature, and each path verifies', async () => {
    const identity = generateIdentity();
    const signer = new BatchSigner((data) => identity.sign(data), 256);
    const transcripts = Array.from({ length: 37 }, () => randomBytes(120));
    const results = await Promise.all(
      transcripts.map(
        (transcript) =>
          new Promise<{ signature: Buffer; leafIndex: number; path: Buffer[] }>((resolve, reject) =>
            signer.submit(transcript, (result) => (result instanceof Error ? reject(result) : resolve(result))),
          ),
      ),
    );
    expect(signer.stats).toEqual({ batches: 1, leaves: 37, largestBatch: 37 });
    expect(new Set(results.map((result) => result.leafIndex)).size).toBe(37);
    results.forEach((result, index) => {
      const root = merkleRootFromPath(merkleLeaf(transcripts[index]), result.leafIndex, result.path);
      expect(verifyServerSignature(identity.publicKey, batchRootSignatureInput(root, result.path.length), result.signature)).toBe(true);
    });
  });

  it('flushes as soon as leavesMax transcripts wait, so a batch never exceeds the bound', async () => {
    const identity = generateIdentity();
    const signer = new BatchSigner((data) => identity.sign(data), 4, 0);
    const done: number[] = [];
    for (let index = 0; index < 10; index++) signer.submit(randomBytes(50), (result) => done.push(result instanceof Error ? -1 : result.path.length));
    expect(done).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    expect(signer.waiting).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toHaveLength(10);
    expect(signer.stats).toEqual({ batches: 3, leaves: 10, largestBatch: 4 });
    expect(() => new BatchSigner((data) => identity.sign(data), 0)).toThrow(RangeError);
    expect(() => new BatchSigner((data) => identity.sign(data), MERKLE_LEAVES_MAX + 1)).toThrow(RangeError);
  });

  it('signs at once when idle, and collects for the window while registrations keep coming', async () => {
    const identity = generateIdentity();
    const signer = new BatchSigner((data) => identity.sign(data), 256, 60);
    const sizes: number[] = [];
    const submit = () => signer.submit(randomBytes(50), (result) => sizes.push(result instanceof Error ? -1 : 2 ** result.path.length));
    submit();
    await new Promise((resolve) => setImmediate(resolve));
    // Idle before: signed in the turn it arrived, alone.
    expect(sizes).toEqual([1]);
    // The last signature is recent, so the next ones wait for the window and share a signature.
    submit();
    await new Promise((resolve) => setImmediate(resolve));
    expect(sizes).toEqual([1]);
    submit();
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(sizes).toEqual([1, 2, 2]);
    expect(signer.stats).toEqual({ batches: 2, leaves: 3, largestBatch: 2 });
    expect(() => new BatchSigner((data) => identity.sign(data), 4, -1)).toThrow(RangeError);
    expect(() => new BatchSigner((data) => identity.sign(data), 4, 101)).toThrow(/signBatchWindowMs/);
    signer.close();
  });

  it('a callback that throws does not keep the rest of the batch from its signature', () => {
    const identity = generateIdentity();
    const signer = new BatchSigner((data) => identity.sign(data), 3, 0);
    const answered: number[] = [];
    signer.submit(randomBytes(20), () => {
      throw new Error('listener bug');
    });
    signer.submit(randomBytes(20), (result) => answered.push(result instanceof Error ? -1 : result.leafIndex));
    expect(() => signer.submit(randomBytes(20), (result) => answered.push(result instanceof Error ? -1 : result.leafIndex))).toThrow('listener bug');
    expect(answered).toEqual([1, 2]);
  });

  it('a failing signature and a close reach every waiting callback with an error', async () => {
    const failing = new BatchSigner(() => {
      throw new Error('token unplugged');
    });
    const errors: string[] = [];
    failing.submit(randomBytes(10), (result) => errors.push(result instanceof Error ? result.message : 'signed'));
    failing.submit(randomBytes(10), (result) => errors.push(result instanceof Error ? result.message : 'signed'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toEqual(['token unplugged', 'token unplugged']);
    const identity = generateIdentity();
    const closing = new BatchSigner((data) => identity.sign(data));
    closing.submit(randomBytes(10), (result) => errors.push(result instanceof Error ? result.message : 'signed'));
    closing.close();
    closing.submit(randomBytes(10), (result) => errors.push(result instanceof Error ? result.message : 'signed'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors.slice(2)).toEqual(['the batch signer is closed', 'the batch signer is closed']);
  });
});
