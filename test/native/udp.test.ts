// The addon's batched UDP calls (native/udp.cc) and their TS wrapper (src/pipeline/batch-io.ts):
// datagrams cut from a slab by its layout arrive intact through sendmmsg/recvmmsg on sockets that
// node:dgram created (loopback, TTL 0); every bad argument is refused with a clear error by the
// wrapper and again by the C++ layer; system errors come back as E_IO with the errno text.

import { randomBytes, randomInt } from 'node:crypto';
import type dgram from 'node:dgram';
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SealcastError } from '../../dist/errors.js';
import { BatchSocket, groupTarget, ioModeFromEnv, openBatchSocket, socketFd } from '../../dist/pipeline/batch-io.js';
import { openReceiverSocket, openSenderSocket } from '../../dist/pipeline/multicast.js';
import { describeTitle, probeNative } from './availability.js';

const native = probeNative();
const binding = native.binding as unknown as {
  UDP_BATCH_SUPPORTED: boolean;
  UDP_BATCH_MAX: number;
  udpCheckSocket(fd: unknown): void;
  udpSend(...args: unknown[]): number;
  udpReceive(...args: unknown[]): number;
} | null;
const TAG_BYTES = 16;

function randomGroup() {
  return { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
}

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) {
    try {
      socket.close();
    } catch {
      // Closed by the test already.
    }
  }
});

async function socketPair() {
  const group = randomGroup();
  const { socket: receiver } = await openReceiverSocket({ group, interfaceAddress: '127.0.0.1' });
  const sender = await openSenderSocket({ group, interfaceAddress: '127.0.0.1', ttl: 0 });
  sockets.push(receiver, sender);
  return { group, receiver, sender };
}

/** A slab with datagrams of the given (aad, payload) sizes at scattered offsets, filled with random bytes. */
function slabOf(sizes: Array<[number, number]>) {
  const layout = new Uint32Array(sizes.length * 3);
  let offset = 7;
  sizes.forEach(([aad, payload], slot) => {
    layout.set([offset, aad, payload], slot * 3);
    offset += aad + payload + TAG_BYTES + 13;
  });
  const slab = randomBytes(offset);
  const datagram = (slot: number) => slab.subarray(layout[slot * 3], layout[slot * 3] + layout[slot * 3 + 1] + layout[slot * 3 + 2] + TAG_BYTES);
  return { slab, layout, datagram };
}

/** Waits for node:dgram's first 'message' (the wake-up), then drains the rest with one batched call per round. */
function drainAfterWakeUp(receiver: dgram.Socket, io: BatchSocket, stride: number, slots: number, expected: number) {
  const slab = Buffer.alloc(stride * slots);
  const lengths = new Uint32Array(slots);
  return new Promise<{ first: Buffer; drained: Buffer[]; lengths: number[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no datagram arrived within 5 s')), 5_000);
    receiver.once('message', (first: Buffer) => {
      const drained: Buffer[] = [];
      const seen: number[] = [];
      const deadline = Date.now() + 2_000;
      const poll = () => {
        const received = io.receive(slab, stride, lengths, 0, Math.min(slots, io.batchMax));
        for (let slot = 0; slot < received; slot++) {
          seen.push(lengths[slot]);
          drained.push(Buffer.from(slab.subarray(slot * stride, slot * stride + Math.min(lengths[slot], stride))));
        }
        if (drained.length + 1 >= expected || Date.now() > deadline) {
          clearTimeout(timer);
          resolve({ first, drained, lengths: seen });
        } else {
          setTimeout(poll, 5);
        }
      };
      poll();
    });
  });
}

describe(describeTitle('batched UDP I/O', native), () => {
  const skip = binding === null;

  it.skipIf(skip)('is offered on Linux with a bounded batch', () => {
    expect(binding!.UDP_BATCH_SUPPORTED).toBe(process.platform === 'linux');
    expect(binding!.UDP_BATCH_MAX).toBeGreaterThanOrEqual(64);
    expect(binding!.UDP_BATCH_MAX).toBeLessThanOrEqual(1024);
  });

  it.skipIf(skip)('finds the descriptor of a bound dgram socket and opens the batched path, or none in dgram mode', async () => {
    const { sender } = await socketPair();
    const fd = socketFd(sender);
    expect(Number.isInteger(fd)).toBe(true);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(openBatchSocket(sender, 'dgram')).toBeNull();
    expect(openBatchSocket(sender, 'auto')).toBeInstanceOf(BatchSocket);
    expect(openBatchSocket(sender, 'native')).toBeInstanceOf(BatchSocket);
  });

  it.skipIf(skip)('sends slab slots by their layout and receives them intact, in order, after the wake-up datagram', async () => {
    const { group, receiver, sender } = await socketPair();
    const sizes: Array<[number, number]> = [[36, 1348], [36, 1], [36, 0], [36, 900], [0, 1], [36, 8920]];
    const { slab, layout, datagram } = slabOf(sizes);
    const receiveIo = openBatchSocket(receiver, 'native')!;
    const sendIo = openBatchSocket(sender, 'native')!;
    const drained = drainAfterWakeUp(receiver, receiveIo, 65_536, 16, sizes.length);
    // Slot 0 goes alone, then the rest in one call from a non-zero first slot.
    expect(sendIo.send(slab, layout, 0, 1, groupTarget(group))).toBe(1);
    expect(sendIo.send(slab, layout, 1, sizes.length - 1, groupTarget(group))).toBe(sizes.length - 1);
    const { first, drained: rest, lengths } = await drained;
    const all = [first, ...rest];
    expect(all.length).toBe(sizes.length);
    all.forEach((received, slot) => expect(received.equals(datagram(slot))).toBe(true));
    expect(lengths).toEqual(rest.map((received) => received.byteLength));
  });

  it.skipIf(skip)('back-to-back datagrams of one size (the sender\'s slabs) arrive as the same separate datagrams, GSO or not', async () => {
    for (const segment of [true, false]) {
      const { group, receiver, sender } = await socketPair();
      // 100 full 1400-byte slots back to back, then a short one, as a sealed slab lays them out.
      const slots = 101;
      const layout = new Uint32Array(slots * 3);
      for (let slot = 0; slot < slots; slot++) layout.set([slot * 1400, 36, slot === slots - 1 ? 500 : 1348], slot * 3);
      const slab = randomBytes(slots * 1400);
      const expected = (slot: number) => slab.subarray(slot * 1400, slot * 1400 + 36 + layout[slot * 3 + 2] + TAG_BYTES);
      const sendIo = new BatchSocket(binding as never, socketFd(sender)!, { segment });
      const drained = drainAfterWakeUp(receiver, openBatchSocket(receiver, 'native')!, 2048, 128, slots);
      let sent = 0;
      while (sent < slots) sent += sendIo.send(slab, layout, sent, Math.min(64, slots - sent), groupTarget(group));
      const { first, drained: rest } = await drained;
      const all = [first, ...rest];
      expect(all.length).toBe(slots);
      all.forEach((received, slot) => expect(received.equals(expected(slot))).toBe(true));
      // Loopback takes UDP GSO, so the socket keeps using it.
      expect(sendIo.segmenting).toBe(segment);
    }
  });

  it.skipIf(skip)('with receive-side GRO, a GSO send arrives as one message whose datagram size is reported, cut exactly where it was sent', async () => {
    const { group, receiver, sender } = await socketPair();
    const receiveIo = openBatchSocket(receiver, 'native', 'receive')!;
    expect(receiveIo.gro).toBe(false);
    // This kernel (Linux >= 5.0) has receive-side GRO; a kernel without it would answer false.
    expect(receiveIo.enableGro()).toBe(true);
    expect(receiveIo.gro).toBe(true);
    const slots = 40;
    const layout = new Uint32Array(slots * 3);
    for (let slot = 0; slot < slots; slot++) layout.set([slot * 1400, 36, slot === slots - 1 ? 500 : 1348], slot * 3);
    const slab = randomBytes(slots * 1400);
    const wire = Buffer.concat(Array.from({ length: slots }, (_, slot) => slab.subarray(slot * 1400, slot * 1400 + 36 + layout[slot * 3 + 2] + TAG_BYTES)));
    const stride = 65_536;
    const receiveSlab = Buffer.alloc(stride * 4);
    const lengths = new Uint32Array(4);
    const segments = new Uint32Array(4);
    // Woken by the receive watch, as the receiver is: node:dgram reads nothing, so both GSO sends
    // of the run below reach the batched receive whole, each with its datagram size.
    let count = 0;
    const received = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('two messages did not arrive within 5 s')), 5_000);
      const watch = receiveIo.watchReadable(receiver, () => {
        count += receiveIo.receive(receiveSlab, stride, lengths, count, 4 - count, segments);
        if (count >= 2) {
          watch.close();
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const sendIo = new BatchSocket(binding as never, socketFd(sender)!, { segment: true });
    expect(sendIo.send(slab, layout, 0, slots, groupTarget(group))).toBe(slots);
    expect(sendIo.send(slab, layout, 0, slots, groupTarget(group))).toBe(slots);
    await received;
    expect(count).toBe(2);
    for (const slot of [0, 1]) {
      expect(lengths[slot]).toBe(wire.byteLength);
      expect(segments[slot]).toBe(1400);
      expect(receiveSlab.subarray(slot * stride, slot * stride + wire.byteLength).equals(wire)).toBe(true);
    }
    expect(() => receiveIo.receive(receiveSlab, stride, lengths, 0, 4, new Uint32Array(2))).toThrow(/segments must be a Uint32Array/);
  });

  it.skipIf(skip)('reports a datagram longer than its slot as stride + 1 (truncated)', async () => {
    const { group, receiver, sender } = await socketPair();
    const { slab, layout } = slabOf([[36, 10], [36, 400], [36, 20]]);
    const receiveIo = openBatchSocket(receiver, 'native')!;
    const drained = drainAfterWakeUp(receiver, receiveIo, 128, 8, 3);
    expect(openBatchSocket(sender, 'native')!.send(slab, layout, 0, 3, groupTarget(group))).toBe(3);
    const { lengths } = await drained;
    expect(lengths).toEqual([128 + 1, 36 + 20 + TAG_BYTES]);
  });

  it.skipIf(skip)('returns 0 at once when nothing is queued', async () => {
    const { receiver } = await socketPair();
    const io = openBatchSocket(receiver, 'native')!;
    expect(io.receive(Buffer.alloc(4096), 2048, new Uint32Array(2), 0, 2)).toBe(0);
  });

  it.skipIf(skip)('the wrapper refuses bad arguments naming them', async () => {
    const { group, sender } = await socketPair();
    const io = openBatchSocket(sender, 'native')!;
    const { slab, layout } = slabOf([[36, 100], [36, 100]]);
    const target = groupTarget(group);
    expect(() => io.send([] as unknown as Uint8Array, layout, 0, 1, target)).toThrow(/slab must be a Uint8Array/);
    expect(() => io.send(slab, new Uint16Array(6) as unknown as Uint32Array, 0, 1, target)).toThrow(/layout must be a Uint32Array/);
    expect(() => io.send(slab, layout, -1, 1, target)).toThrow(RangeError);
    expect(() => io.send(slab, layout, 0, 1.5, target)).toThrow(/count/);
    expect(() => io.send(slab, layout, 1, 2, target)).toThrow(/exceeds the layout/);
    expect(() => io.send(slab, new Uint32Array(3 * 1024), 0, io.batchMax + 1, target)).toThrow(/at most/);
    expect(() => io.receive(Buffer.alloc(100), 0, new Uint32Array(1), 0, 1)).toThrow(/stride/);
    expect(() => io.receive(Buffer.alloc(100), 65_537, new Uint32Array(1), 0, 1)).toThrow(/stride/);
    expect(() => io.receive(Buffer.alloc(100), 50, new Uint32Array(1), 0, 2)).toThrow(/exceeds the slab/);
    expect(() => io.receive(Buffer.alloc(100), 50, [0, 0] as unknown as Uint32Array, 0, 1)).toThrow(/lengths must be a Uint32Array/);
    expect(() => groupTarget({ address: 'not-an-ip', port: 1 })).toThrow(TypeError);
  });

  it.skipIf(skip)('the C++ layer asserts the same facts when called directly', async () => {
    const { group, sender } = await socketPair();
    const fd = socketFd(sender)!;
    const { slab, layout } = slabOf([[36, 100]]);
    const address = groupTarget(group).addressNumber;
    const send = (...args: unknown[]) => binding!.udpSend(...args);
    expect(() => send(-1, slab, layout, 0, 1, address, group.port)).toThrow(/fd/);
    expect(() => send(fd, 'slab', layout, 0, 1, address, group.port)).toThrow(TypeError);
    expect(() => send(fd, slab, layout, 0, binding!.UDP_BATCH_MAX + 1, address, group.port)).toThrow(/count/);
    expect(() => send(fd, slab, layout, 1, 1, address, group.port)).toThrow(/exceeds the layout/);
    expect(() => send(fd, slab, new Uint32Array([slab.byteLength - 10, 36, 100]), 0, 1, address, group.port)).toThrow(/outside the slab/);
    expect(() => send(fd, slab, new Uint32Array([0, 65_000, 1_000]), 0, 1, address, group.port)).toThrow(/longer than 65507/);
    // Only a multicast group is a destination: 127.0.0.1 is refused.
    expect(() => send(fd, slab, layout, 0, 1, 0x7f000001, group.port)).toThrow(/not an IPv4 multicast group/);
    expect(() => send(fd, slab, layout, 0, 1, address, 0)).toThrow(/port/);
    expect(() => send(fd, slab, layout, 0, 1, address, group.port, 'yes')).toThrow(/segment must be a boolean/);
    const receive = (...args: unknown[]) => binding!.udpReceive(...args);
    expect(() => receive(fd, Buffer.alloc(100), 0, new Uint32Array(1), 0, 1)).toThrow(/stride/);
    expect(() => receive(fd, Buffer.alloc(100), 50, new Uint32Array(1), 0, 2)).toThrow(/exceeds the slab/);
    expect(() => receive(fd, Buffer.alloc(100), 50, new Uint32Array(4), 2, 1)).toThrow(/exceeds the slab/);
    expect(() => binding!.udpCheckSocket('3')).toThrow(TypeError);
  });

  it.skipIf(skip)('a descriptor that is not a UDP socket is refused, and system errors come back as E_IO with the errno text', () => {
    const path = join(tmpdir(), `sealcast-udp-test-${process.pid}-${randomInt(1e9)}`);
    const fd = openSync(path, 'w');
    try {
      expect(() => binding!.udpCheckSocket(fd)).toThrow(/not a socket|non-socket/i);
      const io = new BatchSocket(binding as never, fd);
      const { slab, layout } = slabOf([[36, 100]]);
      let caught: unknown;
      try {
        io.send(slab, layout, 0, 1, groupTarget(randomGroup()));
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(SealcastError);
      expect((caught as SealcastError).code).toBe('E_IO');
      expect((caught as Error).message).toMatch(/sending to the group failed: .*socket/i);
    } finally {
      closeSync(fd);
      unlinkSync(path);
    }
  });

  it('SEALCAST_IO picks the path and anything else is an E_ARG error', () => {
    expect(ioModeFromEnv({})).toBe('auto');
    expect(ioModeFromEnv({ SEALCAST_IO: 'dgram' })).toBe('dgram');
    expect(ioModeFromEnv({ SEALCAST_IO: 'native' })).toBe('native');
    expect(() => ioModeFromEnv({ SEALCAST_IO: 'fast' })).toThrow(/SEALCAST_IO must be one of auto, native, dgram/);
  });
});
