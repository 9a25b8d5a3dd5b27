// Repair requests over the control connection: a registered client's `nack` reaches the data
// plane (onRepairRequest) with its ranges, the bytes the sender no longer holds come back to that
// client as a `repair` message, a `nack` before registration is a protocol error, and one client
// flooding requests is held to its rate without losing its connection.

import { afterEach, describe, expect, it } from 'vitest';
import { SealcastError } from '../../dist/errors.js';
import type { StreamRange } from '../../dist/control/messages.js';
import { frame, rawConnect, startTestServer, waitForServerClose, type TestServer, describeEachTransport } from './helpers.js';

let harness: TestServer | null = null;
afterEach(async () => {
  await harness?.close();
  harness = null;
});

function until<T>(check: () => T | undefined, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const value = check();
      if (value !== undefined) resolve(value);
      else if (Date.now() - started > timeoutMs) reject(new Error('condition not met in time'));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

describeEachTransport('repair requests over the control connection', () => {
  it('passes a registered client\'s ranges to the data plane and returns what is gone to that client only', async () => {
    const requests: Array<{ clientId: string; ranges: StreamRange[] }> = [];
    harness = await startTestServer(['alice', 'bob'], {
      onRepairRequest: (clientId, ranges) => {
        requests.push({ clientId, ranges });
        // Pretend everything below byte 1000 left the repair window.
        return ranges.filter((range) => range.from < 1000).map((range) => ({ from: range.from, to: Math.min(range.to, 1000) }));
      },
    });
    const alice = await harness.register('alice');
    const bob = await harness.register('bob');
    const gone: Record<string, StreamRange[][]> = { alice: [], bob: [] };
    alice.on('repairUnavailable', (ranges) => gone.alice.push(ranges));
    bob.on('repairUnavailable', (ranges) => gone.bob.push(ranges));

    expect(alice.requestRepair([{ from: 5000, to: 6400 }])).toBe(true);
    expect(bob.requestRepair([
      { from: 200, to: 300 },
      { from: 900, to: 2000 },
      { from: 4000, to: Number.MAX_SAFE_INTEGER },
    ])).toBe(true);
    await until(() => (requests.length === 2 && gone.bob.length === 1 ? true : undefined));
    expect(requests).toContainEqual({ clientId: 'alice', ranges: [{ from: 5000, to: 6400 }] });
    expect(requests).toContainEqual({
      clientId: 'bob',
      ranges: [
        { from: 200, to: 300 },
        { from: 900, to: 2000 },
        { from: 4000, to: Number.MAX_SAFE_INTEGER },
      ],
    });
    expect(gone.bob).toEqual([
      [
        { from: 200, to: 300 },
        { from: 900, to: 1000 },
      ],
    ]);
    expect(gone.alice).toEqual([]);
  });

  it("passes a registered client's slowDown to the data plane, and refuses one before registration", async () => {
    const slowed: string[] = [];
    harness = await startTestServer(['alice'], { onSlowDown: (clientId) => slowed.push(clientId) });
    const alice = await harness.register('alice');
    expect(alice.requestSlowDown()).toBe(true);
    await until(() => (slowed.length === 1 ? true : undefined));
    expect(slowed).toEqual(['alice']);
    const socket = await rawConnect(harness.server.address.port);
    const closed = waitForServerClose(socket);
    socket.write(frame(JSON.stringify({ type: 'slowDown', v: 1 })));
    expect((await closed).toString('utf8')).toContain('unexpected \\"slowDown\\"');
    alice.close();
    expect(alice.requestSlowDown()).toBe(false);
  });

  it('passes progress reports to the data plane and says when a registered client is gone', async () => {
    const events: string[] = [];
    harness = await startTestServer(['alice'], {
      onProgress: (clientId, offset) => events.push(`${clientId} at ${offset}`),
      onClientGone: (clientId) => events.push(`${clientId} gone`),
    });
    const alice = await harness.register('alice');
    expect(() => alice.reportProgress(-1)).toThrow(RangeError);
    expect(alice.reportProgress(4096)).toBe(true);
    await until(() => (events.length === 1 ? true : undefined));
    alice.close();
    await until(() => (events.length === 2 ? true : undefined));
    expect(events).toEqual(['alice at 4096', 'alice gone']);
    expect(alice.reportProgress(8192)).toBe(false);
  });

  it('tells each client how far the stream had come when it registered', async () => {
    let sent = 0;
    harness = await startTestServer(['early', 'late'], { streamOffset: () => sent });
    const early = await harness.register('early');
    sent = 123_456_789;
    const late = await harness.register('late');
    expect(early.joinedAtOffset).toBe(0);
    expect(late.joinedAtOffset).toBe(123_456_789);
  });

  it('checks ranges at the client API and refuses to ask once the connection ended', async () => {
    harness = await startTestServer(['alice']);
    const alice = await harness.register('alice');
    expect(() => alice.requestRepair([])).toThrow(TypeError);
    expect(() => alice.requestRepair([{ from: 10, to: 10 }])).toThrow(RangeError);
    expect(() => alice.requestRepair([{ from: 10, to: 20 }, { from: 5, to: 30 }])).toThrow(/ascending/);
    expect(() => alice.requestRepair(Array.from({ length: 65 }, (_, index) => ({ from: 2 * index, to: 2 * index + 1 })))).toThrow(TypeError);
    alice.close();
    expect(alice.requestRepair([{ from: 0, to: 1 }])).toBe(false);
  });

  it('without a data plane every requested range is answered as unavailable', async () => {
    harness = await startTestServer(['alice']);
    const alice = await harness.register('alice');
    const gone: StreamRange[][] = [];
    alice.on('repairUnavailable', (ranges) => gone.push(ranges));
    alice.requestRepair([{ from: 0, to: 10 }]);
    await until(() => (gone.length > 0 ? true : undefined));
    expect(gone).toEqual([[{ from: 0, to: 10 }]]);
  });

  it('closes a connection that sends a nack before registering, and keeps serving others', async () => {
    harness = await startTestServer(['alice']);
    const socket = await rawConnect(harness.server.address.port);
    const closed = waitForServerClose(socket);
    socket.write(frame(JSON.stringify({ type: 'nack', v: 1, ranges: [{ from: 0, to: 1 }] })));
    const reply = (await closed).toString('utf8');
    expect(reply).toContain('"reason":"protocol"');
    expect(reply).toContain('unexpected \\"nack\\"');
    const alice = await harness.register('alice');
    expect(alice.epoch).toBe(0);
  });

  it('holds a flooding client to its request rate without closing it', async () => {
    let calls = 0;
    harness = await startTestServer(['alice'], {
      onRepairRequest: () => {
        calls++;
        return [];
      },
    });
    const alice = await harness.register('alice');
    let closedWith: SealcastError | undefined | null = null;
    alice.on('close', (error) => (closedWith = error));
    for (let index = 0; index < 2000; index++) alice.requestRepair([{ from: index, to: index + 1 }]);
    await until(() => (calls >= 100 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The burst allowance is 200 and the rate 1 000/s: far fewer than the 2 000 sent got through.
    expect(calls).toBeLessThan(1000);
    expect(closedWith).toBeNull();
    expect(harness.logger.lines.some((line) => /repair requests faster than 1000\/s/.test(line))).toBe(true);
    expect(alice.requestRepair([{ from: 0, to: 1 }])).toBe(true);
  });
});
