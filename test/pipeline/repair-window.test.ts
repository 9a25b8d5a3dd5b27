// The sender's repair window: which stored datagrams a repair request brings back, what it
// reports as gone, and that a slab is never handed back for reuse while a repair still needs it.

import { describe, expect, it } from 'vitest';
import { RepairWindow, type RetainableSlab } from '../../dist/pipeline/repair-window.js';

const PAYLOAD = 100;
const OVERHEAD = 52;

/** A slab of `count` slots starting at stream offset `firstOffset`; the last slot holds `lastBytes`. */
function slab(firstOffset: number, count: number, lastBytes = PAYLOAD): RetainableSlab & { name: string } {
  const lengths = new Uint32Array(count).fill(PAYLOAD);
  lengths[count - 1] = lastBytes;
  return { name: `slab@${firstOffset}`, memory: Buffer.alloc(0), layout: new Uint32Array(0), lengths, count, firstOffset };
}

/** Takes every queued run and returns them as [slabName, firstSlot, count]. */
function drain(window: RepairWindow<ReturnType<typeof slab>>, countMax = 1000): Array<[string, number, number]> {
  const runs: Array<[string, number, number]> = [];
  for (let run = window.next(countMax); run !== null; run = window.next(countMax)) {
    runs.push([run.slab.name, run.first, run.count]);
    window.done(run);
  }
  return runs;
}

describe('RepairWindow', () => {
  it('queues exactly the slots that overlap the requested bytes, across slabs', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(1 << 20, PAYLOAD, OVERHEAD, 1000);
    window.retain(slab(0, 10));
    window.retain(slab(1000, 10, 40));
    // Bytes 250..1049: slots 2..9 of the first slab and 0 of the second.
    const outcome = window.request([{ from: 250, to: 1050 }]);
    expect(outcome).toEqual({ queuedDatagrams: 9, firstLossDatagrams: 9, unavailable: [], refusedDatagrams: 0 });
    expect(drain(window)).toEqual([
      ['slab@0', 2, 8],
      ['slab@1000', 0, 1],
    ]);
    // The short last slot is found from an offset inside it.
    window.request([{ from: 1935, to: 1936 }]);
    expect(drain(window)).toEqual([['slab@1000', 9, 1]]);
  });

  it('queues a slot once however often it is asked for, and again once it was sent', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(1 << 20, PAYLOAD, OVERHEAD, 1000);
    window.retain(slab(0, 10));
    expect(window.request([{ from: 0, to: 300 }]).queuedDatagrams).toBe(3);
    expect(window.request([{ from: 100, to: 500 }]).queuedDatagrams).toBe(2);
    expect(window.queuedDatagrams).toBe(5);
    expect(drain(window)).toEqual([
      ['slab@0', 0, 3],
      ['slab@0', 3, 2],
    ]);
    // Sent once already: queued again, but not a new loss (rate adaptation counts new losses).
    expect(window.request([{ from: 0, to: 100 }])).toMatchObject({ queuedDatagrams: 1, firstLossDatagrams: 0 });
  });

  it('reports bytes that left the window as unavailable and ignores bytes not sent yet', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(3 * (10 * (PAYLOAD + OVERHEAD)), PAYLOAD, OVERHEAD, 1000);
    const evicted = [];
    for (let index = 0; index < 5; index++) evicted.push(...window.retain(slab(index * 1000, 10)));
    expect(evicted.map((item) => item.name)).toEqual(['slab@0', 'slab@1000']);
    expect(window.heldRange).toEqual({ from: 2000, to: 5000 });
    const outcome = window.request([
      { from: 500, to: 2100 },
      { from: 4950, to: 9000 },
    ]);
    expect(outcome.unavailable).toEqual([{ from: 500, to: 2000 }]);
    expect(drain(window)).toEqual([
      ['slab@2000', 0, 1],
      ['slab@4000', 9, 1],
    ]);
  });

  it('never hands back a slab that a queued or running repair still reads', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(10 * (PAYLOAD + OVERHEAD), PAYLOAD, OVERHEAD, 1000);
    expect(window.retain(slab(0, 10))).toEqual([]);
    window.request([{ from: 0, to: 100 }]);
    // Over budget, but slab@0 is pinned by the queued repair.
    expect(window.retain(slab(1000, 10))).toEqual([]);
    const run = window.next(10)!;
    expect(run.slab.name).toBe('slab@0');
    expect(window.retain(slab(2000, 10))).toEqual([]);
    expect(window.done(run).map((item) => item.name)).toEqual(['slab@0', 'slab@1000']);
  });

  it('repairs a slab while it is still being sent, and hands it back only once it was sent', () => {
    // A budget of one slab: the slab being sent stays while it is sent, even over the budget.
    const window = new RepairWindow<ReturnType<typeof slab>>(10 * (PAYLOAD + OVERHEAD), PAYLOAD, OVERHEAD, 1000);
    const first = slab(0, 10);
    const second = slab(1000, 10);
    expect(window.retainWhileSending(first)).toEqual([]);
    expect(window.request([{ from: 0, to: 100 }]).queuedDatagrams).toBe(1);
    expect(drain(window)).toEqual([['slab@0', 0, 1]]);
    expect(window.retainWhileSending(second)).toEqual([]);
    // The first is sent: over budget, it goes; the second stays pinned until it is sent too.
    expect(window.sent(first).map((item) => item.name)).toEqual(['slab@0']);
    expect(window.request([{ from: 0, to: 1100 }]).unavailable).toEqual([{ from: 0, to: 1000 }]);
    expect(drain(window)).toEqual([['slab@1000', 0, 1]]);
    expect(window.sent(second)).toEqual([]);
    expect(window.heldRange).toEqual({ from: 1000, to: 2000 });
  });

  it('holds at most slabsMax slabs, however few bytes they carry (partly filled slabs of a slow source)', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(1 << 30, PAYLOAD, OVERHEAD, 1000, 3);
    const evicted = [];
    for (let index = 0; index < 5; index++) evicted.push(...window.retain(slab(index * 10, 1, 10)));
    expect(evicted.map((item) => item.name)).toEqual(['slab@0', 'slab@10']);
    expect(window.retainedSlabs).toBe(3);
    expect(() => new RepairWindow(0, PAYLOAD, OVERHEAD, 10, 0)).toThrow(/slabsMax/);
  });

  it('splits runs to the size asked for and bounds the queue', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(1 << 20, PAYLOAD, OVERHEAD, 4);
    window.retain(slab(0, 10));
    const outcome = window.request([{ from: 0, to: 1000 }]);
    expect(outcome.queuedDatagrams).toBe(4);
    expect(outcome.refusedDatagrams).toBe(6);
    const run = window.next(3)!;
    expect([run.first, run.count, run.datagramBytes]).toEqual([0, 3, 3 * (PAYLOAD + OVERHEAD)]);
    window.done(run);
    expect(drain(window)).toEqual([['slab@0', 3, 1]]);
  });

  it('refuses slabs out of stream order and bad bounds', () => {
    const window = new RepairWindow<ReturnType<typeof slab>>(1 << 20, PAYLOAD, OVERHEAD, 10);
    window.retain(slab(0, 10));
    expect(() => window.retain(slab(5000, 10))).toThrow(RangeError);
    expect(() => new RepairWindow(-1, PAYLOAD, OVERHEAD, 10)).toThrow(/windowBytes/);
    expect(() => new RepairWindow(0, 0, OVERHEAD, 10)).toThrow(/payloadBytesMax/);
    expect(() => new RepairWindow(0, PAYLOAD, OVERHEAD, 0)).toThrow(/queueDatagramsMax/);
  });
});
