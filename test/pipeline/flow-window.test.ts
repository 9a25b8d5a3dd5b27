// Flow control: how far the sender may run ahead of the receivers that report their progress,
// with time passed in.

import { describe, expect, it } from 'vitest';
import { FlowWindow } from '../../dist/pipeline/flow-window.js';

const WINDOW = 4096;
const STALE_MS = 500;

describe('FlowWindow', () => {
  it('lets the sender run freely until a receiver reports, then a window ahead of the slowest', () => {
    const flow = new FlowWindow(WINDOW, STALE_MS);
    expect(flow.allowedEnd(0)).toBe(Infinity);
    flow.report('fast', 100_000, 0);
    flow.report('slow', 20_000, 0);
    expect(flow.allowedEnd(10)).toBe(20_000 + WINDOW);
    flow.report('slow', 90_000, 20);
    expect(flow.allowedEnd(30)).toBe(90_000 + WINDOW);
    expect(flow.receivers).toBe(2);
  });

  it('takes the latest report, also a lower one (a receiver whose output fell behind)', () => {
    const flow = new FlowWindow(WINDOW, STALE_MS);
    flow.report('r', 50_000, 0);
    flow.report('r', 45_000, 5);
    expect(flow.allowedEnd(5)).toBe(45_000 + WINDOW);
  });

  it('stops counting a receiver that went quiet, and one that is forgotten', () => {
    const flow = new FlowWindow(WINDOW, STALE_MS);
    flow.report('quiet', 1_000, 0);
    flow.report('busy', 9_000, 0);
    flow.report('busy', 9_000, STALE_MS + 1);
    expect(flow.allowedEnd(STALE_MS)).toBe(1_000 + WINDOW);
    expect(flow.allowedEnd(STALE_MS + 1)).toBe(9_000 + WINDOW);
    flow.forget('busy');
    expect(flow.allowedEnd(STALE_MS + 1)).toBe(Infinity);
  });

  it('refuses bad values', () => {
    expect(() => new FlowWindow(0, STALE_MS)).toThrow(/windowBytes/);
    expect(() => new FlowWindow(WINDOW, 0)).toThrow(/staleMs/);
    expect(() => new FlowWindow(WINDOW, STALE_MS).report('r', -1, 0)).toThrow(/offset/);
    expect(() => new FlowWindow(WINDOW, STALE_MS).report('r', 0.5, 0)).toThrow(/offset/);
  });
});
