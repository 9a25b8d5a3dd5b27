// The registration transcript is written into one buffer; its bytes must be exactly the layout of
// docs/control-protocol.md, which this test spells out with Buffer.concat.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { registrationTranscript } from '../../dist/control/transcript.js';
import { bytes, sessionParams } from './arbitraries.js';

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.byteLength);
  return Buffer.concat([length, bytes]);
}


describe('registration transcript', () => {
  it('is label ‖ version ‖ lp(clientId) ‖ lp(keyKind) ‖ nonces ‖ server key ‖ session fields', () => {
    fc.assert(
      fc.property(
        fc.record({
          clientId: fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
          keyKind: fc.constantFrom('psk' as const, 'hsm' as const, 'pubkey' as const, 'cert' as const),
          clientNonce: bytes(32),
          serverNonce: bytes(32),
          serverPublicKey: bytes(32),
          session: sessionParams(),
        }),
        (fields) => {
          const numbers = Buffer.alloc(6);
          numbers.writeUInt16BE(fields.session.port, 0);
          numbers.writeUInt32BE(fields.session.packetBytes, 2);
          const expected = Buffer.concat([
            Buffer.from('sealcast v1 registration\0', 'utf8'),
            Buffer.of(1),
            lengthPrefixed(fields.clientId),
            lengthPrefixed(fields.keyKind),
            fields.clientNonce,
            fields.serverNonce,
            fields.serverPublicKey,
            fields.session.sessionId,
            lengthPrefixed(fields.session.group),
            lengthPrefixed(fields.session.suite),
            numbers,
          ]);
          expect(registrationTranscript(fields).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
