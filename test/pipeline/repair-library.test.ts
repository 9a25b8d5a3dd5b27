// Loss repair through the library, Sender and Receiver in one process on loopback (TTL 0), the
// receiver's requests wired straight to the sender's requestRepair (the control connection's job
// in the CLI). Here the loss is made by an output slower than the stream: the receiver drops
// what it cannot queue (outputBehind) and asks for it again, and the output must still be exact.
// Both backends run it.

import { createHash, randomBytes, randomInt } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../dist/crypto/load.js';
import { derivePacketKey, EpochKeySource } from '../../dist/keys/packet-keys.js';
import { Receiver } from '../../dist/pipeline/receiver.js';
import { Sender } from '../../dist/pipeline/sender.js';
import { listBackends } from '../helpers/backends.js';

const suite = 'chacha20-poly1305' as const;
const backends = await listBackends();

/** Takes each write only after `delayMs`: an output slower than the stream. */
class SlowCollector extends Writable {
  readonly chunks: Buffer[] = [];
  constructor(private readonly delayMs: number) {
    super({ highWaterMark: 64 * 1024 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    setTimeout(callback, this.delayMs);
  }
}

async function* chunksOf(data: Buffer, chunkBytes: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
    yield data.subarray(offset, offset + chunkBytes);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe.each(backends)('loss repair in one process ($name backend)', ({ name, backend: loaded }) => {
  it.skipIf(loaded === null).each([
    { flow: false, what: 'dropped packets are asked for again' },
    { flow: true, what: 'flow control holds the sender back' },
  ])('an output slower than the stream: $what, and the output is exact', async ({ flow }) => {
    const backend = await loadBackend(name);
    const group = { address: `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}`, port: randomInt(20_000, 60_000) };
    const dataKey = randomBytes(32);
    const sessionId = randomBytes(8);
    const senderKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
    const receiverKey = derivePacketKey(backend, suite, dataKey, sessionId, 0);
    const data = randomBytes(6 * 1024 * 1024 + 99);
    const sender = new Sender({
      backend,
      suite,
      keys: new EpochKeySource(0, senderKey),
      sessionId,
      group,
      rateBitsPerSecond: 200e6,
      repairWindowBytes: 32 * 1024 * 1024,
      flowWindowBytes: flow ? 1024 * 1024 : 0,
    });
    const unavailable: unknown[] = [];
    const receiver = new Receiver({
      backend,
      keys: () => receiverKey,
      group,
      sessionId,
      startTimeoutMs: 10_000,
      // A 1 MiB output queue, taking a 256 KiB chunk per 30 ms (about 9 MB/s) while the stream
      // comes at up to 25 MB/s: without repair this receive would fail with E_IO.
      outputQueueBytesMax: 1024 * 1024,
      requestSlowDown: () => sender.reportSlowReceiver(),
      reportProgress: (offset) => sender.reportProgress('receiver', offset),
      requestRepair: (ranges) => {
        const gone = sender.requestRepair(ranges);
        if (gone.length > 0) {
          unavailable.push(gone);
          receiver.repairUnavailable(gone);
        }
      },
    });
    const output = new SlowCollector(30);
    const receiving = receiver.receive(output);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const sending = sender.send(chunksOf(data, 256 * 1024));
    const result = await receiving;
    sender.finishRepairs();
    const sent = await sending;
    expect(unavailable).toEqual([]);
    expect(result.outcome).toBe('complete');
    expect(Buffer.concat(output.chunks).equals(data)).toBe(true);
    expect(result.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    if (flow) {
      // The progress reported lags the output's backlog, so the sender waited for the output.
      expect(sent.flowWaitMs).toBeGreaterThan(0);
    } else {
      expect(result.drops.outputBehind).toBeGreaterThan(0);
      expect(result.repairRequests).toBeGreaterThan(0);
      expect(sent.repairDatagramsSent).toBeGreaterThan(0);
      expect(sent.slowDownReports).toBeGreaterThan(0);
      expect(sent.rateBitsPerSecondLowest).toBeLessThan(200e6);
    }
    senderKey.destroy();
    receiverKey.destroy();
  }, 60_000);

  it.skipIf(loaded === null)('requestRepair checks its ranges (TypeError/RangeError naming them)', async () => {
    const backend = await loadBackend(name);
    const sender = new Sender({ backend, suite, dataKey: randomBytes(32), group: { address: '239.255.9.9', port: 40_000 }, repairWindowBytes: 1024 });
    expect(() => sender.requestRepair([])).toThrow(TypeError);
    expect(() => sender.requestRepair([{ from: 5, to: 5 }])).toThrow(/ranges\[0\]/);
    expect(() => sender.requestRepair([{ from: 0, to: 10 }, { from: 5, to: 20 }])).toThrow(/ascending/);
    expect(() => sender.requestRepair([{ from: 0.5, to: 10 }])).toThrow(RangeError);
    // Before anything was sent, nothing is missing from the window and nothing is queued.
    expect(sender.requestRepair([{ from: 0, to: 10 }])).toEqual([]);
    expect(() => new Sender({ backend, suite, dataKey: randomBytes(32), group: { address: '239.255.9.9', port: 40_000 }, repairWindowBytes: -1 })).toThrow(/repairWindowBytes/);
  });
});
