// The END record: the payload of an END packet. It tells a receiver how long the whole stream
// was, how many DATA packets carried it, and the SHA-256 of the whole plaintext, so the receiver
// can prove its output complete and exact.

import { readU64, writeU64 } from './format.js';

export const DIGEST_BYTES = 32;
/** totalBytes (u64) ‖ dataPackets (u64) ‖ SHA-256 (32 bytes). */
export const END_PAYLOAD_BYTES = 8 + 8 + DIGEST_BYTES;

export interface EndRecord {
  totalBytes: number;
  dataPackets: number;
  sha256: Uint8Array;
}

export function encodeEnd(target: Uint8Array, offset: number, record: EndRecord): void {
  if (!Number.isSafeInteger(record.totalBytes) || record.totalBytes < 0) {
    throw new RangeError(`totalBytes must be a non-negative safe integer, got ${record.totalBytes}`);
  }
  if (!Number.isSafeInteger(record.dataPackets) || record.dataPackets < 0) {
    throw new RangeError(`dataPackets must be a non-negative safe integer, got ${record.dataPackets}`);
  }
  if (!(record.sha256 instanceof Uint8Array) || record.sha256.byteLength !== DIGEST_BYTES) {
    throw new RangeError(`sha256 must be ${DIGEST_BYTES} bytes`);
  }
  if (offset + END_PAYLOAD_BYTES > target.byteLength) throw new RangeError('END record does not fit the target');
  writeU64(target, offset, record.totalBytes);
  writeU64(target, offset + 8, record.dataPackets);
  target.set(record.sha256, offset + 16);
}

/** Parses an authenticated END payload; undefined when it has the wrong size or range. */
export function decodeEnd(payload: Uint8Array): EndRecord | undefined {
  if (payload.byteLength !== END_PAYLOAD_BYTES) return undefined;
  const totalBytes = readU64(payload, 0);
  const dataPackets = readU64(payload, 8);
  if (totalBytes < 0 || dataPackets < 0) return undefined;
  return { totalBytes, dataPackets, sha256: new Uint8Array(payload.subarray(16, 16 + DIGEST_BYTES)) };
}
