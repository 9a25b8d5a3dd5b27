// The addon's receive watch (native/udp_watch.cc) and BatchSocket.watchReadable: it wakes the
// caller whenever datagrams are queued on a socket node:dgram created (loopback, TTL 0), node:dgram
// itself then reads none of them, it keeps waking while any are left, it is silent after close(),
// and it gives back the descriptor it duplicated. Bad arguments are refused by the TypeScript
// wrapper and again by the C++ layer.

import { randomBytes, randomInt } from 'node:crypto';
import type dgram from 'node:dgram';
import { closeSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SealcastError } from '../../dist/errors.js';
import { openBatchSocket, socketFd, type BatchSocket, type ReadWatch } from '../../dist/pipeline/batch-io.js';
import { openReceiverSocket, openSenderSocket } from '../../dist/pipeline/multicast.js';
import { describeTitle, probeNative } from './availability.js';

const native = probeNative();
type WatchConstructor = new (fd: unknown, onReadable: unknown) => ReadWatch;
const binding = native.binding as unknown as { UdpReadWatch: WatchConstructor; UDP_BATCH_SUPPORTED: boolean } | null;
const skip = binding === null || !binding.UDP_BATCH_SUPPORTED;

const STRIDE_BYTES = 2048;
const SLOTS = 64;

const sockets: dgram.Socket[] = [];
const watches: ReadWatch[] = [];
afterEach(() => {
  for (const watch of watches.splice(0)) watch.close();
  for (const socket of sockets.splice(0)) {
    try {
      socket.close();
    } catch {
      // Closed by the test already.
    }
  }
});

async function socketPair() {
  const group = { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
  const { socket: receiver } = await openReceiverSocket({ group, interfaceAddress: '127.0.0.1' });
  const sender = await openSenderSocket({ group, interfaceAddress: '127.0.0.1', ttl: 0 });
  sockets.push(receiver, sender);
  const io = openBatchSocket(receiver, 'native', 'receive')!;
  return { receiver, sender, io };
}

/** Sends through the sender socket, which is connected to the group. */
function sendAll(sender: dgram.Socket, datagrams: Buffer[]): Promise<void> {
  return Promise.all(datagrams.map((datagram) => new Promise<void>((resolve, reject) => sender.send(datagram, (error) => (error ? reject(error) : resolve()))))).then(
    () => undefined,
  );
}

/** Reads everything queued into `received` with batched calls; returns how many datagrams it read. */
function drain(io: BatchSocket, received: Buffer[]): number {
  const slab = Buffer.alloc(STRIDE_BYTES * SLOTS);
  const lengths = new Uint32Array(SLOTS);
  let total = 0;
  for (let round = 0; round < 100; round++) {
    const count = io.receive(slab, STRIDE_BYTES, lengths, 0, SLOTS);
    for (let slot = 0; slot < count; slot++) received.push(Buffer.from(slab.subarray(slot * STRIDE_BYTES, slot * STRIDE_BYTES + lengths[slot])));
    total += count;
    if (count < SLOTS) break;
  }
  return total;
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

describe(describeTitle('the receive watch', native), () => {
  it.skipIf(skip)('wakes the caller for queued datagrams and leaves every one of them to the batched receive', async () => {
    const { receiver, sender, io } = await socketPair();
    expect(io.canWatch).toBe(true);
    const datagrams = Array.from({ length: 200 }, (_, index) => randomBytes(1 + ((index * 37) % 1400)));
    const received: Buffer[] = [];
    const statuses: number[] = [];
    let nodeMessages = 0;
    receiver.on('message', () => nodeMessages++);
    watches.push(
      io.watchReadable(receiver, (status) => {
        statuses.push(status);
        drain(io, received);
      }),
    );
    await sendAll(sender, datagrams);
    await until(() => received.length === datagrams.length, 'every datagram');
    // Loopback keeps the order of one sender's datagrams.
    expect(received.map((datagram) => datagram.toString('hex'))).toEqual(datagrams.map((datagram) => datagram.toString('hex')));
    expect(nodeMessages).toBe(0);
    expect(statuses.length).toBeGreaterThanOrEqual(1);
    expect(statuses.length).toBeLessThanOrEqual(datagrams.length);
    expect(statuses.every((status) => status === 0)).toBe(true);
  });

  it.skipIf(skip)('wakes again while datagrams stay queued, and never after close()', async () => {
    const { receiver, sender, io } = await socketPair();
    let wakeUps = 0;
    const watch = io.watchReadable(receiver, () => {
      wakeUps++;
      // Reads nothing: the queue stays non-empty, so the poll must fire again on the next turn.
      if (wakeUps === 3) watch.close();
    });
    watches.push(watch);
    await sendAll(sender, [randomBytes(100)]);
    await until(() => wakeUps >= 3, 'three wake-ups');
    expect(watch.closed).toBe(true);
    await sendAll(sender, [randomBytes(100), randomBytes(100)]);
    await sleep(100);
    expect(wakeUps).toBe(3);
    // The datagrams are still queued for whoever reads next.
    const received: Buffer[] = [];
    expect(drain(io, received)).toBe(3);
  });

  it.skipIf(skip || process.platform !== 'linux')('holds one duplicate descriptor while it watches and gives it back on close()', async () => {
    const { receiver, io } = await socketPair();
    const before = openDescriptors();
    const watch = io.watchReadable(receiver, () => {});
    watches.push(watch);
    expect(openDescriptors()).toBe(before + 1);
    watch.close();
    watch.close();
    expect(watch.closed).toBe(true);
    expect(openDescriptors()).toBe(before);
  });

  it.skipIf(skip)('refuses bad arguments in TypeScript', async () => {
    const { receiver, sender, io } = await socketPair();
    expect(() => io.watchReadable(receiver, 'later' as unknown as () => void)).toThrow(TypeError);
    expect(() => io.watchReadable(receiver, 'later' as unknown as () => void)).toThrow(/onReadable must be a function/);
    // Another socket than the one the BatchSocket reads: its reads must not be taken over.
    let error: unknown;
    try {
      io.watchReadable(sender, () => {});
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SealcastError);
    expect((error as SealcastError).code).toBe('E_IO');
    expect((error as Error).message).toMatch(/not the one this BatchSocket uses/);
  });

  it.skipIf(skip)('refuses bad arguments again in C++', async () => {
    const { receiver } = await socketPair();
    const Watch = binding!.UdpReadWatch;
    const fd = socketFd(receiver)!;
    expect(() => new Watch('3', () => {})).toThrow(TypeError);
    expect(() => new Watch('3', () => {})).toThrow(/fd must be an integer/);
    expect(() => new Watch(-1, () => {})).toThrow(RangeError);
    expect(() => new Watch(1.5, () => {})).toThrow(/fd must be an integer between/);
    expect(() => new Watch(fd, 5)).toThrow(/onReadable must be a function/);
    // A stream socket is a socket, but not one the watch is for.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const serverFd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      expect(() => new Watch(serverFd, () => {})).toThrow(TypeError);
      expect(() => new Watch(serverFd, () => {})).toThrow(/not a datagram socket/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    // Not a socket at all, and a descriptor that is not open: the system's answer, as E_IO.
    const path = join(tmpdir(), `sealcast-watch-${process.pid}-${randomInt(1e9)}`);
    const fileFd = openSync(path, 'w');
    try {
      expect(() => new Watch(fileFd, () => {})).toThrow(/cannot watch descriptor \d+: Socket operation on non-socket/);
    } finally {
      closeSync(fileFd);
      unlinkSync(path);
    }
    let error: unknown;
    try {
      new Watch(fileFd, () => {});
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).toBe('E_IO');
    expect((error as Error).message).toMatch(/cannot watch descriptor \d+: Bad file descriptor/);
  });
});
