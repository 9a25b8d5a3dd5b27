// Builds batches the way the data plane does: many slots in one slab. Slots start at odd
// offsets with random gaps between them, and the slab, layout and nonces are views at non-zero
// offsets into larger buffers, so that a backend that ignores byteOffset or assumes alignment
// fails. Gap bytes are random so that a write outside a slot shows up.

import type { PacketBatch } from '../../dist/crypto/backend.js';
import type { Random } from './random.js';

export const LAYOUT_WORDS = 3;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

export interface SlotContent {
  aad: Uint8Array;
  /** Plaintext before sealing, or ciphertext before opening. */
  payload: Uint8Array;
  nonce: Uint8Array;
  /** Written after the payload when given (for opening); random bytes otherwise. */
  tag?: Uint8Array;
}

export interface SlotPlace {
  offset: number;
  aadBytes: number;
  payloadBytes: number;
}

export interface BuiltBatch {
  batch: PacketBatch;
  places: SlotPlace[];
}

export interface BuildOptions {
  /** Largest random gap between slots (and before the first, after the last). */
  gapBytesMax?: number;
}

export function buildBatch(slots: readonly SlotContent[], random: Random, options: BuildOptions = {}): BuiltBatch {
  const gapBytesMax = options.gapBytesMax ?? 11;
  const places: SlotPlace[] = [];
  // The first slot never starts at 0 or at an aligned offset, unless there are no gaps at all.
  let cursor = gapBytesMax > 0 ? 1 + 2 * random.int(0, Math.max(0, Math.floor((gapBytesMax - 1) / 2))) : 0;
  for (const slot of slots) {
    places.push({ offset: cursor, aadBytes: slot.aad.length, payloadBytes: slot.payload.length });
    cursor += slot.aad.length + slot.payload.length + TAG_BYTES + random.int(0, gapBytesMax);
  }
  const slabBytes = cursor + random.int(0, gapBytesMax);

  const slabViewOffset = random.int(1, 7);
  const slab = new Uint8Array(new ArrayBuffer(slabBytes + slabViewOffset + 5), slabViewOffset, slabBytes);
  random.fill(slab);
  const layout = new Uint32Array(new ArrayBuffer((slots.length * LAYOUT_WORDS + 3) * 4), 8, slots.length * LAYOUT_WORDS);
  const nonces = new Uint8Array(new ArrayBuffer(slots.length * NONCE_BYTES + 6), 3, slots.length * NONCE_BYTES);

  slots.forEach((slot, index) => {
    const place = places[index];
    layout[index * LAYOUT_WORDS] = place.offset;
    layout[index * LAYOUT_WORDS + 1] = place.aadBytes;
    layout[index * LAYOUT_WORDS + 2] = place.payloadBytes;
    if (slot.nonce.length !== NONCE_BYTES) throw new RangeError(`slot ${index}: nonce must be ${NONCE_BYTES} bytes`);
    nonces.set(slot.nonce, index * NONCE_BYTES);
    slab.set(slot.aad, place.offset);
    slab.set(slot.payload, place.offset + place.aadBytes);
    if (slot.tag !== undefined) slab.set(slot.tag, place.offset + place.aadBytes + place.payloadBytes);
  });
  return { batch: { slab, layout, nonces, count: slots.length }, places };
}

export type Region = 'aad' | 'payload' | 'tag';

/** A live view of one region of one slot (not a copy). */
export function regionOf(built: BuiltBatch, slot: number, region: Region): Uint8Array {
  const { offset, aadBytes, payloadBytes } = built.places[slot];
  const payloadOffset = offset + aadBytes;
  const tagOffset = payloadOffset + payloadBytes;
  const { slab } = built.batch;
  if (region === 'aad') return slab.subarray(offset, payloadOffset);
  if (region === 'payload') return slab.subarray(payloadOffset, tagOffset);
  return slab.subarray(tagOffset, tagOffset + TAG_BYTES);
}

/** payload ‖ tag of one slot, copied. */
export function sealedBytesOf(built: BuiltBatch, slot: number): Uint8Array {
  const { offset, aadBytes, payloadBytes } = built.places[slot];
  return built.batch.slab.slice(offset + aadBytes, offset + aadBytes + payloadBytes + TAG_BYTES);
}

export function nonceOf(built: BuiltBatch, slot: number): Uint8Array {
  return built.batch.nonces.slice(slot * NONCE_BYTES, (slot + 1) * NONCE_BYTES);
}

/** A copy of every slab byte that lies outside all slots (the gaps and both ends). */
export function bytesOutsideSlots(built: BuiltBatch): Uint8Array {
  const parts: Uint8Array[] = [];
  let previousEnd = 0;
  for (const place of built.places) {
    parts.push(built.batch.slab.slice(previousEnd, place.offset));
    previousEnd = place.offset + place.aadBytes + place.payloadBytes + TAG_BYTES;
  }
  parts.push(built.batch.slab.slice(previousEnd));
  return Buffer.concat(parts);
}

/** Everything sealing and opening must leave alone. */
export interface Untouchables {
  layout: Uint32Array;
  nonces: Uint8Array;
  aads: Uint8Array[];
  outside: Uint8Array;
  count: number;
}

export function captureUntouchables(built: BuiltBatch): Untouchables {
  return {
    layout: built.batch.layout.slice(),
    nonces: built.batch.nonces.slice(),
    aads: built.places.map((_, slot) => regionOf(built, slot, 'aad').slice()),
    outside: bytesOutsideSlots(built),
    count: built.batch.count,
  };
}

/** Returns a description of the first difference, or null when nothing changed. */
export function findTouched(before: Untouchables, built: BuiltBatch): string | null {
  if (built.batch.count !== before.count) return `batch.count changed from ${before.count} to ${built.batch.count}`;
  if (!Buffer.from(before.layout.buffer, before.layout.byteOffset, before.layout.byteLength).equals(
    Buffer.from(built.batch.layout.buffer, built.batch.layout.byteOffset, built.batch.layout.byteLength),
  )) {
    return 'batch.layout changed';
  }
  if (!Buffer.from(before.nonces).equals(Buffer.from(built.batch.nonces))) return 'batch.nonces changed';
  for (let slot = 0; slot < before.aads.length; slot++) {
    if (!Buffer.from(before.aads[slot]).equals(Buffer.from(regionOf(built, slot, 'aad')))) return `the AAD of slot ${slot} changed`;
  }
  if (!Buffer.from(before.outside).equals(Buffer.from(bytesOutsideSlots(built)))) return 'slab bytes outside the slots changed';
  return null;
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte !== 0) return false;
  return true;
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'hex'));
}

/** An independent copy of a batch, with the same layout and view offsets. */
export function cloneBatch(built: BuiltBatch): BuiltBatch {
  const cloneView = <T extends Uint8Array | Uint32Array>(view: T, make: (buffer: ArrayBuffer, byteOffset: number, length: number) => T): T => {
    const buffer = (view.buffer as ArrayBuffer).slice(0);
    return make(buffer, view.byteOffset, view.length);
  };
  return {
    batch: {
      slab: cloneView(built.batch.slab, (buffer, byteOffset, length) => new Uint8Array(buffer, byteOffset, length)),
      layout: cloneView(built.batch.layout, (buffer, byteOffset, length) => new Uint32Array(buffer, byteOffset, length)),
      nonces: cloneView(built.batch.nonces, (buffer, byteOffset, length) => new Uint8Array(buffer, byteOffset, length)),
      count: built.batch.count,
    },
    places: built.places.map((place) => ({ ...place })),
  };
}
