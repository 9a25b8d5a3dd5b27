// Builds packet batches for the native-backend tests: slots at chosen offsets in one slab, with
// random headers, payloads and nonces, and a node:crypto reference to compare them with.

import { randomBytes } from 'node:crypto';
import type { SuiteName } from '../../dist/crypto/backend.js';
import { referenceSeal } from '../crypto/reference.js';

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const LAYOUT_WORDS = 3;

export interface SlotSpec {
  aadBytes: number;
  payloadBytes: number;
  /** Unused bytes before the slot, so that slots sit at unaligned offsets. */
  gapBytes?: number;
}

export interface TestBatch {
  slab: Uint8Array;
  layout: Uint32Array;
  nonces: Uint8Array;
  count: number;
  /** The slab as built, before any sealing: headers and plaintexts in place. */
  original: Uint8Array;
  /** Start offset of each slot. */
  offsets: number[];
  specs: SlotSpec[];
}

export function buildBatch(specs: SlotSpec[], options: { slab?: Uint8Array } = {}): TestBatch {
  const offsets: number[] = [];
  let end = 0;
  for (const spec of specs) {
    const offset = end + (spec.gapBytes ?? 0);
    offsets.push(offset);
    end = offset + spec.aadBytes + spec.payloadBytes + TAG_BYTES;
  }
  const slab = options.slab ?? new Uint8Array(end + 7);
  if (slab.byteLength < end) throw new RangeError(`the given slab holds ${slab.byteLength} bytes, need ${end}`);
  slab.set(randomBytes(slab.byteLength));
  const layout = new Uint32Array(specs.length * LAYOUT_WORDS);
  specs.forEach((spec, slot) => {
    layout[slot * LAYOUT_WORDS] = offsets[slot];
    layout[slot * LAYOUT_WORDS + 1] = spec.aadBytes;
    layout[slot * LAYOUT_WORDS + 2] = spec.payloadBytes;
  });
  const nonces = new Uint8Array(randomBytes(specs.length * NONCE_BYTES));
  return { slab, layout, nonces, count: specs.length, original: slab.slice(), offsets, specs };
}

export interface SlotRegions {
  aad: [number, number];
  payload: [number, number];
  tag: [number, number];
}

export function regions(batch: TestBatch, slot: number): SlotRegions {
  const offset = batch.offsets[slot];
  const { aadBytes, payloadBytes } = batch.specs[slot];
  const payloadStart = offset + aadBytes;
  const tagStart = payloadStart + payloadBytes;
  return { aad: [offset, payloadStart], payload: [payloadStart, tagStart], tag: [tagStart, tagStart + TAG_BYTES] };
}

export function nonceOf(batch: TestBatch, slot: number): Uint8Array {
  return batch.nonces.subarray(slot * NONCE_BYTES, (slot + 1) * NONCE_BYTES);
}

/** node:crypto, one createCipheriv per packet: the reference the native output must equal. */
export function nodeSeal(suite: string, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): { ciphertext: Buffer; tag: Buffer } {
  const sealed = referenceSeal(suite as SuiteName, key, nonce, aad, plaintext);
  return { ciphertext: Buffer.from(sealed.ciphertext), tag: Buffer.from(sealed.tag) };
}

export function keyBytesFor(suite: string): number {
  if (suite === 'aes-128-gcm') return 16;
  if (suite === 'aes-192-gcm') return 24;
  return 32;
}

export function randomKey(suite: string): Uint8Array {
  return new Uint8Array(randomBytes(keyBytesFor(suite)));
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
