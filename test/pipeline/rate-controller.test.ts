// The sender's rate adaptation, with time passed in: what lowers the rate, by how much, how
// often, and how it climbs back.

import { describe, expect, it } from 'vitest';
import {
  DECREASE_HOLD_MS,
  FLOOR_FRACTION,
  INCREASE_AFTER_MS,
  INCREASE_EVERY_MS,
  INCREASE_FRACTION,
  LOSS_INTERVAL_MS,
  RateController,
} from '../../dist/pipeline/rate-controller.js';

const CEILING = 100_000_000;

describe('RateController', () => {
  it('keeps the ceiling through scattered loss (below 5 % of what was sent)', () => {
    const rates = new RateController(CEILING, 0);
    let sent = 0;
    for (let now = 0; now <= 2000; now += LOSS_INTERVAL_MS) {
      sent += 1000;
      rates.noteLosses(40);
      expect(rates.update(now, sent)).toBe(CEILING);
    }
    expect(rates.lowestBytesPerSecond).toBe(CEILING);
  });

  it('steps to about what a receiver took: rate x (1 - lost fraction) x 0.9', () => {
    const rates = new RateController(CEILING, 0);
    rates.update(0, 0);
    rates.noteLosses(200);
    expect(rates.update(LOSS_INTERVAL_MS, 1000)).toBeCloseTo(CEILING * 0.8 * 0.9);
    expect(rates.lowestBytesPerSecond).toBeCloseTo(CEILING * 0.72);
  });

  it('halves at most per step, waits between steps, and never goes below the floor', () => {
    const rates = new RateController(CEILING, 0);
    let sent = 0;
    let now = 0;
    rates.noteLosses(5000);
    sent += 1000;
    now += LOSS_INTERVAL_MS;
    expect(rates.update(now, sent)).toBeCloseTo(CEILING * 0.5 * 0.9);
    // Another heavy interval right after: held, because its reports may predate the step.
    rates.noteLosses(5000);
    sent += 1000;
    expect(rates.update(now + DECREASE_HOLD_MS - 1, sent)).toBeCloseTo(CEILING * 0.45);
    for (let step = 0; step < 40; step++) {
      now += DECREASE_HOLD_MS;
      rates.noteLosses(5000);
      sent += 1000;
      rates.update(now, sent);
    }
    expect(rates.rateBytesPerSecond).toBe(CEILING * FLOOR_FRACTION);
  });

  it('a slow receiver lowers the rate by a tenth and the margin, at once', () => {
    const rates = new RateController(CEILING, 0);
    rates.noteSlowReceiver(10);
    expect(rates.rateBytesPerSecond).toBeCloseTo(CEILING * 0.81);
    rates.noteSlowReceiver(10 + DECREASE_HOLD_MS - 1);
    expect(rates.rateBytesPerSecond).toBeCloseTo(CEILING * 0.81);
  });

  it('climbs back after a quiet spell by a fraction of the ceiling per step, never above it', () => {
    const rates = new RateController(CEILING, 0);
    rates.noteSlowReceiver(0);
    const low = rates.rateBytesPerSecond;
    expect(rates.update(INCREASE_AFTER_MS - 1, 0)).toBe(low);
    expect(rates.update(INCREASE_AFTER_MS, 0)).toBeCloseTo(low + CEILING * INCREASE_FRACTION);
    expect(rates.update(INCREASE_AFTER_MS + INCREASE_EVERY_MS - 1, 0)).toBeCloseTo(low + CEILING * INCREASE_FRACTION);
    for (let now = INCREASE_AFTER_MS; now < 20_000; now += INCREASE_EVERY_MS) rates.update(now, 0);
    expect(rates.rateBytesPerSecond).toBe(CEILING);
  });

  it('refuses a bad ceiling and a negative loss count', () => {
    expect(() => new RateController(0, 0)).toThrow(/ceilingBytesPerSecond/);
    expect(() => new RateController(Number.POSITIVE_INFINITY, 0)).toThrow(RangeError);
    expect(() => new RateController(1, 0).noteLosses(-1)).toThrow(/datagrams/);
  });
});
