// The registration transcript: every value both sides agree on during a registration, in one
// unambiguous byte string (fixed-size fields plus 2-byte length prefixes). The server signs it
// with its long-term Ed25519 key, as one leaf of a Merkle tree whose root it signs (merkle.ts,
// batch-signer.ts), and the client MACs it with a key derived from its PSK. Because it holds both
// fresh nonces, the session id and the server's public key, a signature or proof recorded on one
// connection is worthless on any other.

import { timingSafeEqual } from 'node:crypto';
import { batchCrypto, DIGEST_BYTES, type BatchCrypto } from './batch-crypto.js';
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

/** Writes a 2-byte big-endian length and the UTF-8 text; returns the offset after it. */
function writeLengthPrefixed(out: Buffer, offset: number, text: string, textBytes: number): number {
  out.writeUInt16BE(textBytes, offset);
  return offset + 2 + out.write(text, offset + 2, textBytes, 'utf8');
}

function textBytesOf(text: string, what: string): number {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > 0xffff) throw new RangeError(`${what} is too long for the transcript (${bytes} bytes)`);
  return bytes;
}

/** The transcript, written into one buffer (it is built for every registration on both sides). */
export function registrationTranscript(fields: TranscriptFields): Buffer {
  const { session } = fields;
  const clientIdBytes = textBytesOf(fields.clientId, 'clientId');
  const keyKindBytes = textBytesOf(fields.keyKind, 'keyKind');
  const groupBytes = textBytesOf(session.group, 'session.group');
  const suiteBytes = textBytesOf(session.suite, 'session.suite');
  const total =
    TRANSCRIPT_LABEL.byteLength + 1 + 2 + clientIdBytes + 2 + keyKindBytes + fields.clientNonce.byteLength + fields.serverNonce.byteLength +
    fields.serverPublicKey.byteLength + session.sessionId.byteLength + 2 + groupBytes + 2 + suiteBytes + 6;
  const out = Buffer.allocUnsafe(total);
  let offset = TRANSCRIPT_LABEL.copy(out, 0);
  offset = out.writeUInt8(PROTOCOL_VERSION, offset);
  offset = writeLengthPrefixed(out, offset, fields.clientId, clientIdBytes);
  offset = writeLengthPrefixed(out, offset, fields.keyKind, keyKindBytes);
  for (const part of [fields.clientNonce, fields.serverNonce, fields.serverPublicKey, session.sessionId]) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  offset = writeLengthPrefixed(out, offset, session.group, groupBytes);
  offset = writeLengthPrefixed(out, offset, session.suite, suiteBytes);
  offset = out.writeUInt16BE(session.port, offset);
  out.writeUInt32BE(session.packetBytes, offset);
  return out;
}

export function clientProofMac(macKey: Uint8Array, transcript: Buffer): Buffer {
  return batchCrypto().hmacEach([macKey], [Buffer.concat([CLIENT_PROOF_LABEL, transcript])]);
}

export interface ProofToCheck {
  macKey: Uint8Array;
  transcript: Buffer;
  mac: Uint8Array;
}

/** Constant-time checks of many clients' proofs, with one batch HMAC call. */
export function verifyClientProofs(proofs: readonly ProofToCheck[], crypto: BatchCrypto = batchCrypto()): boolean[] {
  if (proofs.length === 0) return [];
  const expected = crypto.hmacEach(
    proofs.map((proof) => proof.macKey),
    proofs.map((proof) => Buffer.concat([CLIENT_PROOF_LABEL, proof.transcript])),
  );
  const results = proofs.map(
    (proof, index) => proof.mac.byteLength === DIGEST_BYTES && timingSafeEqual(expected.subarray(index * DIGEST_BYTES, (index + 1) * DIGEST_BYTES), proof.mac),
  );
  expected.fill(0);
  return results;
}

/** Constant-time check of one client's proof. */
export function verifyClientProof(macKey: Uint8Array, transcript: Buffer, mac: Uint8Array): boolean {
  return verifyClientProofs([{ macKey, transcript, mac }])[0];
}
