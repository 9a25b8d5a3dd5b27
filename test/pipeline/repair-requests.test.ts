// The receiver's repair requests: what it asks for, and when it asks again. Time is passed in,
// so these cases are exact.

import { describe, expect, it } from 'vitest';
import { ReorderWindow } from '../../dist/pipeline/reorder.js';
import { NACK_IDLE_MS, NACK_RANGES_MAX, NACK_RETRY_MS, NACK_SPACING_MS, RepairRequester } from '../../dist/pipeline/repair-requests.js';

const PAYLOAD = 100;

function setup() {
  const sent: Array<Array<{ from: number; to: number }>> = [];
  const requester = new RepairRequester((ranges) => sent.push(ranges));
  const window = new ReorderWindow(0, 1000, 1e9);
  const hold = (...slots: number[]) => {
    for (const slot of slots) {
      window.hold(slot * PAYLOAD, new Uint8Array(PAYLOAD));
      requester.noteHole();
    }
  };
  return { sent, requester, window, hold };
}

describe('RepairRequester', () => {
  it('asks for a new hole at once, names every hole, and nothing when there is none', () => {
    const { sent, requester, window, hold } = setup();
    expect(requester.maybeRequest(0, window, undefined, 0, 0)).toBe(false);
    hold(2, 3, 6);
    expect(requester.maybeRequest(1000, window, undefined, 7 * PAYLOAD, 0)).toBe(true);
    expect(sent).toEqual([
      [
        { from: 0, to: 200 },
        { from: 400, to: 600 },
      ],
    ]);
    expect(requester.stats).toEqual({ requests: 1, bytesRequested: 400 });
  });

  it('asks again only after the retry interval, and a new hole sooner (but not within the spacing)', () => {
    const { sent, requester, window, hold } = setup();
    hold(1);
    requester.maybeRequest(1000, window, undefined, 2 * PAYLOAD, 0);
    expect(requester.maybeRequest(1000 + NACK_RETRY_MS - 1, window, undefined, 2 * PAYLOAD, 0)).toBe(false);
    hold(4);
    expect(requester.maybeRequest(1000 + NACK_SPACING_MS - 1, window, undefined, 5 * PAYLOAD, 0)).toBe(false);
    // The new hole is asked for; the old one, asked for a moment ago, is not repeated.
    expect(requester.maybeRequest(1000 + NACK_SPACING_MS, window, undefined, 5 * PAYLOAD, 0)).toBe(true);
    expect(sent[1]).toEqual([{ from: 200, to: 400 }]);
    expect(requester.maybeRequest(1000 + NACK_RETRY_MS, window, undefined, 5 * PAYLOAD, 0)).toBe(true);
    expect(sent[2]).toEqual([{ from: 0, to: 100 }]);
  });

  it('counts the bytes after the last held packet that were seen but dropped, and the tail up to END', () => {
    const { sent, requester, window, hold } = setup();
    hold(1);
    // Packets up to byte 1000 authenticated but were dropped (window or output full).
    requester.maybeRequest(1000, window, undefined, 1000, 0);
    expect(sent[0]).toEqual([
      { from: 0, to: 100 },
      { from: 200, to: 1000 },
    ]);
    requester.noteHole();
    requester.maybeRequest(2000, window, 1500, 1000, 0);
    expect(sent[1]).toEqual([
      { from: 0, to: 100 },
      { from: 200, to: 1500 },
    ]);
  });

  it('after a silence with no END asks for everything after the last byte seen', () => {
    const { sent, requester, window } = setup();
    window.advance(500);
    expect(requester.maybeRequest(1000, window, undefined, 500, NACK_IDLE_MS - 1)).toBe(false);
    expect(requester.maybeRequest(1000, window, undefined, 500, NACK_IDLE_MS)).toBe(true);
    expect(sent[0]).toEqual([{ from: 500, to: Number.MAX_SAFE_INTEGER }]);
    // An open-ended request names no byte count.
    expect(requester.stats.bytesRequested).toBe(0);
    // With END heard and everything delivered, silence asks for nothing.
    expect(requester.maybeRequest(5000, window, 500, 500, 10 * NACK_IDLE_MS)).toBe(false);
  });

  it('names at most NACK_RANGES_MAX holes, the earliest first', () => {
    const { sent, requester, window, hold } = setup();
    hold(...Array.from({ length: NACK_RANGES_MAX + 20 }, (_, index) => 2 * index + 1));
    requester.maybeRequest(1000, window, undefined, (2 * NACK_RANGES_MAX + 41) * PAYLOAD, 0);
    expect(sent[0]).toHaveLength(NACK_RANGES_MAX);
    expect(sent[0][0]).toEqual({ from: 0, to: 100 });
    const last = (NACK_RANGES_MAX - 1) * 2 * PAYLOAD;
    expect(sent[0][NACK_RANGES_MAX - 1]).toEqual({ from: last, to: last + PAYLOAD });
  });
});
