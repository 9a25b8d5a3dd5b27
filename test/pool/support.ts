// Shared pieces of the pool tests: which backends to run on, a seeded PRNG, and a builder for
// batches whose views live in the kinds of memory the pool must handle without copying.

import { expect } from 'vitest';
import type { BackendName, CryptoBackend, PacketBatch } from '../../dist/crypto/backend.js';
import { loadBackend } from '../../dist/crypto/load.js';

// The slot layout and sizes the crypto tests' batch builder uses.
export { LAYOUT_WORDS, NONCE_BYTES, TAG_BYTES, type SlotPlace } from '../crypto/slab.js';
import { LAYOUT_WORDS, NONCE_BYTES, TAG_BYTES, type BuiltBatch as SlabBatch } from '../crypto/slab.js';

export interface BackendEntry {
  name: BackendName;
  backend: CryptoBackend | null;
  /** Why the backend is skipped; null when it loaded. */
  skipReason: string | null;
}

/**
 * Every backend the pool tests run on. Native is skipped, with its reason, only when its addon
 * does not load and SEALCAST_REQUIRE_NATIVE is not 1; with SEALCAST_REQUIRE_NATIVE=1 a missing
 * addon fails the test file instead.
 */
export async function poolBackends(env: NodeJS.ProcessEnv = process.env): Promise<BackendEntry[]> {
  const wasm = await loadBackend('wasm');
  let native: CryptoBackend | null = null;
  let reason: string | null = null;
  try {
    native = await loadBackend('native');
  } catch (error) {
    reason = error instanceof Error ? error.message : String(error);
  }
  if (native === null && env.SEALCAST_REQUIRE_NATIVE === '1') {
    throw new Error(`SEALCAST_REQUIRE_NATIVE=1 but the native backend did not load: ${reason}`);
  }
  return [
    { name: 'native', backend: native, skipReason: native === null ? `native backend unavailable: ${reason}` : null },
    { name: 'wasm', backend: wasm, skipReason: null },
  ];
}

// The same seeded generator the crypto tests use, so SEALCAST_TEST_SEED replays both.
export { Random } from '../crypto/random.js';
import { Random } from '../crypto/random.js';

/**
 * Where a batch's views live:
 * - `shared`: slab, layout and nonces in one SharedArrayBuffer;
 * - `mixed`: slab in a SharedArrayBuffer, layout and nonces in ordinary buffers;
 * - `one-buffer`: all three in one ordinary ArrayBuffer (moved once);
 * - `separate`: each in its own ordinary ArrayBuffer, at a non-zero view offset.
 */
export type MemoryKind = 'shared' | 'mixed' | 'one-buffer' | 'separate';
export const MEMORY_KINDS: readonly MemoryKind[] = ['shared', 'mixed', 'one-buffer', 'separate'];

export interface BuiltBatch extends SlabBatch {
  /** The slab before sealing, in its own memory. */
  plainSlab: Uint8Array;
}

export interface BatchShape {
  payloadBytes: readonly number[];
  aadBytes: readonly number[];
}

export function randomShape(random: Random, countMax: number, payloadBytesMax: number, aadBytesMax: number): BatchShape {
  const count = random.int(1, countMax);
  return {
    payloadBytes: Array.from({ length: count }, () => random.int(0, payloadBytesMax)),
    aadBytes: Array.from({ length: count }, () => random.int(0, aadBytesMax)),
  };
}

/** Builds a batch of random content with random gaps between slots, in the given memory. */
export function buildBatch(random: Random, shape: BatchShape, memory: MemoryKind): BuiltBatch {
  const count = shape.payloadBytes.length;
  const places: SlabBatch['places'] = [];
  let cursor = random.int(0, 7);
  for (let slot = 0; slot < count; slot++) {
    const place = { offset: cursor, aadBytes: shape.aadBytes[slot], payloadBytes: shape.payloadBytes[slot] };
    places.push(place);
    cursor += place.aadBytes + place.payloadBytes + TAG_BYTES + random.int(0, 7);
  }
  const slabBytes = cursor;
  const layoutBytes = count * LAYOUT_WORDS * 4;
  const nonceBytes = count * NONCE_BYTES;

  let slab: Uint8Array;
  let layout: Uint32Array;
  let nonces: Uint8Array;
  if (memory === 'shared' || memory === 'one-buffer') {
    // [pad][slab][pad to a multiple of 4][layout][nonces]
    const slabOffset = random.int(0, 3);
    const layoutOffset = align4(slabOffset + slabBytes + random.int(0, 4));
    const noncesOffset = layoutOffset + layoutBytes + random.int(0, 3);
    const total = noncesOffset + nonceBytes + random.int(0, 3);
    const buffer = memory === 'shared' ? new SharedArrayBuffer(total) : new ArrayBuffer(total);
    slab = new Uint8Array(buffer, slabOffset, slabBytes);
    layout = new Uint32Array(buffer, layoutOffset, count * LAYOUT_WORDS);
    nonces = new Uint8Array(buffer, noncesOffset, nonceBytes);
  } else {
    const slabOffset = random.int(1, 5);
    const slabBuffer = memory === 'mixed' ? new SharedArrayBuffer(slabOffset + slabBytes + 3) : new ArrayBuffer(slabOffset + slabBytes + 3);
    slab = new Uint8Array(slabBuffer, slabOffset, slabBytes);
    layout = new Uint32Array(new ArrayBuffer(layoutBytes + 8), 4, count * LAYOUT_WORDS);
    nonces = new Uint8Array(new ArrayBuffer(nonceBytes + 5), 2, nonceBytes);
  }
  random.fill(slab);
  random.fill(nonces);
  places.forEach((place, slot) => {
    layout[slot * LAYOUT_WORDS] = place.offset;
    layout[slot * LAYOUT_WORDS + 1] = place.aadBytes;
    layout[slot * LAYOUT_WORDS + 2] = place.payloadBytes;
  });
  return { batch: { slab, layout, nonces, count }, places, plainSlab: slab.slice() };
}

/** A deep copy of a batch in fresh ordinary memory, for the single-thread reference path. */
export function cloneBatch(batch: PacketBatch): PacketBatch {
  return { slab: batch.slab.slice(), layout: batch.layout.slice(), nonces: batch.nonces.slice(), count: batch.count };
}

/** A status array in shared or ordinary memory, prefilled so that unwritten bytes show. */
export function makeStatus(count: number, shared: boolean): Uint8Array {
  const status = new Uint8Array(shared ? new SharedArrayBuffer(count + 2) : new ArrayBuffer(count + 2), 1, count);
  status.fill(0xee);
  return status;
}

export function align4(value: number): number {
  return (value + 3) & ~3;
}

/** Polls `condition` every few milliseconds; fails after `limitMs` instead of hanging. */
export async function waitFor(condition: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The hooked fixture worker and the first-nonce-byte markers it reacts to. */
export const HOOKED_WORKER_URL = new URL('./fixtures/hooked-worker.mjs', import.meta.url);
export const MARKERS = {
  none: 0x00,
  hold: 0xa1,
  corruptLayout: 0xe1,
  throwSealcast: 0xe2,
  throwPlain: 0xe3,
  exit: 0xc1,
  uncaught: 0xc2,
} as const;

/** A random batch in ordinary memory whose first nonce byte is `marker`. */
export function markedBatch(random: Random, marker: number, memory: MemoryKind = 'separate'): BuiltBatch {
  const built = buildBatch(random, randomShape(random, 4, 300, 24), memory);
  built.batch.nonces[0] = marker;
  return built;
}

/**
 * A batch the hooked worker holds until the test opens its gate: the slab lives in a
 * SharedArrayBuffer whose last four bytes, outside every slot, are the gate.
 */
export function heldBatch(random: Random): BuiltBatch & { gate: Int32Array } {
  const built = buildBatch(random, randomShape(random, 4, 300, 24), 'separate');
  const slabBytes = built.batch.slab.byteLength;
  const shared = new SharedArrayBuffer(align4(slabBytes) + 4);
  const slab = new Uint8Array(shared, 0, slabBytes);
  slab.set(built.batch.slab);
  built.batch.slab = slab;
  built.batch.nonces[0] = MARKERS.hold;
  return { ...built, gate: new Int32Array(shared, shared.byteLength - 4, 1) };
}

export function openGate(gate: Int32Array): void {
  Atomics.store(gate, 0, 1);
}

/** Settles a promise into its error (or fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${String(value)}`);
    },
    (error: Error) => error,
  );
}

/** What the single-thread path throws for the same call. */
export function thrownBy(call: () => unknown): Error {
  try {
    call();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the single-thread call to throw');
}

/** The pool's error is the single-thread path's: same class, message and code. */
export function expectSameError(actual: Error, expected: Error): void {
  expect(actual.constructor).toBe(expected.constructor);
  expect(actual.message).toBe(expected.message);
  expect((actual as { code?: string }).code).toBe((expected as { code?: string }).code);
}
