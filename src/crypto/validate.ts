// Argument validation at the TypeScript boundary, shared by every backend. The native core
// checks the same facts again (defence in depth); WASM relies on these checks alone.

import { SealcastError } from '../errors.js';
import { isSuiteName, type BackendConstants, type CryptoBackend, type PacketBatch, type SuiteName } from './backend.js';

export function requireUint8Array(value: unknown, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a Uint8Array (or Buffer), got ${describe(value)}`);
  }
}

export function requireUint32Array(value: unknown, name: string): asserts value is Uint32Array {
  if (!(value instanceof Uint32Array)) {
    throw new TypeError(`${name} must be a Uint32Array, got ${describe(value)}`);
  }
}

export function requireCount(value: unknown, name: string, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  }
  if (value < 0 || value > max) {
    throw new RangeError(`${name} must be between 0 and ${max}, got ${value}`);
  }
}

export function requireSuite(backend: CryptoBackend, suite: unknown): asserts suite is SuiteName {
  if (!isSuiteName(suite)) {
    throw new TypeError(`suite must be one of ${backend.suites.join(', ')}, got ${describe(suite)}`);
  }
  if (!backend.suites.includes(suite)) {
    throw new SealcastError(
      'E_BACKEND',
      `suite ${suite} is not available on the ${backend.name} backend (it offers ${backend.suites.join(', ')})`,
    );
  }
}

/** Key sizes per suite; the AES variants are distinguished by key length. */
export function keyBytesForSuite(suite: SuiteName, constants: BackendConstants): number {
  switch (suite) {
    case 'aes-128-gcm':
      return 16;
    case 'aes-192-gcm':
      return 24;
    default:
      return constants.keyBytes;
  }
}

export function requireKey(suite: SuiteName, key: unknown, constants: BackendConstants): asserts key is Uint8Array {
  requireUint8Array(key, 'key');
  const keyBytes = keyBytesForSuite(suite, constants);
  if (key.byteLength !== keyBytes) {
    throw new RangeError(`key must be ${keyBytes} bytes for ${suite}, got ${key.byteLength}`);
  }
}

/** True when two views share bytes of the same underlying buffer. */
export function viewsOverlap(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.buffer !== b.buffer) return false;
  const aEnd = a.byteOffset + a.byteLength;
  const bEnd = b.byteOffset + b.byteLength;
  return a.byteOffset < bEnd && b.byteOffset < aEnd;
}

/**
 * Checks a batch fully before any byte is touched, so a bad batch fails as a whole instead of
 * half-sealed. Slots must lie inside the slab, in increasing order, without overlap; the
 * layout, nonces and status arrays must not share bytes with the slab.
 */
export function validateBatch(batch: unknown, constants: BackendConstants, status?: unknown): asserts batch is PacketBatch {
  if (typeof batch !== 'object' || batch === null) {
    throw new TypeError(`batch must be an object with slab, layout, nonces and count, got ${describe(batch)}`);
  }
  const { slab, layout, nonces, count } = batch as Record<string, unknown>;
  requireUint8Array(slab, 'batch.slab');
  requireUint32Array(layout, 'batch.layout');
  requireUint8Array(nonces, 'batch.nonces');
  const { layoutWords, nonceBytes, tagBytes, aadBytesMax, payloadBytesMax } = constants;
  requireCount(count, 'batch.count', Math.floor(layout.length / layoutWords));
  if (nonces.byteLength < count * nonceBytes) {
    throw new RangeError(
      `batch.nonces must hold ${count} nonces of ${nonceBytes} bytes (${count * nonceBytes} bytes), got ${nonces.byteLength}`,
    );
  }
  if (viewsOverlap(slab, layout)) throw new RangeError('batch.layout must not overlap batch.slab');
  if (viewsOverlap(slab, nonces)) throw new RangeError('batch.nonces must not overlap batch.slab');
  if (status !== undefined) {
    requireUint8Array(status, 'status');
    if (status.byteLength < count) {
      throw new RangeError(`status must hold one byte per slot (${count}), got ${status.byteLength}`);
    }
    if (viewsOverlap(slab, status)) throw new RangeError('status must not overlap batch.slab');
    if (viewsOverlap(nonces, status)) throw new RangeError('status must not overlap batch.nonces');
    if (viewsOverlap(layout, status)) throw new RangeError('status must not overlap batch.layout');
  }
  // Read once: a typed array's byteLength is a getter, and this loop runs for every slot.
  const slabBytes = slab.byteLength;
  let previousEnd = 0;
  for (let slot = 0; slot < count; slot++) {
    const offset = layout[slot * layoutWords];
    const aadBytes = layout[slot * layoutWords + 1];
    const payloadBytes = layout[slot * layoutWords + 2];
    if (aadBytes > aadBytesMax) {
      throw new RangeError(`batch.layout slot ${slot}: AAD of ${aadBytes} bytes exceeds aadBytesMax ${aadBytesMax}`);
    }
    if (payloadBytes > payloadBytesMax) {
      throw new RangeError(
        `batch.layout slot ${slot}: payload of ${payloadBytes} bytes exceeds payloadBytesMax ${payloadBytesMax}`,
      );
    }
    if (offset < previousEnd) {
      throw new RangeError(
        `batch.layout slot ${slot}: offset ${offset} overlaps the previous slot (which ends at ${previousEnd}); slots must be in increasing order without overlap`,
      );
    }
    const end = offset + aadBytes + payloadBytes + tagBytes;
    if (end > slabBytes) {
      throw new RangeError(
        `batch.layout slot ${slot}: slot ends at byte ${end}, beyond batch.slab (${slabBytes} bytes)`,
      );
    }
    previousEnd = end;
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'object') return value.constructor?.name ?? 'object';
  if (typeof value === 'string') return `string "${value.length > 40 ? value.slice(0, 40) + '…' : value}"`;
  return `${typeof value} ${String(value)}`;
}
