// Captures every byte of control traffic through a TCP proxy on loopback and checks that no
// secret appears in it, in raw, hex, base64 or base64url form; the server's log is checked too.

import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { registerWithServer, type ControlClient, type DeliveredKey } from '../../dist/control/client.js';
import { deriveKey } from '../../dist/keys/kdf.js';
import { startTestServer, type TestServer } from './helpers.js';

interface Capture {
  proxy: Server;
  port: number;
  bytes: Buffer[];
  sockets: Set<Socket>;
}

async function startCapturingProxy(targetPort: number): Promise<Capture> {
  const bytes: Buffer[] = [];
  const sockets = new Set<Socket>();
  const proxy = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port: targetPort });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    inbound.on('data', (chunk: Buffer) => {
      bytes.push(Buffer.from(chunk));
      outbound.write(chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      bytes.push(Buffer.from(chunk));
      inbound.write(chunk);
    });
    inbound.on('end', () => outbound.end());
    outbound.on('end', () => inbound.end());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return { proxy, port: (proxy.address() as { port: number }).port, bytes, sockets };
}

function forms(secret: Buffer): string[] {
  return [secret.toString('hex'), secret.toString('hex').toUpperCase(), secret.toString('base64'), secret.toString('base64url')];
}

/** True when `haystack` holds the secret or any 8-byte window of it, raw or encoded. */
function leaks(haystack: Buffer, secret: Buffer): boolean {
  const text = haystack.toString('latin1');
  for (let start = 0; start + 8 <= secret.byteLength; start += 4) {
    if (haystack.includes(secret.subarray(start, start + 8))) return true;
  }
  return forms(secret).some((form) => text.includes(form.slice(0, 16)));
}

let harness: TestServer | null = null;
let capture: Capture | null = null;
afterEach(async () => {
  for (const socket of capture?.sockets ?? []) socket.destroy();
  await new Promise((resolve) => (capture ? capture.proxy.close(resolve) : resolve(null)));
  capture = null;
  await harness?.close();
  harness = null;
});

describe('control traffic capture', () => {
  it('carries no PSK, data key, update key or derived key, in any encoding', async () => {
    const ids = ['alice', 'bob', 'carol'];
    harness = await startTestServer(ids);
    capture = await startCapturingProxy(harness.server.address.port);
    const clients: ControlClient[] = [];
    for (const clientId of ids) {
      clients.push(
        await registerWithServer({
          host: '127.0.0.1',
          port: capture.port,
          clientId,
          psk: harness.psks.get(clientId)!,
          pinnedFingerprint: harness.identity.fingerprint,
          timeoutMs: 5000,
        }),
      );
    }
    // A wrong-PSK attempt is captured too: its proof must not leak the key it was made with.
    const wrongPsk = randomBytes(32);
    await expect(
      registerWithServer({ host: '127.0.0.1', port: capture.port, clientId: 'alice', psk: wrongPsk, pinnedFingerprint: harness.identity.fingerprint, timeoutMs: 5000 }),
    ).rejects.toThrow(/wrong pre-shared key/);
    const firstEpoch = harness.epoch;
    const next = { epoch: 1, dataKey: randomBytes(32), updateKey: randomBytes(32) };
    harness.setEpoch(next);
    const received = clients.map((client) => new Promise<DeliveredKey>((resolve) => client.on('key', resolve)));
    harness.server.pushEpoch();
    const keys = await Promise.all(received);
    expect(keys.every((key) => key.dataKey.equals(next.dataKey))).toBe(true);
    await expect.poll(() => harness!.server.holders().every((holder) => holder.epoch === 1), { timeout: 5000 }).toBe(true);

    const traffic = Buffer.concat(capture.bytes);
    // The capture really holds the exchange (so the test can fail): the wrapped keys are in it.
    expect(traffic.toString('latin1')).toContain('"type":"welcome"');
    expect(traffic.toString('latin1').match(/"type":"key"/g)).toHaveLength(3);

    const secrets: Array<[string, Buffer]> = [
      ['data key 0', Buffer.from(firstEpoch.dataKey)],
      ['data key 1', next.dataKey],
      ['update key 1', next.updateKey],
      ['wrong psk', wrongPsk],
    ];
    for (const id of ids) {
      const psk = harness.psks.get(id)!;
      secrets.push([`psk ${id}`, psk]);
      secrets.push([`wrap key ${id}`, deriveKey('clientWrapKey', psk, harness.sessionId, [id])]);
      secrets.push([`mac key ${id}`, deriveKey('registrationMacKey', psk, harness.sessionId, [id])]);
    }
    const log = Buffer.from(harness.logger.lines.join('\n'));
    for (const [name, secret] of secrets) {
      expect(leaks(traffic, secret), `${name} in the traffic`).toBe(false);
      expect(leaks(log, secret), `${name} in the server log`).toBe(false);
    }
    // The check itself finds a secret that is there.
    expect(leaks(Buffer.concat([traffic, Buffer.from(next.dataKey.toString('base64'))]), next.dataKey)).toBe(true);
  });
});
