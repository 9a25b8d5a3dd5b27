// The sealcast wire format (docs/wire-format.md): pure encode/decode functions, no I/O.
//
// Every datagram is  [ header (AAD, 36 bytes) | payload (ciphertext) | tag (16 bytes) ].
// The header is authenticated as AAD, so a receiver may read it before opening only to decide
// which key and nonce to try; nothing in it is trusted until the tag verifies.

import { SealcastError } from '../errors.js';

export const PACKET_MAGIC = 0x5343; // "SC"
export const PACKET_VERSION = 1;
export const HEADER_BYTES = 36;
export const TAG_BYTES = 16;
export const SESSION_ID_BYTES = 8;
/** The largest UDP payload over IPv4. */
export const DATAGRAM_BYTES_MAX = 65_507;
/** Header plus tag plus at least one payload byte. */
export const DATAGRAM_BYTES_MIN_CONFIGURABLE = HEADER_BYTES + TAG_BYTES + 64;
export const DEFAULT_DATAGRAM_BYTES = 1400;

/** Packet types. Values 3–5 are reserved now so later issues can add them without a version bump. */
export const PacketType = {
  DATA: 1,
  END: 2,
  /** Reserved: forward-error-correction repair symbols. */
  REPAIR: 3,
  /** Reserved: multicast key update (the next update key, wrapped). */
  KEY_UPDATE: 4,
  /** Reserved: in-band control (e.g. sender announcements). */
  CONTROL: 5,
} as const;
export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];
/** Every packet type version 1 knows (the receiver acts on DATA and END and counts the rest). */
export const KNOWN_TYPE_VALUES: readonly number[] = Object.freeze(Object.values(PacketType));
const KNOWN_TYPES = new Set<number>(KNOWN_TYPE_VALUES);

/** Suite identifiers on the wire. */
export const SUITE_IDS = { 'chacha20-poly1305': 1, 'aes-256-gcm': 2 } as const;
export type WireSuite = keyof typeof SUITE_IDS;
export function suiteFromId(id: number): WireSuite | undefined {
  if (id === 1) return 'chacha20-poly1305';
  if (id === 2) return 'aes-256-gcm';
  return undefined;
}

/** Byte offsets inside the header. */
export const HeaderField = {
  magic: 0, // u16
  version: 2, // u8
  type: 3, // u8
  suite: 4, // u8
  flags: 5, // u8, must be 0 in version 1
  payloadBytes: 6, // u16
  sessionId: 8, // 8 bytes
  epoch: 16, // u32
  sequence: 20, // u64
  streamOffset: 28, // u64
} as const;

export interface PacketHeader {
  type: PacketTypeValue;
  suite: WireSuite;
  sessionId: Uint8Array;
  epoch: number;
  /** Packet sequence within the session; a safe integer (< 2^53). */
  sequence: number;
  /** Byte offset of this payload in the plaintext stream (END: the total length). */
  streamOffset: number;
  payloadBytes: number;
}

const TWO_POW_32 = 0x1_0000_0000;

/** Writes a u64 that is a safe integer as two big-endian u32 words (no BigInt on the hot path). */
export function writeU64(target: Uint8Array, offset: number, value: number): void {
  writeU32(target, offset, Math.floor(value / TWO_POW_32));
  writeU32(target, offset + 4, value >>> 0);
}

/** Reads a u64; returns -1 when it does not fit a safe integer (callers treat that as malformed). */
export function readU64(source: Uint8Array, offset: number): number {
  const high = readU32(source, offset);
  const low = readU32(source, offset + 4);
  if (high > 0x1f_ffff) return -1;
  return high * TWO_POW_32 + low;
}

// Byte-wise big-endian access: these run per packet, where a DataView per call costs more.
export function writeU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = (value >>> 16) & 0xff;
  target[offset + 2] = (value >>> 8) & 0xff;
  target[offset + 3] = value & 0xff;
}

export function readU32(source: Uint8Array, offset: number): number {
  return ((source[offset] << 24) >>> 0) + (source[offset + 1] << 16) + (source[offset + 2] << 8) + source[offset + 3];
}

/** Writes a header at `offset` of `target`. Validates every field (this is a TS boundary). */
export function encodeHeader(target: Uint8Array, offset: number, header: PacketHeader): void {
  if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
  if (!Number.isInteger(offset) || offset < 0 || offset + HEADER_BYTES > target.byteLength) {
    throw new RangeError(`header at offset ${offset} does not fit a target of ${target.byteLength} bytes`);
  }
  if (!KNOWN_TYPES.has(header.type)) throw new RangeError(`unknown packet type ${header.type}`);
  const suiteId = SUITE_IDS[header.suite];
  if (suiteId === undefined) throw new RangeError(`unknown wire suite ${String(header.suite)}`);
  if (!(header.sessionId instanceof Uint8Array) || header.sessionId.byteLength !== SESSION_ID_BYTES) {
    throw new RangeError(`sessionId must be ${SESSION_ID_BYTES} bytes`);
  }
  requireU32(header.epoch, 'epoch');
  requireSafeU64(header.sequence, 'sequence');
  requireSafeU64(header.streamOffset, 'streamOffset');
  if (!Number.isInteger(header.payloadBytes) || header.payloadBytes < 0 || header.payloadBytes > 0xffff) {
    throw new RangeError(`payloadBytes must be between 0 and 65535, got ${header.payloadBytes}`);
  }
  writeHeaderUnchecked(target, offset, suiteId, header.type, header.sessionId, header.epoch, header.sequence, header.streamOffset, header.payloadBytes);
}

/**
 * The hot-path writer used by the sender's chunker, whose values are correct by construction.
 * Field checks live in encodeHeader; this only writes.
 */
export function writeHeaderUnchecked(
  target: Uint8Array,
  offset: number,
  suiteId: number,
  type: number,
  sessionId: Uint8Array,
  epoch: number,
  sequence: number,
  streamOffset: number,
  payloadBytes: number,
): void {
  target[offset] = PACKET_MAGIC >>> 8;
  target[offset + 1] = PACKET_MAGIC & 0xff;
  target[offset + 2] = PACKET_VERSION;
  target[offset + 3] = type;
  target[offset + 4] = suiteId;
  target[offset + 5] = 0;
  target[offset + 6] = payloadBytes >>> 8;
  target[offset + 7] = payloadBytes & 0xff;
  target.set(sessionId, offset + HeaderField.sessionId);
  writeU32(target, offset + HeaderField.epoch, epoch);
  writeU64(target, offset + HeaderField.sequence, sequence);
  writeU64(target, offset + HeaderField.streamOffset, streamOffset);
}

export type DecodeFailure = 'short' | 'magic' | 'version' | 'type' | 'suite' | 'flags' | 'length' | 'range';

export type DecodeResult = { ok: true; header: PacketHeader } | { ok: false; reason: DecodeFailure };

/**
 * Parses and checks a datagram's header without opening it. Never throws: anything that is not a
 * well-formed version-1 packet is reported as a failure the caller counts as malformed.
 * `sessionId` in the result is a view into `datagram`; copy it if you keep it.
 */
export function decodeHeader(datagram: Uint8Array): DecodeResult {
  if (!(datagram instanceof Uint8Array) || datagram.byteLength < HEADER_BYTES + TAG_BYTES) return { ok: false, reason: 'short' };
  if (datagram.byteLength > DATAGRAM_BYTES_MAX) return { ok: false, reason: 'length' };
  if (((datagram[0] << 8) | datagram[1]) !== PACKET_MAGIC) return { ok: false, reason: 'magic' };
  if (datagram[2] !== PACKET_VERSION) return { ok: false, reason: 'version' };
  const type = datagram[3];
  if (!KNOWN_TYPES.has(type)) return { ok: false, reason: 'type' };
  const suite = suiteFromId(datagram[4]);
  if (suite === undefined) return { ok: false, reason: 'suite' };
  if (datagram[5] !== 0) return { ok: false, reason: 'flags' };
  const payloadBytes = (datagram[6] << 8) | datagram[7];
  if (HEADER_BYTES + payloadBytes + TAG_BYTES !== datagram.byteLength) return { ok: false, reason: 'length' };
  const epoch = readU32(datagram, HeaderField.epoch);
  const sequence = readU64(datagram, HeaderField.sequence);
  const streamOffset = readU64(datagram, HeaderField.streamOffset);
  if (sequence < 0 || streamOffset < 0) return { ok: false, reason: 'range' };
  return {
    ok: true,
    header: {
      type: type as PacketTypeValue,
      suite,
      sessionId: datagram.subarray(HeaderField.sessionId, HeaderField.sessionId + SESSION_ID_BYTES),
      epoch,
      sequence,
      streamOffset,
      payloadBytes,
    },
  };
}

/** Payload bytes one datagram of `datagramBytes` carries. */
export function payloadBytesFor(datagramBytes: number): number {
  return datagramBytes - HEADER_BYTES - TAG_BYTES;
}

export function requireDatagramBytes(value: number): void {
  if (!Number.isInteger(value) || value < DATAGRAM_BYTES_MIN_CONFIGURABLE || value > DATAGRAM_BYTES_MAX) {
    throw new SealcastError(
      'E_ARG',
      `packet size must be an integer between ${DATAGRAM_BYTES_MIN_CONFIGURABLE} and ${DATAGRAM_BYTES_MAX} bytes, got ${value}`,
    );
  }
}

function requireU32(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`${name} must be a 32-bit unsigned integer, got ${value}`);
  }
}

function requireSafeU64(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}
