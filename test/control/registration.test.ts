import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { registerWithServer, type DeliveredKey } from '../../dist/control/client.js';
import { encodeFrame, FrameDecoder } from '../../dist/control/frames.js';
import { decodeServerMessage, encodeMessage, type ChallengeMessage, type ServerMessage } from '../../dist/control/messages.js';
import { clientProofMac, registrationTranscript } from '../../dist/control/transcript.js';
import { batchRootSignatureInput, merkleLeaf } from '../../dist/control/merkle.js';
import { unwrapKeyBundle, wrapKeyBundle } from '../../dist/control/key-wrap.js';
import { deriveKey } from '../../dist/keys/kdf.js';
import { generateIdentity } from '../../dist/keys/identity.js';
import { SealcastError } from '../../dist/errors.js';
import { rawConnect, startTestServer, type TestServer, describeEachTransport } from './helpers.js';

let harness: TestServer | null = null;
afterEach(async () => {
  await harness?.close();
  harness = null;
});

async function expectAuthError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(SealcastError);
  expect((error as SealcastError).code).toBe('E_AUTH');
  expect((error as SealcastError).message).toMatch(pattern);
}

/** A minimal scripted client speaking raw frames, for tests that need to misbehave on purpose. */
class RawClient {
  private readonly decoder = new FrameDecoder();
  private readonly queue: ServerMessage[] = [];
  private waiting: ((message: ServerMessage | null) => void) | null = null;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const payload of this.decoder.push(chunk)) this.deliver(decodeServerMessage(payload));
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.(null);
    });
    socket.on('error', () => {});
  }

  private deliver(message: ServerMessage): void {
    if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = null;
      waiting(message);
    } else this.queue.push(message);
  }

  send(message: Parameters<typeof encodeMessage>[0]): void {
    this.socket.write(encodeFrame(encodeMessage(message)));
  }

  next(): Promise<ServerMessage | null> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }
}

describeEachTransport('registration and key delivery', (transport) => {
  it('is carried by the transport it was asked for', async () => {
    harness = await startTestServer(['alice']);
    expect(harness.server.transport).toBe(transport);
  });

  it('registers three clients, each unwrapping the same data key, and reports them as holders', async () => {
    harness = await startTestServer(['alice', 'bob', 'carol']);
    const clients = await Promise.all(['alice', 'bob', 'carol'].map((id) => harness!.register(id)));
    await harness.server.waitForHolders(3, 5000);
    for (const client of clients) {
      expect(client.initialKey.epoch).toBe(0);
      expect(client.initialKey.dataKey.equals(harness.epoch.dataKey)).toBe(true);
      expect(client.session.sessionId.equals(harness.sessionId)).toBe(true);
      expect(client.session).toMatchObject({ group: '239.255.77.10', port: 47000, suite: 'chacha20-poly1305', packetBytes: 1400 });
      expect(client.serverFingerprint).toBe(harness.identity.fingerprint);
      expect(client.serverTrust).toBe('pinned');
    }
    expect(harness.server.holders().map((holder) => holder.clientId).sort()).toEqual(['alice', 'bob', 'carol']);
    expect(harness.logger.lines.filter((line) => line.includes('registered'))).toHaveLength(3);
  });

  it('pushes a new epoch (data key and update key) to every registered client', async () => {
    harness = await startTestServer(['alice', 'bob', 'carol']);
    const clients = await Promise.all(['alice', 'bob', 'carol'].map((id) => harness!.register(id)));
    const next = { epoch: 1, dataKey: randomBytes(32), updateKey: randomBytes(32) };
    harness.setEpoch(next);
    const received = clients.map((client) => new Promise<DeliveredKey>((resolve) => client.on('key', resolve)));
    expect(harness.server.pushEpoch()).toBe(3);
    for (const key of await Promise.all(received)) {
      expect(key.epoch).toBe(1);
      expect(key.dataKey.equals(next.dataKey)).toBe(true);
      expect(key.updateKey?.equals(next.updateKey)).toBe(true);
    }
    // Each client confirms the new epoch.
    await expect.poll(() => harness!.server.holders().every((holder) => holder.epoch === 1), { timeout: 5000 }).toBe(true);
    expect(harness.server.pushEpoch()).toBe(0);
  });

  it('a subscriber removed while connected gets no key for the next epoch and is disconnected with E_AUTH', async () => {
    harness = await startTestServer(['alice', 'bob']);
    const alice = await harness.register('alice');
    const bob = await harness.register('bob');
    const aliceClosed = new Promise<SealcastError | undefined>((resolve) => alice.on('close', resolve));
    const aliceKeys: DeliveredKey[] = [];
    alice.on('key', (key) => aliceKeys.push(key));
    const bobKey = new Promise<DeliveredKey>((resolve) => bob.on('key', resolve));
    harness.registry.removeSubscriber('alice');
    harness.setEpoch({ epoch: 1, dataKey: randomBytes(32) });
    expect(harness.server.pushEpoch()).toBe(1);
    expect((await bobKey).dataKey.equals(harness.epoch.dataKey)).toBe(true);
    const reason = await aliceClosed;
    expect(reason?.code).toBe('E_AUTH');
    expect(reason?.message).toMatch(/"alice" was removed/);
    expect(aliceKeys).toHaveLength(0);
  });

  it('refuses an unknown id, a wrong PSK and a removed subscriber with E_AUTH, and keeps serving', async () => {
    harness = await startTestServer(['alice', 'gone']);
    await expectAuthError(harness.register('mallory'), /does not know the subscriber id "mallory"/);
    await expectAuthError(harness.register('alice', { psk: randomBytes(32) }), /rejected the registration of "alice": wrong pre-shared key/);
    harness.registry.removeSubscriber('gone');
    await expectAuthError(harness.register('gone'), /"gone" was removed/);
    const good = await harness.register('alice');
    expect(good.initialKey.dataKey.equals(harness.epoch.dataKey)).toBe(true);
    const warnings = harness.logger.lines.filter((line) => line.startsWith('warn'));
    expect(warnings.some((line) => line.includes('unknown subscriber id "mallory"'))).toBe(true);
    expect(warnings.some((line) => line.includes('wrong pre-shared key'))).toBe(true);
    expect(warnings.some((line) => line.includes('"gone" was removed'))).toBe(true);
    await expect.poll(() => harness!.server.holders().map((holder) => holder.clientId), { timeout: 5000 }).toEqual(['alice']);
  });

  it('refuses a server whose fingerprint differs from the pinned one', async () => {
    harness = await startTestServer(['alice']);
    await expectAuthError(
      harness.register('alice', { pinnedFingerprint: generateIdentity().fingerprint }),
      /presented fingerprint SHA256:.*not the pinned SHA256:/,
    );
  });

  it('trusts on first use, records the server, then refuses a changed fingerprint naming the file', async () => {
    harness = await startTestServer(['alice']);
    const knownServersFile = join(harness.tempDir, 'config', 'known_servers');
    const warnings: string[] = [];
    const logger = { info: () => {}, warn: (message: string) => warnings.push(message) };
    const first = await harness.register('alice', { pinnedFingerprint: undefined, knownServersFile, logger });
    expect(first.serverTrust).toBe('recorded');
    expect(warnings.join('\n')).toMatch(/first contact .* trusting its fingerprint SHA256:/);
    expect(readFileSync(knownServersFile, 'utf8')).toBe(`127.0.0.1:${harness.server.address.port} ${harness.identity.fingerprint}\n`);
    expect(statSync(knownServersFile).mode & 0o777).toBe(0o600);
    const second = await harness.register('alice', { pinnedFingerprint: undefined, knownServersFile, logger });
    expect(second.serverTrust).toBe('known');
    expect(warnings).toHaveLength(1);
    writeFileSync(knownServersFile, `127.0.0.1:${harness.server.address.port} ${generateIdentity().fingerprint}\n`);
    await expectAuthError(
      harness.register('alice', { pinnedFingerprint: undefined, knownServersFile, logger }),
      new RegExp(`records SHA256:.*${knownServersFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    );
  });

  it('a recorded client proof replayed on a new connection fails', async () => {
    harness = await startTestServer(['alice']);
    const port = harness.server.address.port;
    const psk = harness.psks.get('alice')!;
    const clientNonce = randomBytes(32);
    const hello = { type: 'hello' as const, v: 1 as const, clientId: 'alice', keyKind: 'psk' as const, clientNonce };

    // The genuine exchange, as an eavesdropper records it.
    const first = new RawClient(await rawConnect(port));
    first.send(hello);
    const challenge = (await first.next()) as ChallengeMessage;
    expect(challenge.type).toBe('challenge');
    const macKey = deriveKey('registrationMacKey', psk, challenge.session.sessionId, ['alice']);
    const transcript = registrationTranscript({
      clientId: 'alice',
      keyKind: 'psk',
      clientNonce,
      serverNonce: challenge.serverNonce,
      serverPublicKey: challenge.serverPublicKey,
      session: challenge.session,
    });
    const recordedProof = clientProofMac(macKey, transcript);
    first.send({ type: 'proof', v: 1, mac: recordedProof });
    expect((await first.next())?.type).toBe('welcome');
    first.socket.destroy();

    // The replay: same hello, same proof. The server's fresh nonce makes the proof worthless.
    const second = new RawClient(await rawConnect(port));
    second.send(hello);
    const secondChallenge = (await second.next()) as ChallengeMessage;
    expect(secondChallenge.serverNonce.equals(challenge.serverNonce)).toBe(false);
    second.send({ type: 'proof', v: 1, mac: recordedProof });
    const answer = await second.next();
    expect(answer).toMatchObject({ type: 'error', reason: 'bad-proof' });
    expect(await second.next()).toBeNull();
    expect(harness.logger.lines.some((line) => line.includes('did not verify'))).toBe(true);
  });

  it('rejects a challenge whose signature does not cover what was sent', async () => {
    const identity = generateIdentity();
    const fake = createServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        for (const payload of decoder.push(chunk)) {
          const hello = JSON.parse(String(payload));
          const session = { sessionId: randomBytes(8), group: '239.1.1.1', port: 5000, suite: 'chacha20-poly1305' as const, packetBytes: 1400 };
          const serverNonce = randomBytes(32);
          const transcript = registrationTranscript({
            clientId: hello.clientId,
            keyKind: 'psk',
            clientNonce: Buffer.from(hello.clientNonce, 'base64'),
            serverNonce,
            serverPublicKey: identity.publicKey,
            session,
          });
          // A batch of one: the root is the leaf itself and the path is empty.
          const signature = identity.sign(batchRootSignatureInput(merkleLeaf(transcript), 0));
          // A man in the middle redirects the stream to another group after the signature was made.
          const tampered = { ...session, group: '239.9.9.9' };
          socket.write(
            encodeFrame(encodeMessage({ type: 'challenge', v: 1, serverNonce, serverPublicKey: identity.publicKey, session: tampered, signature, leafIndex: 0, path: [] })),
          );
        }
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    try {
      const port = (fake.address() as { port: number }).port;
      await expectAuthError(
        registerWithServer({ host: '127.0.0.1', port, clientId: 'alice', psk: randomBytes(32), pinnedFingerprint: identity.fingerprint, timeoutMs: 5000 }),
        /signature does not verify/,
      );
    } finally {
      await new Promise((resolve) => fake.close(resolve));
    }
  });

  it('a newer registration of the same id replaces the older connection', async () => {
    harness = await startTestServer(['alice']);
    const older = await harness.register('alice');
    const closed = new Promise<SealcastError | undefined>((resolve) => older.on('close', resolve));
    await harness.register('alice');
    const reason = await closed;
    expect(reason?.code).toBe('E_CLOSED');
    await expect.poll(() => harness!.server.holders().length, { timeout: 5000 }).toBe(1);
    expect(harness.server.connectionCount()).toBe(1);
  });

  it('waitForHolders times out with E_TIMEOUT naming the count', async () => {
    harness = await startTestServer(['alice']);
    await harness.register('alice');
    await expect(harness.server.waitForHolders(2, 200)).rejects.toThrow(/only 1 of 2 subscribers held the key/);
  });
});

describe('key wrap', () => {
  const sessionId = randomBytes(8);
  const wrapKey = randomBytes(32);
  const bundle = { epoch: 7, dataKey: randomBytes(32) };
  const context = { sessionId, clientId: 'alice', keyKind: 'psk' as const };

  it('round-trips and uses a fresh nonce for every wrap', () => {
    const a = wrapKeyBundle(wrapKey, context, bundle);
    const b = wrapKeyBundle(wrapKey, context, bundle);
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(unwrapKeyBundle(wrapKey, context, a).dataKey.equals(bundle.dataKey)).toBe(true);
  });

  it('fails with E_AUTH for another client, session, epoch or key', () => {
    const wrapped = wrapKeyBundle(wrapKey, context, bundle);
    const attempts = [
      () => unwrapKeyBundle(wrapKey, { ...context, clientId: 'bob' }, wrapped),
      () => unwrapKeyBundle(wrapKey, { ...context, sessionId: randomBytes(8) }, wrapped),
      () => unwrapKeyBundle(wrapKey, context, { ...wrapped, epoch: 8 }),
      () => unwrapKeyBundle(randomBytes(32), context, wrapped),
    ];
    for (const attempt of attempts) {
      expect(attempt).toThrow(SealcastError);
      expect(attempt).toThrow(/failed authentication/);
    }
  });
});

describe('client key derivation', () => {
  it('equals deriveKey for both labels (the fast path is plain HKDF-SHA256)', async () => {
    const { deriveClientKeys } = await import('../../dist/control/client-keys.js');
    for (let i = 0; i < 20; i++) {
      const psk = randomBytes(32);
      const sessionId = randomBytes(8);
      const clientId = `client-${i}`;
      const keys = deriveClientKeys(psk, sessionId, clientId);
      expect(keys.macKey.equals(deriveKey('registrationMacKey', psk, sessionId, [clientId]))).toBe(true);
      expect(keys.wrapKey.equals(deriveKey('clientWrapKey', psk, sessionId, [clientId]))).toBe(true);
      expect(keys.macKey.equals(keys.wrapKey)).toBe(false);
    }
  });
});

describeEachTransport('server shutdown', () => {
  it('rejects pending waits with E_CLOSED and tells registered clients goodbye', async () => {
    const local = await startTestServer(['alice']);
    try {
      const client = await local.register('alice');
      const ended = new Promise<SealcastError | undefined>((resolve) => client.on('close', resolve));
      const outcome = local.server.waitForHolders(5, 10_000).then(
        () => null,
        (error: unknown) => error,
      );
      await local.server.close();
      expect(await outcome).toMatchObject({ code: 'E_CLOSED' });
      expect(await ended).toBeUndefined();
    } finally {
      await local.close();
    }
  });
});
