// The control transports, each on its own: the same behaviour is asked of the native epoll
// listener and of node:net (frames whole and in order however the bytes arrive, bad headers,
// peer ends, sends with end and destroy, a peer that does not read, the connection bound). The
// native binding's own argument checks and the address parser are tested at the end.

import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder } from '../../dist/control/frames.js';
import type { ControlLink, ControlTransport, LinkEvents, TransportOptions } from '../../dist/control/link.js';
import { startNetTransport } from '../../dist/control/net-transport.js';
import { addressBytes, controlListenerBinding, startNativeTransport } from '../../dist/control/native-transport.js';
import { controlTransports } from './helpers.js';

interface Recorded {
  link: ControlLink;
  frames: Buffer[];
  frameErrors: string[];
  lost: string[];
}

interface Harness {
  transport: ControlTransport;
  links: Recorded[];
  warnings: string[];
  /** Resolves with the next link the transport accepts. */
  nextLink(): Promise<Recorded>;
}

let current: Harness | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await current?.transport.close();
  current = null;
});

async function start(kind: 'native' | 'net', overrides: Partial<TransportOptions> = {}, refuse = false): Promise<Harness> {
  const links: Recorded[] = [];
  const waiting: Array<(recorded: Recorded) => void> = [];
  const warnings: string[] = [];
  let claimed = 0;
  const options: TransportOptions = {
    host: '127.0.0.1',
    port: 0,
    backlog: 64,
    linksMax: 16,
    frameBytesMax: 4096,
    pendingBytesMax: 64 * 1024,
    coalesceMs: 0,
    warn: (message) => warnings.push(message),
    ...overrides,
  };
  const accept = (link: ControlLink): LinkEvents | null => {
    const recorded: Recorded = { link, frames: [], frameErrors: [], lost: [] };
    links.push(recorded);
    const waiter = waiting.shift();
    if (waiter) {
      claimed++;
      waiter(recorded);
    }
    if (refuse) {
      link.send(encodeFrame(Buffer.from('busy')));
      link.end();
      return null;
    }
    return {
      onFrame: (payload) => {
        recorded.frames.push(Buffer.from(payload));
        return true;
      },
      onFrameError: (message) => {
        recorded.frameErrors.push(message);
        link.end();
      },
      onLost: (text) => recorded.lost.push(text),
    };
  };
  let transport: ControlTransport;
  if (kind === 'native') {
    const started = startNativeTransport(options, accept);
    if (typeof started === 'string') throw new Error(started);
    transport = started;
  } else {
    transport = await startNetTransport(options, accept);
  }
  current = {
    transport,
    links,
    warnings,
    // A link may be accepted before the test asks for it: links are handed out in order.
    nextLink: () => (claimed < links.length ? Promise.resolve(links[claimed++]) : new Promise((resolve) => waiting.push(resolve))),
  };
  return current;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything the socket receives until the server closes it (or the timeout). */
function received(socket: Socket, timeoutMs = 3000): Promise<{ bytes: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => resolve({ bytes: Buffer.concat(chunks), closed: false }), timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), closed: true });
    });
  });
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const transports = controlTransports();

describe.each(transports)('control transport: %s', (kind) => {
  it('delivers frames whole and in order, whether they arrive a byte at a time or many to a write', async () => {
    const harness = await start(kind);
    const socket = await dial(harness.transport.address.port);
    const link = await harness.nextLink();
    const payloads = Array.from({ length: 40 }, (_, index) => Buffer.alloc(1 + ((index * 97) % 4000), index));
    const bytes = Buffer.concat(payloads.map((payload) => encodeFrame(payload, 4096)));
    // The first ten frames a byte at a time, the rest in one write.
    const split = bytes.indexOf(encodeFrame(payloads[10], 4096));
    for (let at = 0; at < split; at++) {
      socket.write(bytes.subarray(at, at + 1));
      if (at % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    socket.write(bytes.subarray(split));
    await until(() => link.frames.length === payloads.length);
    expect(link.frames.map((frame) => frame.toString('hex'))).toEqual(payloads.map((payload) => payload.toString('hex')));
    expect(link.frameErrors).toEqual([]);
  });

  it('with coalescing, every frame of many connections still arrives, and answers go out', async () => {
    const harness = await start(kind, { coalesceMs: 5 });
    const sockets = await Promise.all(Array.from({ length: 8 }, () => dial(harness.transport.address.port)));
    const links = await Promise.all(sockets.map(() => harness.nextLink()));
    for (let round = 0; round < 5; round++) {
      for (const [index, socket] of sockets.entries()) socket.write(encodeFrame(Buffer.from(`${index}:${round}`)));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await until(() => links.every((link) => link.frames.length === 5));
    const answers = sockets.map((socket) => received(socket));
    for (const link of links) {
      link.link.send(encodeFrame(Buffer.from('done')));
      link.link.end();
    }
    for (const answer of await Promise.all(answers)) expect(answer.bytes.equals(encodeFrame(Buffer.from('done')))).toBe(true);
    // Which socket a link belongs to is not known here; each link heard one socket's frames in order.
    for (const link of links) {
      const index = link.frames[0].toString().split(':')[0];
      expect(link.frames.map(String)).toEqual([0, 1, 2, 3, 4].map((round) => `${index}:${round}`));
    }
  });

  it('reports an empty frame and an oversized header as frame errors and hears nothing after them', async () => {
    const harness = await start(kind);
    for (const [header, message] of [
      [Buffer.from([0, 0, 0, 0]), 'empty frame (length 0)'],
      [Buffer.from([0, 0, 0x10, 1]), 'frame of 4097 bytes exceeds the maximum of 4096 bytes'],
    ] as const) {
      const socket = await dial(harness.transport.address.port);
      const link = await harness.nextLink();
      const outcome = received(socket);
      socket.write(Buffer.concat([encodeFrame(Buffer.from('first')), header, encodeFrame(Buffer.from('after'))]));
      expect((await outcome).closed).toBe(true);
      expect(link.frames.map(String)).toEqual(['first']);
      expect(link.frameErrors).toEqual([message]);
    }
  });

  it('reports a peer that ends, once', async () => {
    const harness = await start(kind);
    const socket = await dial(harness.transport.address.port);
    const link = await harness.nextLink();
    socket.end(encodeFrame(Buffer.from('last words')));
    await until(() => link.lost.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(link.frames.map(String)).toEqual(['last words']);
    expect(link.lost).toEqual(['peer closed the connection']);
  });

  it('sends what it was given before it ends, and destroy closes at once', async () => {
    const harness = await start(kind);
    const socket = await dial(harness.transport.address.port);
    const link = await harness.nextLink();
    const outcome = received(socket);
    const big = Buffer.alloc(48 * 1024, 7);
    link.link.send(encodeFrame(Buffer.from('hello'), 64 * 1024));
    link.link.send(encodeFrame(big, 64 * 1024));
    link.link.end();
    link.link.send(encodeFrame(Buffer.from('ignored after end'), 64 * 1024));
    const { bytes, closed } = await outcome;
    expect(closed).toBe(true);
    expect(bytes.equals(Buffer.concat([encodeFrame(Buffer.from('hello')), encodeFrame(big, 64 * 1024)]))).toBe(true);

    const second = await dial(harness.transport.address.port);
    const secondLink = await harness.nextLink();
    const secondOutcome = received(second);
    secondLink.link.destroy();
    expect((await secondOutcome).closed).toBe(true);
    expect(secondLink.lost).toEqual([]);
  });

  it('frames text payloads in UTF-8 itself, and refuses one past the frame limit', async () => {
    const harness = await start(kind);
    const socket = await dial(harness.transport.address.port);
    const link = await harness.nextLink();
    const outcome = received(socket);
    expect(() => link.link.sendText('x'.repeat(4097))).toThrow(/frame payload of 4097 bytes exceeds the maximum of 4096 bytes/);
    link.link.sendText('{"text":"héllo ✓"}');
    link.link.send(encodeFrame(Buffer.from('binary')));
    link.link.end();
    const { bytes } = await outcome;
    expect(bytes.equals(Buffer.concat([encodeFrame(Buffer.from('{"text":"héllo ✓"}', 'utf8')), encodeFrame(Buffer.from('binary'))]))).toBe(true);
  });

  it('ends a connection whose peer does not read once its output passes pendingBytesMax', async () => {
    const harness = await start(kind, { pendingBytesMax: 64 * 1024 });
    const socket = await dial(harness.transport.address.port);
    socket.pause();
    const link = await harness.nextLink();
    const chunk = encodeFrame(Buffer.alloc(4000, 1));
    // Kernel buffers on loopback hold a few MiB; 64 MiB is far past them and the bound.
    for (let sent = 0; sent < 16_000 && link.lost.length === 0; sent++) {
      link.link.send(chunk);
      if (sent % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => link.lost.length > 0);
    expect(link.lost[0]).toMatch(/client is not reading/);
  });

  it('a connection the acceptor refuses still gets its last message before the close', async () => {
    const harness = await start(kind, { linksMax: 2 }, true);
    const first = await dial(harness.transport.address.port);
    const firstOutcome = received(first);
    const refusal = await firstOutcome;
    expect(refusal.closed).toBe(true);
    expect(refusal.bytes.equals(encodeFrame(Buffer.from('busy')))).toBe(true);
    expect(harness.links).toHaveLength(1);
  });

  it('holds at most linksMax connections at once', async () => {
    const harness = await start(kind, { linksMax: 2 });
    const open = [await dial(harness.transport.address.port), await dial(harness.transport.address.port)];
    await until(() => harness.links.length === 2);
    const third = await dial(harness.transport.address.port);
    expect((await received(third)).closed).toBe(true);
    expect(harness.links).toHaveLength(2);
    for (const socket of open) expect(socket.destroyed).toBe(false);
  });
});

describe('native framing against the JS frame decoder', () => {
  it.skipIf(!transports.includes('native'))('gives the same frames and the same error for random streams in random pieces', async () => {
    // Each run opens a connection; the bound leaves room for those still closing.
    const harness = await start('native', { linksMax: 128 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 0, maxLength: 12 }),
        fc.option(fc.constantFrom(Buffer.from([0, 0, 0, 0]), Buffer.from([0, 0, 0x10, 1]), Buffer.from([0xff, 0xff, 0xff, 0xff]))),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        async (payloads, badHeader, pieceSizes) => {
          const stream = Buffer.concat([...payloads.map((payload) => encodeFrame(payload, 4096)), ...(badHeader ? [badHeader] : [])]);
          const expectedFrames: string[] = [];
          let expectedError: string | null = null;
          const decoder = new FrameDecoder(4096);
          const decoded: Buffer[] = [];
          try {
            decoder.pushInto(stream, decoded);
          } catch (error) {
            expectedError = (error as Error).message;
          }
          for (const frame of decoded) expectedFrames.push(frame.toString('hex'));
          const socket = await dial(harness.transport.address.port);
          const link = await harness.nextLink();
          let at = 0;
          for (let piece = 0; at < stream.byteLength; piece++) {
            const size = pieceSizes[piece % pieceSizes.length];
            socket.write(stream.subarray(at, at + size));
            at += size;
            if (piece % 4 === 3) await new Promise((resolve) => setTimeout(resolve, 1));
          }
          await until(() => link.frames.length === expectedFrames.length && link.frameErrors.length === (expectedError === null ? 0 : 1));
          expect(link.frames.map((frame) => frame.toString('hex'))).toEqual(expectedFrames);
          expect(link.frameErrors).toEqual(expectedError === null ? [] : [expectedError]);
          socket.destroy();
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('native control listener binding', () => {
  const binding = controlListenerBinding();
  const available = typeof binding !== 'string';

  it.skipIf(!available)('refuses bad constructor arguments with TypeError or RangeError naming the value', () => {
    if (typeof binding === 'string') return;
    const slab = new Uint8Array(1 << 20);
    const make = (...args: unknown[]) => () => new (binding.ControlListener as unknown as new (...values: unknown[]) => unknown)(...args);
    const good = [4, Uint8Array.of(127, 0, 0, 1), 0, 16, 8, 4096, 65536, slab, () => {}, 0];
    const withArg = (index: number, value: unknown) => good.map((item, at) => (at === index ? value : item));
    expect(make(...withArg(0, 5))).toThrow(RangeError);
    expect(make(...withArg(1, Uint8Array.of(127, 0, 0)))).toThrow(/address must hold 4 bytes/);
    expect(make(...withArg(1, 'localhost'))).toThrow(TypeError);
    expect(make(...withArg(2, 70000))).toThrow(/port/);
    expect(make(...withArg(4, 0))).toThrow(/connectionsMax/);
    expect(make(...withArg(5, 1 << 30))).toThrow(/frameBytesMax/);
    expect(make(...withArg(7, new Uint8Array(binding.ControlListener.minimumSlabBytes(4096) - 1)))).toThrow(/eventSlab must hold/);
    expect(() => (make(...withArg(7, new Uint8Array(binding.ControlListener.minimumSlabBytes(4096))))() as { close(): void }).close()).not.toThrow();
    expect(make(...withArg(8, 'not a function'))).toThrow(/onEvents must be a function/);
    expect(make(...withArg(9, 101))).toThrow(/coalesceMs/);
  });

  it.skipIf(!available)('refuses a bad send batch as a whole, and a closed listener says E_CLOSED', () => {
    if (typeof binding === 'string') return;
    const listener = new binding.ControlListener(4, Uint8Array.of(127, 0, 0, 1), 0, 16, 8, 4096, 65536, new Uint8Array(1 << 20), () => {}, 0);
    try {
      const record = (id: number, flags: number, length: number, extra = 0) => {
        const bytes = Buffer.alloc(12 + length + extra);
        bytes.writeUInt32LE(id, 0);
        bytes.writeUInt32LE(flags, 4);
        bytes.writeUInt32LE(length, 8);
        return bytes;
      };
      const dropped = new Uint32Array(8);
      expect(() => listener.flush(record(1, 0x80, 0), 1, dropped)).toThrow(/unknown flags/);
      expect(() => listener.flush(record(1, 0, 10).subarray(0, 15), 1, dropped)).toThrow(/run past the end/);
      expect(() => listener.flush(record(1, 4, 3), 1, dropped)).toThrow(/destroy record carries no bytes/);
      expect(() => listener.flush(record(1, 0, 0), 2, dropped)).toThrow(/runs past the end/);
      // Records for connections that do not exist are skipped, not errors.
      expect(listener.flush(record(12345, 0, 3), 1, dropped)).toBe(0);
      expect(() => listener.flush(new Uint8Array(0), 0, new Float64Array(2) as unknown as Uint32Array)).toThrow(TypeError);
    } finally {
      listener.close();
    }
    expect(() => listener.flush(new Uint8Array(0), 0, new Uint32Array(2))).toThrow(expect.objectContaining({ code: 'E_CLOSED' }));
  });

  it.skipIf(!available)('an address already in use is an E_IO error that names the address', async () => {
    const first = await start('native');
    const again = () => startNativeTransport({ ...optionsFor(first.transport.address.port) }, () => null);
    expect(again).toThrow(expect.objectContaining({ code: 'E_IO', message: expect.stringMatching(/127\.0\.0\.1:\d+: bind: Address already in use/) }));
  });

  it.skipIf(!available)('a worker thread that is terminated with a listener open ends cleanly', async () => {
    const moduleUrl = new URL('../../dist/control/native-transport.js', import.meta.url).href;
    const worker = new Worker(
      `const { startNativeTransport } = await import(${JSON.stringify(moduleUrl)});
       const { parentPort } = await import('node:worker_threads');
       const transport = startNativeTransport({ host: '127.0.0.1', port: 0, backlog: 16, linksMax: 4, frameBytesMax: 4096, pendingBytesMax: 65536, coalesceMs: 1, warn: () => {} }, () => null);
       parentPort.postMessage(typeof transport === 'string' ? transport : transport.address.port);`,
      { eval: true },
    );
    const port = await new Promise<unknown>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    expect(typeof port).toBe('number');
    // The listener keeps the worker's loop alive; terminating it must close the listener.
    expect(await worker.terminate()).toBe(1);
    const socket = connect({ host: '127.0.0.1', port: port as number });
    sockets.push(socket);
    await expect(new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('parses numeric IPv4 and IPv6 addresses and nothing else', () => {
    expect(addressBytes('127.0.0.1')).toEqual({ family: 4, bytes: Uint8Array.of(127, 0, 0, 1) });
    const v6 = (text: string) => {
      const parsed = addressBytes(text);
      return parsed === null ? null : Buffer.from(parsed.bytes).toString('hex');
    };
    expect(v6('::1')).toBe('00000000000000000000000000000001');
    expect(v6('::')).toBe('00000000000000000000000000000000');
    expect(v6('fe80::1:2')).toBe('fe800000000000000000000000010002');
    expect(v6('1:2:3:4:5:6:7:8')).toBe('00010002000300040005000600070008');
    expect(v6('::ffff:1.2.3.4')).toBe('00000000000000000000ffff01020304');
    expect(v6('64:ff9b::192.0.2.33')).toBe('0064ff9b0000000000000000c0000221');
    for (const bad of ['localhost', '', '1.2.3', 'fe80::1%eth0', '1::2::3', ':::', '12345::1']) expect(addressBytes(bad)).toBeNull();
  });
});

function optionsFor(port: number): TransportOptions {
  return { host: '127.0.0.1', port, backlog: 16, linksMax: 4, frameBytesMax: 4096, pendingBytesMax: 65536, coalesceMs: 0, warn: () => {} };
}

it('runs the transport tests on every transport this machine has', () => {
  expect(transports).toContain('net');
  if (process.platform === 'linux' && process.env.SEALCAST_REQUIRE_NATIVE === '1') expect(transports).toContain('native');
});
