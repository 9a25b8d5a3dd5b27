// Control-plane messages: one JSON object per frame, binary fields in canonical base64. Every
// message is checked against its schema here, before any other code looks at it; a message that
// fails is an E_PROTOCOL error and the connection that sent it is closed. Objects must carry
// exactly the fields of their type (unknown fields are refused), so that a later protocol version
// is detected by its `v` and never half-understood.

import { isIP } from 'node:net';
import { WIRE_SUITES, type WireSuiteName } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import { SESSION_ID_BYTES } from '../keys/kdf.js';
import { MERKLE_DEPTH_MAX, MERKLE_HASH_BYTES } from './merkle.js';
import { FRAME_HEADER_BYTES } from './frames.js';

export const PROTOCOL_VERSION = 1;

/**
 * The kinds of per-client key ("second key", DESIGN.md). Only `psk` is served by this version;
 * the others are named now so that messages and the registry need no change to add them.
 */
export const KEY_KINDS = ['psk', 'hsm', 'pubkey', 'cert'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

export const CLIENT_NONCE_BYTES = 32;
export const SERVER_NONCE_BYTES = 32;
export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
export const PROOF_MAC_BYTES = 32;
export const WRAP_NONCE_BYTES = 12;
export const WRAP_TAG_BYTES = 16;
export const DATA_KEY_BYTES = 32;
/** A wrapped bundle holds the data key and, when the key-update chain is in use, the update key. */
export const SEALED_KEY_BYTES = [DATA_KEY_BYTES + WRAP_TAG_BYTES, 2 * DATA_KEY_BYTES + WRAP_TAG_BYTES] as const;
export const EPOCH_MAX = 0xffff_ffff;
export const ERROR_TEXT_CHARS_MAX = 500;
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Reasons the server gives in an `error` message; the client maps them to clear errors. */
export const ERROR_REASONS = [
  'unknown-client',
  'removed-client',
  'bad-proof',
  'unsupported',
  'protocol',
  'busy',
  'timeout',
  'replaced',
  'shutdown',
] as const;
export type ErrorReason = (typeof ERROR_REASONS)[number];

/**
 * Message types kept for later issues (usage receipts, withdrawal, liveness). They are
 * recognised so that a peer using them gets a clear "unsupported" instead of "unknown type".
 */
export const RESERVED_TYPES = ['receipt', 'withdraw', 'withdrawn', 'ping', 'pong'] as const;

/** The most byte ranges one `nack` or `repair` message names. */
export const REPAIR_RANGES_MAX = 64;
/** Stream offsets are u64 on the wire but safe integers everywhere in sealcast. */
export const STREAM_OFFSET_MAX = Number.MAX_SAFE_INTEGER;

/** A byte range of the plaintext stream: `from` is the first byte, `to` one past the last. */
export interface StreamRange {
  from: number;
  to: number;
}

export interface SessionParams {
  /** 8 random bytes naming this stream; bound into every derived key, AAD and transcript. */
  sessionId: Buffer;
  /** Multicast group address the data plane sends to. */
  group: string;
  port: number;
  suite: WireSuiteName;
  /** Datagram size of the data plane. */
  packetBytes: number;
}

export interface WrappedKey {
  keyKind: KeyKind;
  epoch: number;
  nonce: Buffer;
  sealed: Buffer;
}

export interface HelloMessage {
  type: 'hello';
  v: 1;
  clientId: string;
  keyKind: KeyKind;
  clientNonce: Buffer;
}
export interface ProofMessage {
  type: 'proof';
  v: 1;
  mac: Buffer;
}
export interface KeyAckMessage {
  type: 'keyAck';
  v: 1;
  epoch: number;
}
export interface ByeMessage {
  type: 'bye';
  v: 1;
}
/**
 * A receiver that cannot keep up (its output is far behind, so it is dropping new packets) asks
 * the sender to lower its rate before the losses it would otherwise report pile up.
 */
export interface SlowDownMessage {
  type: 'slowDown';
  v: 1;
}
/**
 * Flow control: the receiver has taken the stream in up to `offset` (one past the furthest byte
 * it accepted). The sender keeps new data within its flow window of the slowest receiver.
 */
export interface ProgressMessage {
  type: 'progress';
  v: 1;
  offset: number;
}
/**
 * A receiver's request for bytes it is missing (loss repair). The sender multicasts the stored
 * ciphertext of every packet that overlaps a range; a range may reach past what was sent (a
 * receiver that heard no END asks for everything after its last byte).
 */
export interface NackMessage {
  type: 'nack';
  v: 1;
  /** 1 to REPAIR_RANGES_MAX ranges, ascending and not overlapping. */
  ranges: StreamRange[];
}
export interface ChallengeMessage {
  type: 'challenge';
  v: 1;
  serverNonce: Buffer;
  serverPublicKey: Buffer;
  session: SessionParams;
  /**
   * Ed25519 signature over the root of a batch of registration transcripts (merkle.ts); the
   * client rebuilds the root from its own transcript, `leafIndex` and `path`.
   */
  signature: Buffer;
  /** Position of this registration's transcript among the batch's leaves; below 2^path.length. */
  leafIndex: number;
  /** Sibling hashes from the leaf up (0 to MERKLE_DEPTH_MAX entries of 32 bytes). */
  path: Buffer[];
}
export interface WelcomeMessage {
  type: 'welcome';
  v: 1;
  key: WrappedKey;
  /**
   * How far the stream had come when this client registered: 0 before sending began. A client
   * registered from the start treats missing early bytes as losses to repair; a later one starts
   * at the first packet it can open.
   */
  streamOffset: number;
}
export interface KeyMessage {
  type: 'key';
  v: 1;
  key: WrappedKey;
}
/** The sender's answer to a `nack` for bytes it no longer holds: they cannot be repaired. */
export interface RepairMessage {
  type: 'repair';
  v: 1;
  /** 1 to REPAIR_RANGES_MAX ranges, ascending and not overlapping. */
  unavailable: StreamRange[];
}
export interface ErrorMessage {
  type: 'error';
  v: 1;
  reason: ErrorReason;
  text: string;
}

export type ClientMessage = HelloMessage | ProofMessage | KeyAckMessage | NackMessage | SlowDownMessage | ProgressMessage | ByeMessage;
export type ServerMessage = ChallengeMessage | WelcomeMessage | KeyMessage | RepairMessage | ErrorMessage | ByeMessage;

type Json = Record<string, unknown>;

function protocolError(message: string): SealcastError {
  return new SealcastError('E_PROTOCOL', message);
}

function requireObject(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw protocolError(`${what} must be a JSON object`);
  return value as Json;
}

function requireExactKeys(object: Json, what: string, required: readonly string[]): void {
  const keys = Object.keys(object);
  for (const key of required) {
    if (!Object.prototype.hasOwnProperty.call(object, key)) throw protocolError(`${what} lacks the field "${key}"`);
  }
  if (keys.length !== required.length) {
    const extra = keys.filter((key) => !required.includes(key));
    throw protocolError(`${what} has unknown field(s): ${extra.slice(0, 3).map((key) => JSON.stringify(key.slice(0, 40))).join(', ')}`);
  }
}

const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

function requireBytes(value: unknown, what: string, lengths: readonly number[]): Buffer {
  if (typeof value !== 'string' || value.length > 4 * Math.ceil(Math.max(...lengths) / 3) || !BASE64_PATTERN.test(value)) {
    throw protocolError(`${what} must be base64 of ${lengths.join(' or ')} bytes`);
  }
  const bytes = Buffer.from(value, 'base64');
  // Re-encoding must give the same text: refuses non-canonical padding and stray bits, so one
  // byte string has exactly one encoding.
  if (!lengths.includes(bytes.byteLength) || bytes.toString('base64') !== value) {
    throw protocolError(`${what} must be base64 of ${lengths.join(' or ')} bytes`);
  }
  return bytes;
}

function requireInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw protocolError(`${what} must be an integer between ${min} and ${max}`);
  }
  return value;
}

function requireOneOf<T extends string>(value: unknown, what: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw protocolError(`${what} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

export function isValidClientId(value: unknown): value is string {
  return typeof value === 'string' && CLIENT_ID_PATTERN.test(value);
}

function requireClientId(value: unknown, what: string): string {
  if (!isValidClientId(value)) throw protocolError(`${what} must be 1 to 64 characters of A-Z a-z 0-9 . _ -`);
  return value;
}

function requireSession(value: unknown): SessionParams {
  const object = requireObject(value, 'challenge.session');
  requireExactKeys(object, 'challenge.session', ['sessionId', 'group', 'port', 'suite', 'packetBytes']);
  const group = object.group;
  if (typeof group !== 'string' || group.length > 64 || isIP(group) === 0) {
    throw protocolError('challenge.session.group must be an IPv4 or IPv6 address');
  }
  return {
    sessionId: requireBytes(object.sessionId, 'challenge.session.sessionId', [SESSION_ID_BYTES]),
    group,
    port: requireInteger(object.port, 'challenge.session.port', 1, 65535),
    suite: requireOneOf(object.suite, 'challenge.session.suite', WIRE_SUITES),
    packetBytes: requireInteger(object.packetBytes, 'challenge.session.packetBytes', 64, 65507),
  };
}

function requireMerklePath(value: unknown, what: string): Buffer[] {
  if (!Array.isArray(value) || value.length > MERKLE_DEPTH_MAX) {
    throw protocolError(`${what} must be an array of at most ${MERKLE_DEPTH_MAX} hashes`);
  }
  return value.map((entry, index) => requireBytes(entry, `${what}[${index}]`, [MERKLE_HASH_BYTES]));
}

function requireWrappedKey(value: unknown, what: string): WrappedKey {
  const object = requireObject(value, what);
  requireExactKeys(object, what, ['keyKind', 'epoch', 'nonce', 'sealed']);
  return {
    keyKind: requireOneOf(object.keyKind, `${what}.keyKind`, KEY_KINDS),
    epoch: requireInteger(object.epoch, `${what}.epoch`, 0, EPOCH_MAX),
    nonce: requireBytes(object.nonce, `${what}.nonce`, [WRAP_NONCE_BYTES]),
    sealed: requireBytes(object.sealed, `${what}.sealed`, SEALED_KEY_BYTES),
  };
}

function requireRanges(value: unknown, what: string): StreamRange[] {
  if (!Array.isArray(value) || value.length < 1 || value.length > REPAIR_RANGES_MAX) {
    throw protocolError(`${what} must be an array of 1 to ${REPAIR_RANGES_MAX} ranges`);
  }
  const ranges: StreamRange[] = [];
  let previousTo = 0;
  for (let index = 0; index < value.length; index++) {
    const entry = requireObject(value[index], `${what}[${index}]`);
    requireExactKeys(entry, `${what}[${index}]`, ['from', 'to']);
    const from = requireInteger(entry.from, `${what}[${index}].from`, 0, STREAM_OFFSET_MAX - 1);
    const to = requireInteger(entry.to, `${what}[${index}].to`, from + 1, STREAM_OFFSET_MAX);
    // Ascending and disjoint, so a message cannot make the sender look the same bytes up twice.
    if (index > 0 && from < previousTo) throw protocolError(`${what} must be ascending and must not overlap`);
    previousTo = to;
    ranges.push({ from, to });
  }
  return ranges;
}

/** Parses a frame payload into a JSON object with a known type and version, or throws E_PROTOCOL. */
function parseEnvelope(payload: Uint8Array): Json {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    throw protocolError('frame is not valid JSON');
  }
  const object = requireObject(value, 'message');
  if (typeof object.type !== 'string') throw protocolError('message lacks a string "type"');
  if (object.v !== PROTOCOL_VERSION) {
    throw protocolError(`message has protocol version ${JSON.stringify(object.v)?.slice(0, 20)}; this peer speaks version ${PROTOCOL_VERSION}`);
  }
  if ((RESERVED_TYPES as readonly string[]).includes(object.type)) {
    throw new SealcastError('E_PROTOCOL', `message type "${object.type}" is reserved and not supported by protocol version ${PROTOCOL_VERSION}`);
  }
  return object;
}

function describeType(type: string): string {
  return JSON.stringify(type.slice(0, 40));
}

export function decodeClientMessage(payload: Uint8Array): ClientMessage {
  const object = parseEnvelope(payload);
  switch (object.type) {
    case 'hello':
      requireExactKeys(object, 'hello', ['type', 'v', 'clientId', 'keyKind', 'clientNonce']);
      return {
        type: 'hello',
        v: 1,
        clientId: requireClientId(object.clientId, 'hello.clientId'),
        keyKind: requireOneOf(object.keyKind, 'hello.keyKind', KEY_KINDS),
        clientNonce: requireBytes(object.clientNonce, 'hello.clientNonce', [CLIENT_NONCE_BYTES]),
      };
    case 'proof':
      requireExactKeys(object, 'proof', ['type', 'v', 'mac']);
      return { type: 'proof', v: 1, mac: requireBytes(object.mac, 'proof.mac', [PROOF_MAC_BYTES]) };
    case 'keyAck':
      requireExactKeys(object, 'keyAck', ['type', 'v', 'epoch']);
      return { type: 'keyAck', v: 1, epoch: requireInteger(object.epoch, 'keyAck.epoch', 0, EPOCH_MAX) };
    case 'nack':
      requireExactKeys(object, 'nack', ['type', 'v', 'ranges']);
      return { type: 'nack', v: 1, ranges: requireRanges(object.ranges, 'nack.ranges') };
    case 'slowDown':
      requireExactKeys(object, 'slowDown', ['type', 'v']);
      return { type: 'slowDown', v: 1 };
    case 'progress':
      requireExactKeys(object, 'progress', ['type', 'v', 'offset']);
      return { type: 'progress', v: 1, offset: requireInteger(object.offset, 'progress.offset', 0, STREAM_OFFSET_MAX) };
    case 'bye':
      requireExactKeys(object, 'bye', ['type', 'v']);
      return { type: 'bye', v: 1 };
    default:
      throw protocolError(`unknown client message type ${describeType(String(object.type))}`);
  }
}

export function decodeServerMessage(payload: Uint8Array): ServerMessage {
  const object = parseEnvelope(payload);
  switch (object.type) {
    case 'challenge': {
      requireExactKeys(object, 'challenge', ['type', 'v', 'serverNonce', 'serverPublicKey', 'session', 'signature', 'leafIndex', 'path']);
      const path = requireMerklePath(object.path, 'challenge.path');
      // The index must fit the path exactly, so one transcript has one position in one tree.
      const leafIndex = requireInteger(object.leafIndex, 'challenge.leafIndex', 0, 2 ** path.length - 1);
      return {
        type: 'challenge',
        v: 1,
        serverNonce: requireBytes(object.serverNonce, 'challenge.serverNonce', [SERVER_NONCE_BYTES]),
        serverPublicKey: requireBytes(object.serverPublicKey, 'challenge.serverPublicKey', [ED25519_PUBLIC_KEY_BYTES]),
        session: requireSession(object.session),
        signature: requireBytes(object.signature, 'challenge.signature', [ED25519_SIGNATURE_BYTES]),
        leafIndex,
        path,
      };
    }
    case 'welcome':
      requireExactKeys(object, 'welcome', ['type', 'v', 'key', 'streamOffset']);
      return {
        type: 'welcome',
        v: 1,
        key: requireWrappedKey(object.key, 'welcome.key'),
        streamOffset: requireInteger(object.streamOffset, 'welcome.streamOffset', 0, STREAM_OFFSET_MAX),
      };
    case 'key':
      requireExactKeys(object, 'key', ['type', 'v', 'key']);
      return { type: 'key', v: 1, key: requireWrappedKey(object.key, 'key.key') };
    case 'repair':
      requireExactKeys(object, 'repair', ['type', 'v', 'unavailable']);
      return { type: 'repair', v: 1, unavailable: requireRanges(object.unavailable, 'repair.unavailable') };
    case 'error': {
      requireExactKeys(object, 'error', ['type', 'v', 'reason', 'text']);
      const text = object.text;
      if (typeof text !== 'string' || text.length > ERROR_TEXT_CHARS_MAX) {
        throw protocolError(`error.text must be a string of at most ${ERROR_TEXT_CHARS_MAX} characters`);
      }
      return { type: 'error', v: 1, reason: requireOneOf(object.reason, 'error.reason', ERROR_REASONS), text };
    }
    case 'bye':
      requireExactKeys(object, 'bye', ['type', 'v']);
      return { type: 'bye', v: 1 };
    default:
      throw protocolError(`unknown server message type ${describeType(String(object.type))}`);
  }
}

function sessionToJson(session: SessionParams): Json {
  return {
    sessionId: session.sessionId.toString('base64'),
    group: session.group,
    port: session.port,
    suite: session.suite,
    packetBytes: session.packetBytes,
  };
}

function wrappedKeyToJson(key: WrappedKey): Json {
  return { keyKind: key.keyKind, epoch: key.epoch, nonce: key.nonce.toString('base64'), sealed: key.sealed.toString('base64') };
}

// The JSON text of a session, kept for frozen session objects: a server sends the same session in
// every challenge, and stringifying it is most of a challenge's encoding cost.
const sessionJsonTexts = new WeakMap<SessionParams, string>();

function sessionJsonText(session: SessionParams): string {
  let text = sessionJsonTexts.get(session);
  if (text === undefined) {
    text = JSON.stringify(sessionToJson(session));
    if (Object.isFrozen(session)) sessionJsonTexts.set(session, text);
  }
  return text;
}

/**
 * The challenge, written out directly: every field is base64 (which needs no JSON escaping), an
 * integer, or the session's JSON text. The result is the same text JSON.stringify would give.
 */
function challengeJsonText(message: ChallengeMessage): string {
  if (!Number.isSafeInteger(message.leafIndex)) throw new RangeError(`leafIndex must be an integer, got ${message.leafIndex}`);
  let path = '';
  for (let index = 0; index < message.path.length; index++) path += `${index === 0 ? '' : ','}"${message.path[index].toString('base64')}"`;
  return (
    `{"type":"challenge","v":1,"serverNonce":"${message.serverNonce.toString('base64')}",` +
    `"serverPublicKey":"${message.serverPublicKey.toString('base64')}","session":${sessionJsonText(message.session)},` +
    `"signature":"${message.signature.toString('base64')}","leafIndex":${message.leafIndex},"path":[${path}]}`
  );
}

/** Encodes a message to its frame payload. Binary fields become base64; nothing else changes. */
export function encodeMessage(message: ClientMessage | ServerMessage): Buffer {
  return Buffer.from(messageJsonText(message), 'utf8');
}

/**
 * Encodes a message as a whole frame (length header and payload) in one allocation. RangeError
 * when the payload exceeds `frameBytesMax`.
 */
export function encodeMessageFrame(message: ClientMessage | ServerMessage, frameBytesMax: number): Buffer {
  return encodeTextFrame(messageJsonText(message), frameBytesMax);
}

/** A frame whose payload is `text` in UTF-8. RangeError when the payload exceeds `frameBytesMax`. */
export function encodeTextFrame(text: string, frameBytesMax: number): Buffer {
  const payloadBytes = textFrameBytes(text, frameBytesMax);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  frame.writeUInt32BE(payloadBytes, 0);
  frame.write(text, FRAME_HEADER_BYTES, 'utf8');
  return frame;
}

/** The UTF-8 size of a frame payload; RangeError when it exceeds `frameBytesMax`. */
export function textFrameBytes(text: string, frameBytesMax: number): number {
  const payloadBytes = Buffer.byteLength(text, 'utf8');
  if (payloadBytes > frameBytesMax) {
    throw new RangeError(`frame payload of ${payloadBytes} bytes exceeds the maximum of ${frameBytesMax} bytes`);
  }
  return payloadBytes;
}

/** A message's frame payload as text (JSON with base64 binary fields). */
export function messageJsonText(message: ClientMessage | ServerMessage): string {
  let json: Json;
  switch (message.type) {
    case 'hello':
      json = { type: 'hello', v: 1, clientId: message.clientId, keyKind: message.keyKind, clientNonce: message.clientNonce.toString('base64') };
      break;
    case 'proof':
      json = { type: 'proof', v: 1, mac: message.mac.toString('base64') };
      break;
    case 'keyAck':
      json = { type: 'keyAck', v: 1, epoch: message.epoch };
      break;
    case 'nack':
      json = { type: 'nack', v: 1, ranges: message.ranges.map(({ from, to }) => ({ from, to })) };
      break;
    case 'repair':
      json = { type: 'repair', v: 1, unavailable: message.unavailable.map(({ from, to }) => ({ from, to })) };
      break;
    case 'progress':
      json = { type: 'progress', v: 1, offset: message.offset };
      break;
    case 'slowDown':
    case 'bye':
      json = { type: message.type, v: 1 };
      break;
    case 'challenge':
      return challengeJsonText(message);
    case 'welcome':
      json = { type: 'welcome', v: 1, key: wrappedKeyToJson(message.key), streamOffset: message.streamOffset };
      break;
    case 'key':
      json = { type: 'key', v: 1, key: wrappedKeyToJson(message.key) };
      break;
    case 'error':
      json = { type: 'error', v: 1, reason: message.reason, text: message.text.slice(0, ERROR_TEXT_CHARS_MAX) };
      break;
  }
  return JSON.stringify(json);
}
