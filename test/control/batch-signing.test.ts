// Batch signing seen from the client: a challenge carries a signature over a Merkle root plus
// this registration's leaf index and path. The client accepts it only when its own transcript,
// placed at that index and hashed up that path, gives a root the pinned key signed. A scripted
// server builds real batches (the client's transcript among others) and then breaks one thing.
import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { registerWithServer, type ControlClient } from '../../dist/control/client.js';
import { encodeFrame, FrameDecoder } from '../../dist/control/frames.js';
import {
  decodeClientMessage,
  decodeServerMessage,
  encodeMessage,
  type ChallengeMessage,
  type ServerMessage,
  type SessionParams,
} from '../../dist/control/messages.js';
import { clientProofMac, registrationTranscript } from '../../dist/control/transcript.js';
import { batchRootSignatureInput, buildMerkleTree, merkleLeaf, merklePath, merkleRootFromPath } from '../../dist/control/merkle.js';
import { deriveClientKeys } from '../../dist/control/client-keys.js';
import { wrapKeyBundle } from '../../dist/control/key-wrap.js';
import { generateIdentity, verifyServerSignature, type ServerIdentity } from '../../dist/keys/identity.js';
import { SealcastError } from '../../dist/errors.js';
import { rawConnect, startTestServer, type TestServer } from './helpers.js';

interface Scripted {
  server: Server;
  port: number;
  sockets: Set<Socket>;
}

let scripted: Scripted | null = null;
let harness: TestServer | null = null;
afterEach(async () => {
  if (scripted) {
    for (const socket of scripted.sockets) socket.destroy();
    await new Promise((resolve) => scripted!.server.close(resolve));
    scripted = null;
  }
  await harness?.close();
  harness = null;
});

const identity = generateIdentity();
const psk = randomBytes(32);
const dataKey = randomBytes(32);

function newSession(): SessionParams {
  return { sessionId: randomBytes(8), group: '239.255.77.40', port: 47100, suite: 'chacha20-poly1305', packetBytes: 1400 };
}

interface HelloSeen {
  clientId: string;
  clientNonce: Buffer;
}

/**
 * Builds the honest challenge for a hello: the client's transcript is leaf `position` of a batch
 * of `batchSize` transcripts (the others are other clients' registrations).
 */
function honestChallenge(hello: HelloSeen, session: SessionParams, batchSize: number, position: number, signer: ServerIdentity = identity): ChallengeMessage {
  const serverNonce = randomBytes(32);
  const transcript = registrationTranscript({
    clientId: hello.clientId,
    keyKind: 'psk',
    clientNonce: hello.clientNonce,
    serverNonce,
    serverPublicKey: signer.publicKey,
    session,
  });
  const leaves = Array.from({ length: batchSize }, (_, index) => (index === position ? merkleLeaf(transcript) : merkleLeaf(randomBytes(180))));
  const tree = buildMerkleTree(leaves);
  return {
    type: 'challenge',
    v: 1,
    serverNonce,
    serverPublicKey: signer.publicKey,
    session,
    signature: signer.sign(batchRootSignatureInput(tree.root, tree.depth)),
    leafIndex: position,
    path: merklePath(tree, position),
  };
}

/**
 * A server that answers each hello with `craft(hello)` (a challenge or raw bytes) and, if the
 * client sends a proof, welcomes it with the data key wrapped under its key (so an accepted
 * challenge leads to a completed registration).
 */
async function startScripted(craft: (hello: HelloSeen) => ChallengeMessage | Buffer): Promise<Scripted> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const decoder = new FrameDecoder();
    let session: SessionParams | null = null;
    let clientId = '';
    socket.on('data', (chunk: Buffer) => {
      for (const payload of decoder.push(chunk)) {
        const message = decodeClientMessage(payload);
        if (message.type === 'hello') {
          clientId = message.clientId;
          const answer = craft({ clientId: message.clientId, clientNonce: message.clientNonce });
          if (Buffer.isBuffer(answer)) {
            socket.write(answer);
          } else {
            session = answer.session;
            socket.write(encodeFrame(encodeMessage(answer)));
          }
        } else if (message.type === 'proof' && session) {
          const { macKey, wrapKey } = deriveClientKeys(psk, session.sessionId, clientId);
          macKey.fill(0);
          const key = wrapKeyBundle(wrapKey, { sessionId: session.sessionId, clientId, keyKind: 'psk' }, { epoch: 0, dataKey });
          wrapKey.fill(0);
          socket.write(encodeFrame(encodeMessage({ type: 'welcome', v: 1, key, streamOffset: 0 })));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

function register(port: number): Promise<ControlClient> {
  return registerWithServer({ host: '127.0.0.1', port, clientId: 'alice', psk, pinnedFingerprint: identity.fingerprint, timeoutMs: 5000 });
}

async function expectRefused(promise: Promise<ControlClient>, code: string, pattern: RegExp): Promise<void> {
  const outcome = await promise.then(
    (client) => {
      client.close();
      return null;
    },
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(SealcastError);
  expect((outcome as SealcastError).code).toBe(code);
  expect((outcome as SealcastError).message).toMatch(pattern);
}

describe('batch-signed challenges', () => {
  it('a client accepts its transcript at any position of a batch, with a valid path', async () => {
    for (const [batchSize, position] of [
      [1, 0],
      [2, 1],
      [5, 4],
      [64, 37],
      [300, 299],
    ]) {
      scripted = await startScripted((hello) => honestChallenge(hello, newSession(), batchSize, position));
      const client = await register(scripted.port);
      expect(client.initialKey.dataKey.equals(dataKey)).toBe(true);
      expect(client.serverTrust).toBe('pinned');
      client.initialKey.dataKey.fill(0);
      client.close();
      for (const socket of scripted.sockets) socket.destroy();
      await new Promise((resolve) => scripted!.server.close(resolve));
      scripted = null;
    }
  });

  it('refuses a wrong path entry with E_AUTH', async () => {
    scripted = await startScripted((hello) => {
      const challenge = honestChallenge(hello, newSession(), 16, 5);
      challenge.path = challenge.path.map((entry, index) => (index === 2 ? Buffer.from(entry.map((byte, at) => (at === 7 ? byte ^ 0x10 : byte))) : entry));
      return challenge;
    });
    await expectRefused(register(scripted.port), 'E_AUTH', /signature does not verify/);
  });

  it('refuses a wrong leaf index with E_AUTH', async () => {
    scripted = await startScripted((hello) => ({ ...honestChallenge(hello, newSession(), 16, 5), leafIndex: 4 }));
    await expectRefused(register(scripted.port), 'E_AUTH', /signature does not verify/);
  });

  it('refuses a tampered root signature with E_AUTH', async () => {
    scripted = await startScripted((hello) => {
      const challenge = honestChallenge(hello, newSession(), 8, 3);
      challenge.signature = Buffer.from(challenge.signature);
      challenge.signature[10] ^= 0x01;
      return challenge;
    });
    await expectRefused(register(scripted.port), 'E_AUTH', /signature does not verify/);
  });

  it('refuses a batch signed by another key than the pinned one with E_AUTH', async () => {
    const other = generateIdentity();
    scripted = await startScripted((hello) => ({ ...honestChallenge(hello, newSession(), 8, 3, other), serverPublicKey: identity.publicKey }));
    await expectRefused(register(scripted.port), 'E_AUTH', /signature does not verify/);
  });

  it('refuses a path over the bound, or an index the path cannot hold, with E_PROTOCOL', async () => {
    scripted = await startScripted((hello) => {
      const challenge = honestChallenge(hello, newSession(), 4, 1);
      return encodeFrame(encodeMessage({ ...challenge, path: [...challenge.path, ...Array(11).fill(randomBytes(32))] }));
    });
    await expectRefused(register(scripted.port), 'E_PROTOCOL', /challenge.path must be an array of at most 12 hashes/);
    for (const socket of scripted.sockets) socket.destroy();
    await new Promise((resolve) => scripted!.server.close(resolve));
    scripted = await startScripted((hello) => encodeFrame(encodeMessage({ ...honestChallenge(hello, newSession(), 4, 1), leafIndex: 4 })));
    await expectRefused(register(scripted.port), 'E_PROTOCOL', /challenge.leafIndex must be an integer between 0 and 3/);
  });

  it('refuses a batch whose leaf is the transcript of another session with E_AUTH', async () => {
    scripted = await startScripted((hello) => {
      const signedSession = newSession();
      const challenge = honestChallenge(hello, signedSession, 8, 2);
      // The signature and path are genuine for the transcript of another session; the client is
      // shown a session it was not signed for.
      return { ...challenge, session: { ...signedSession, sessionId: randomBytes(8) } };
    });
    await expectRefused(register(scripted.port), 'E_AUTH', /signature does not verify/);
  });

  it('a challenge recorded from the real server and replayed to another client fails with E_AUTH', async () => {
    harness = await startTestServer(['alice']);
    // An eavesdropper records the genuine challenge sent to one connection of "alice".
    const raw = await rawConnect(harness.server.address.port);
    const recorded = new Promise<Buffer>((resolve) => {
      const decoder = new FrameDecoder();
      raw.on('data', (chunk: Buffer) => {
        const [payload] = decoder.push(chunk);
        if (payload) resolve(Buffer.from(payload));
      });
    });
    raw.write(encodeFrame(encodeMessage({ type: 'hello', v: 1, clientId: 'alice', keyKind: 'psk', clientNonce: randomBytes(32) })));
    const replayed = encodeFrame(await recorded);
    raw.destroy();
    // It then poses as that server to a fresh client: the client's nonce is not in the signed batch.
    scripted = await startScripted(() => replayed);
    const outcome = await registerWithServer({
      host: '127.0.0.1',
      port: scripted.port,
      clientId: 'alice',
      psk: harness.psks.get('alice')!,
      pinnedFingerprint: harness.identity.fingerprint,
      timeoutMs: 5000,
    }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(outcome).toBeInstanceOf(SealcastError);
    expect((outcome as SealcastError).code).toBe('E_AUTH');
    expect((outcome as SealcastError).message).toMatch(/signature does not verify/);
  });
});

describe('batch signing in the control server', () => {
  it('many concurrent registrations all succeed, sharing signatures', async () => {
    const ids = Array.from({ length: 40 }, (_, index) => `client-${index}`);
    harness = await startTestServer(ids);
    const clients = await Promise.all(ids.map((id) => harness!.register(id)));
    for (const client of clients) expect(client.initialKey.dataKey.equals(harness.epoch.dataKey)).toBe(true);
    expect(harness.server.signatureStats().leaves).toBe(40);
    await expect.poll(() => harness!.server.holders().length, { timeout: 5000 }).toBe(40);
  });

  it('hellos read in the same event-loop turn share one signature, and each registration completes', async () => {
    const ids = Array.from({ length: 12 }, (_, index) => `client-${index}`);
    harness = await startTestServer(ids);
    const sockets = await Promise.all(ids.map(() => rawConnect(harness!.server.address.port)));
    await expect.poll(() => harness!.server.connectionCount(), { timeout: 5000 }).toBe(ids.length);
    const inboxes = sockets.map((socket) => {
      const decoder = new FrameDecoder();
      const messages: ServerMessage[] = [];
      socket.on('data', (chunk: Buffer) => {
        for (const payload of decoder.push(chunk)) messages.push(decodeServerMessage(payload));
      });
      return messages;
    });
    const clientNonces = ids.map(() => randomBytes(32));
    // All hellos are written in one synchronous loop: the server (in this process) reads them all
    // in its next turn, so they are signed together.
    ids.forEach((id, index) => sockets[index].write(encodeFrame(encodeMessage({ type: 'hello', v: 1, clientId: id, keyKind: 'psk', clientNonce: clientNonces[index] }))));
    await expect.poll(() => inboxes.every((inbox) => inbox.length === 1), { timeout: 5000 }).toBe(true);
    const challenges = inboxes.map((inbox) => inbox[0] as ChallengeMessage);
    expect(harness.server.signatureStats()).toEqual({ batches: 1, leaves: ids.length, largestBatch: ids.length });
    expect(new Set(challenges.map((challenge) => challenge.signature.toString('hex'))).size).toBe(1);
    expect(new Set(challenges.map((challenge) => challenge.leafIndex)).size).toBe(ids.length);
    challenges.forEach((challenge, index) => {
      expect(challenge.path).toHaveLength(4);
      const transcript = registrationTranscript({
        clientId: ids[index],
        keyKind: 'psk',
        clientNonce: clientNonces[index],
        serverNonce: challenge.serverNonce,
        serverPublicKey: challenge.serverPublicKey,
        session: challenge.session,
      });
      const root = merkleRootFromPath(merkleLeaf(transcript), challenge.leafIndex, challenge.path);
      expect(verifyServerSignature(harness!.identity.publicKey, batchRootSignatureInput(root, challenge.path.length), challenge.signature)).toBe(true);
      const { macKey, wrapKey } = deriveClientKeys(harness!.psks.get(ids[index])!, challenge.session.sessionId, ids[index]);
      wrapKey.fill(0);
      sockets[index].write(encodeFrame(encodeMessage({ type: 'proof', v: 1, mac: clientProofMac(macKey, transcript) })));
      macKey.fill(0);
    });
    await expect.poll(() => inboxes.every((inbox) => inbox[1]?.type === 'welcome'), { timeout: 5000 }).toBe(true);
    for (const socket of sockets) socket.destroy();
  });

  it('a lone registration is signed on its own, in a batch of one', async () => {
    harness = await startTestServer(['alice'], { signBatchLeavesMax: 1 });
    await harness.register('alice');
    await harness.register('alice');
    expect(harness.server.signatureStats()).toEqual({ batches: 2, leaves: 2, largestBatch: 1 });
  });

  it('refuses a batch bound outside 1..4096', async () => {
    await expect(startTestServer(['alice'], { signBatchLeavesMax: 0 })).rejects.toThrow(RangeError);
    await expect(startTestServer(['alice'], { signBatchLeavesMax: 4097 })).rejects.toThrow(/signBatchLeavesMax/);
  });
});
