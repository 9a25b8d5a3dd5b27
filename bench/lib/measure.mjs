// Throughput measurement that tolerates a busy machine: after a warm-up, the work runs in
// several time slices and the median slice rate is reported, so one slice disturbed by another
// process does not decide the result.

import { performance } from 'node:perf_hooks';

const DEFAULTS = { warmupSeconds: 0.15, sliceSeconds: 0.15, slices: 5 };

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function summarise(slices) {
  return {
    itemsPerSecond: median(slices.map((slice) => slice.items / slice.seconds)),
    items: slices.reduce((sum, slice) => sum + slice.items, 0),
    seconds: slices.reduce((sum, slice) => sum + slice.seconds, 0),
    sliceRates: slices.map((slice) => slice.items / slice.seconds),
  };
}

/**
 * Calls `step()` (synchronous; returns how many items it processed) repeatedly; every slice
 * runs at least one step. Returns the median items per second over the slices.
 */
export function measure(step, options = {}) {
  const { warmupSeconds, sliceSeconds, slices } = { ...DEFAULTS, ...options };
  const runFor = (seconds) => {
    const start = performance.now();
    const deadline = start + seconds * 1000;
    let items = 0;
    let now = start;
    do {
      items += step();
      now = performance.now();
    } while (now < deadline);
    return { items, seconds: (now - start) / 1000 };
  };
  runFor(warmupSeconds);
  const results = [];
  for (let slice = 0; slice < slices; slice++) results.push(runFor(sliceSeconds));
  return summarise(results);
}

/** As measure(), for an asynchronous `step()` that resolves to how many items it processed. */
export async function measureAsync(step, options = {}) {
  const { warmupSeconds, sliceSeconds, slices } = { ...DEFAULTS, ...options };
  const runFor = async (seconds) => {
    const start = performance.now();
    const deadline = start + seconds * 1000;
    let items = 0;
    let now = start;
    do {
      items += await step();
      now = performance.now();
    } while (now < deadline);
    return { items, seconds: (now - start) / 1000 };
  };
  await runFor(warmupSeconds);
  const results = [];
  for (let slice = 0; slice < slices; slice++) results.push(await runFor(sliceSeconds));
  return summarise(results);
}
