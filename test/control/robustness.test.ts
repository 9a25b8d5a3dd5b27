// The server must survive whatever a connection sends: every bad input ends that connection with
// a logged reason, and a good client registers normally afterwards.

import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { encodeFrame } from '../../dist/control/frames.js';
import { encodeMessage } from '../../dist/control/messages.js';
import { frame, rawConnect, startTestServer, waitForServerClose, type TestServer, describeEachTransport } from './helpers.js';

let harness: TestServer | null = null;
afterEach(async () => {
  await harness?.close();
  harness = null;
});

function hello(clientId = 'alice'): Buffer {
  return encodeFrame(encodeMessage({ type: 'hello', v: 1, clientId, keyKind: 'psk', clientNonce: randomBytes(32) }));
}

async function expectClosedWithLog(bytes: Buffer, logPattern: RegExp, options: { end?: boolean } = {}): Promise<Buffer> {
  const before = harness!.logger.lines.length;
  const socket = await rawConnect(harness!.server.address.port);
  const closed = waitForServerClose(socket, 5000);
  socket.write(bytes);
  if (options.end) socket.end();
  const received = await closed;
  await expect.poll(() => harness!.logger.lines.slice(before).join('\n'), { timeout: 2000 }).toMatch(logPattern);
  return received;
}

async function expectGoodClientServed(): Promise<void> {
  const client = await harness!.register('alice');
  expect(client.initialKey.dataKey.equals(harness!.epoch.dataKey)).toBe(true);
  client.close();
}

describeEachTransport('control server robustness', () => {
  it('closes a connection that sends an oversized frame header, with a logged reason', async () => {
    harness = await startTestServer(['alice']);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1 << 20);
    const received = await expectClosedWithLog(header, /frame of 1048576 bytes exceeds the maximum of 65536 bytes/);
    expect(received.toString()).toContain('"reason":"protocol"');
    await expectGoodClientServed();
  });

  it('closes connections that send garbage, invalid JSON, unknown types or messages out of order', async () => {
    harness = await startTestServer(['alice']);
    await expectClosedWithLog(frame('not json at all'), /frame is not valid JSON/);
    await expectClosedWithLog(frame('{"type":"launch","v":1}'), /unknown client message type "launch"/);
    await expectClosedWithLog(frame('{"type":"hello","v":1}'), /hello lacks the field "clientId"/);
    await expectClosedWithLog(frame(JSON.stringify({ type: 'proof', v: 1, mac: randomBytes(32).toString('base64') })), /unexpected "proof" message while awaiting hello/);
    await expectClosedWithLog(frame('{"type":"receipt","v":1}'), /reserved/);
    await expectClosedWithLog(Buffer.concat([hello(), hello()]), /unexpected "hello" message while its challenge is being made/);
    await expectClosedWithLog(frame(JSON.stringify({ type: 'hello', v: 1, clientId: 'alice', keyKind: 'cert', clientNonce: randomBytes(32).toString('base64') })), /key kind cert is not served/);
    await expectGoodClientServed();
  });

  it('closes a connection that sends nothing, or half a frame, by the handshake deadline (slowloris)', async () => {
    harness = await startTestServer(['alice'], { handshakeTimeoutMs: 300 });
    await expectClosedWithLog(Buffer.alloc(0), /registration not completed within 300 ms/);
    await expectClosedWithLog(hello().subarray(0, 20), /registration not completed within 300 ms/);
    // A hello without the proof also runs into the deadline.
    await expectClosedWithLog(hello(), /registration not completed within 300 ms/);
    await expectGoodClientServed();
  });

  it('bounds the number of connections and refuses the excess with a logged reason', async () => {
    harness = await startTestServer(['alice'], { connectionsMax: 2, handshakeTimeoutMs: 5000 });
    const idle = [await rawConnect(harness.server.address.port), await rawConnect(harness.server.address.port)];
    await expect.poll(() => harness!.server.connectionCount(), { timeout: 2000 }).toBe(2);
    const refused = await expectClosedWithLog(Buffer.alloc(0), /refused .*: 2 connections already open/);
    expect(refused.toString()).toContain('"reason":"busy"');
    for (const socket of idle) socket.destroy();
    await expect.poll(() => harness!.server.connectionCount(), { timeout: 2000 }).toBe(0);
    await expectGoodClientServed();
  });

  it('a flood of refused connections is closed, each within the flush bound, and the server carries on', async () => {
    harness = await startTestServer(['alice'], { connectionsMax: 1, handshakeTimeoutMs: 5000 });
    const idle = await rawConnect(harness.server.address.port);
    await expect.poll(() => harness!.server.connectionCount(), { timeout: 2000 }).toBe(1);
    const flood = await Promise.all(Array.from({ length: 150 }, () => rawConnect(harness!.server.address.port)));
    const received = await Promise.all(flood.map((socket) => waitForServerClose(socket, 5000)));
    // Every refused socket was closed by the server; those past the draining bound got no message.
    expect(received.some((bytes) => bytes.toString().includes('"reason":"busy"'))).toBe(true);
    expect(harness.server.connectionCount()).toBe(1);
    idle.destroy();
    await expect.poll(() => harness!.server.connectionCount(), { timeout: 2000 }).toBe(0);
    await expectGoodClientServed();
  });

  it('random, truncated and mutated byte streams never crash the server; a good client is served after each batch', async () => {
    harness = await startTestServer(['alice'], { handshakeTimeoutMs: 1000 });
    const valid = [
      hello(),
      hello('nobody'),
      encodeFrame(encodeMessage({ type: 'proof', v: 1, mac: randomBytes(32) })),
      encodeFrame(encodeMessage({ type: 'keyAck', v: 1, epoch: 0 })),
      encodeFrame(encodeMessage({ type: 'bye', v: 1 })),
    ];
    const stream = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((bytes) => Buffer.from(bytes)),
      fc.tuple(fc.constantFrom(...valid), fc.nat()).map(([bytes, cut]) => bytes.subarray(0, cut % (bytes.byteLength + 1))),
      fc
        .tuple(fc.constantFrom(...valid), fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }))
        .map(([bytes, edits]) => {
          const copy = Buffer.from(bytes);
          for (const { at, value } of edits) copy[at % copy.byteLength] = value;
          return copy;
        }),
      fc.array(fc.constantFrom(...valid), { minLength: 1, maxLength: 4 }).map((frames) => Buffer.concat(frames)),
    );
    await fc.assert(
      fc.asyncProperty(stream, async (bytes) => {
        const socket = await rawConnect(harness!.server.address.port);
        const closed = waitForServerClose(socket, 5000);
        socket.write(bytes);
        socket.end();
        // Either the server closes the connection for a reason, or the peer's end closes it;
        // both must happen promptly and never take the server down.
        await closed;
      }),
      { numRuns: 60 },
    );
    await expect.poll(() => harness!.server.connectionCount(), { timeout: 3000 }).toBe(0);
    await expectGoodClientServed();
    // Every closed connection was logged with a reason.
    expect(harness.logger.lines.filter((line) => line.includes('control: closed')).length).toBeGreaterThanOrEqual(60);
  });
});
