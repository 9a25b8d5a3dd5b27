// The registration transcript: every value both sides agree on during a registration, in one
// unambiguous byte string (fixed-size fields plus 2-byte length prefixes). The server signs it
// with its long-term Ed25519 key, as one leaf of a Merkle tree whose root it signs (merkle.ts,
// batch-signer.ts), and the client MACs it with a key derived from its PSK. Because it holds both
// fresh nonces, the session id and the server's public key, a signature or proof recorded on one
// connection is worthless on any other.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { PROTOCOL_VERSION, type KeyKind, type SessionParams } from './messages.js';

const TRANSCRIPT_LABEL = Buffer.from('sealcast v1 registration\0', 'utf8');
const CLIENT_PROOF_LABEL = Buffer.from('sealcast v1 client proof\0', 'utf8');

export interface TranscriptFields {
  clientId: string;
  keyKind: KeyKind;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
  serverPublicKey: Uint8Array;
  session: SessionParams;
}

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.allocUnsafe(2 + bytes.byteLength);
  out.writeUInt16BE(bytes.byteLength, 0);
  bytes.copy(out, 2);
  return out;
}

export function registrationTranscript(fields: TranscriptFields): Buffer {
  const { session } = fields;
  const numbers = Buffer.allocUnsafe(6);
  numbers.writeUInt16BE(session.port, 0);
  numbers.writeUInt32BE(session.packetBytes, 2);
  return Buffer.concat([
    TRANSCRIPT_LABEL,
    Buffer.of(PROTOCOL_VERSION),
    lengthPrefixed(fields.clientId),
    lengthPrefixed(fields.keyKind),
    fields.clientNonce,
    fields.serverNonce,
    fields.serverPublicKey,
    session.sessionId,
    lengthPrefixed(session.group),
    lengthPrefixed(session.suite),
    numbers,
  ]);
}

export function clientProofMac(macKey: Uint8Array, transcript: Buffer): Buffer {
  return createHmac('sha256', macKey).update(CLIENT_PROOF_LABEL).update(transcript).digest();
}

/** Constant-time check of a client's proof. */
export function verifyClientProof(macKey: Uint8Array, transcript: Buffer, mac: Uint8Array): boolean {
  const expected = clientProofMac(macKey, transcript);
  const ok = expected.byteLength === mac.byteLength && timingSafeEqual(expected, mac);
  expected.fill(0);
  return ok;
}
