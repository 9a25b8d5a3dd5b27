// A hostile or broken server must never crash or hang the client: whatever it sends, the
// registration ends in a SealcastError within the deadline.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { registerWithServer } from '../../dist/control/client.js';
import { encodeFrame } from '../../dist/control/frames.js';
import { encodeMessage } from '../../dist/control/messages.js';
import { generateIdentity } from '../../dist/keys/identity.js';
import { SealcastError } from '../../dist/errors.js';

let server: Server;
let port = 0;
let reply: Buffer = Buffer.alloc(0);
const sockets = new Set<Socket>();
const identity = generateIdentity();

beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    // Answers the hello with the scripted bytes, then closes.
    socket.once('data', () => socket.end(reply));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const challenge = encodeFrame(
  encodeMessage({
    type: 'challenge',
    v: 1,
    serverNonce: randomBytes(32),
    serverPublicKey: identity.publicKey,
    session: { sessionId: randomBytes(8), group: '239.1.2.3', port: 5000, suite: 'chacha20-poly1305', packetBytes: 1400 },
    signature: randomBytes(64),
    leafIndex: 1,
    path: [randomBytes(32)],
  }),
);
const welcome = encodeFrame(encodeMessage({ type: 'welcome', v: 1, key: { keyKind: 'psk', epoch: 0, nonce: randomBytes(12), sealed: randomBytes(48) }, streamOffset: 0 }));

describe('control client robustness', () => {
  it('random, truncated and mutated server replies end in a SealcastError, never a crash or hang', async () => {
    const replies = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
      fc.tuple(fc.constantFrom(challenge, welcome), fc.nat()).map(([bytes, cut]) => bytes.subarray(0, cut % (bytes.byteLength + 1))),
      fc
        .tuple(fc.constantFrom(challenge, welcome), fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }))
        .map(([bytes, edits]) => {
          const copy = Buffer.from(bytes);
          for (const { at, value } of edits) copy[at % copy.byteLength] = value;
          return copy;
        }),
      fc.constant(Buffer.concat([challenge, welcome])),
    );
    await fc.assert(
      fc.asyncProperty(replies, async (bytes) => {
        reply = bytes;
        const outcome = await registerWithServer({
          host: '127.0.0.1',
          port,
          clientId: 'alice',
          psk: randomBytes(32),
          pinnedFingerprint: identity.fingerprint,
          timeoutMs: 3000,
        }).then(
          () => null,
          (error: unknown) => error,
        );
        expect(outcome).toBeInstanceOf(SealcastError);
        expect(['E_PROTOCOL', 'E_AUTH', 'E_IO', 'E_TIMEOUT']).toContain((outcome as SealcastError).code);
      }),
      { numRuns: 60 },
    );
  });
});
