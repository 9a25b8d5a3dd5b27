// The crypto benchmark (issue 2): seals batches of packets with every implementation sealcast
// could use and prints MB/s and ns per packet, next to `openssl speed` from the same run.
//
//   npm run bench:crypto        (builds first; this file imports ../dist)
//
// Environment: BENCH_SLICES (default 5) and BENCH_SLICE_SECONDS (default 0.15) set how long each
// measurement runs; BENCH_OPENSSL_SECONDS (default 1) the length of each openssl run;
// BENCH_POOL_BATCHES_PER_THREAD (default 4) how many batches per pool thread are in flight.
// BENCH_ONLY=pool measures only the rows the pool target compares (native-batch at 1 thread and
// the pool), and BENCH_PACKET_BYTES=1400,8192 limits the packet sizes; both are for quick
// checks while working on the pool; a run with either writes bench/results/crypto-partial.json.
// Results: bench/results/crypto.json, {"machine": {...}, "rows": [...]}.
//
// Every implementation does the same work per packet: a 32-byte header as AAD, the payload
// encrypted in place in a slab, the 16-byte tag written after it. Nonces are rewritten before
// every batch (unique per key: batch number and slot index), so no (key, nonce) pair repeats
// even in a benchmark. Only sealing is measured; opening costs the same plus tag comparison.

import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';
import { loadBackend } from '../dist/crypto/load.js';
import { machineInfo } from './lib/machine.mjs';
import { measure, measureAsync } from './lib/measure.mjs';
import { opensslAvailable, opensslSpeed, opensslSpeedArgs } from './lib/openssl-speed.mjs';
import { writeResults } from './lib/results.mjs';
import { printTable } from './lib/table.mjs';

const SUITES = ['chacha20-poly1305', 'aes-256-gcm'];
const PACKET_BYTES = packetBytesFromEnv([64, 1400, 8192, 65_000]);
const ONLY_POOL_ROWS = process.env.BENCH_ONLY === 'pool';
const PACKETS_PER_BATCH = 256;
const AAD_BYTES = 32;
const TAG_BYTES = 16;
const NONCE_BYTES = 12;
const LAYOUT_WORDS = 3;
const POOL_THREADS = 2;
/**
 * Batches kept in flight per pool thread (BENCH_POOL_BATCHES_PER_THREAD, default 4, the pool's
 * own default queueDepthMax per thread). A worker
 * finishing one batch then still has others queued, so it need not wake the main thread for
 * every batch (it does so when its backlog is down to one, see src/pool/serve.ts) and never
 * waits for the main thread to refill it. With 2 per thread every completion wakes the main
 * thread, which on 2 cores costs about 0.1 of the pool's speed-up at 1400 B.
 */
const POOL_BATCHES_PER_THREAD = positiveNumberFromEnv('BENCH_POOL_BATCHES_PER_THREAD', 4, true);
const TARGETS = { nativeVsOpensslAt1400: 0.9, nativeVsNodeCrypto: 5, poolSpeedup: 1.7 };

function positiveNumberFromEnv(name, fallback, integer = false) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!(value > 0) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"`);
  }
  return value;
}

function packetBytesFromEnv(fallback) {
  const text = process.env.BENCH_PACKET_BYTES;
  if (text === undefined || text === '') return fallback;
  const sizes = text.split(',').map(Number);
  if (sizes.some((size) => !fallback.includes(size))) {
    throw new RangeError(`BENCH_PACKET_BYTES must list sizes among ${fallback.join(', ')}, got "${text}"`);
  }
  return sizes;
}

const measureOptions = {
  slices: positiveNumberFromEnv('BENCH_SLICES', 5, true),
  sliceSeconds: positiveNumberFromEnv('BENCH_SLICE_SECONDS', 0.15),
  warmupSeconds: positiveNumberFromEnv('BENCH_SLICE_SECONDS', 0.15),
};
const opensslSeconds = positiveNumberFromEnv('BENCH_OPENSSL_SECONDS', 1, true);

/** A batch of equal packets laid out back to back, optionally in shared memory for the pool. */
function makeBatch(packetBytes, shared = false) {
  const slotBytes = AAD_BYTES + packetBytes + TAG_BYTES;
  const allocate = (bytes) => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  const slab = new Uint8Array(allocate(slotBytes * PACKETS_PER_BATCH));
  const layout = new Uint32Array(allocate(PACKETS_PER_BATCH * LAYOUT_WORDS * 4));
  const nonces = new Uint8Array(allocate(PACKETS_PER_BATCH * NONCE_BYTES));
  // randomFillSync refuses shared memory on some Node versions; fill a private copy and copy it in.
  slab.set(randomFillSync(new Uint8Array(slab.length)));
  for (let slot = 0; slot < PACKETS_PER_BATCH; slot++) {
    layout[slot * LAYOUT_WORDS] = slot * slotBytes;
    layout[slot * LAYOUT_WORDS + 1] = AAD_BYTES;
    layout[slot * LAYOUT_WORDS + 2] = packetBytes;
  }
  const nonceWords = new Uint32Array(nonces.buffer);
  nonceWords.fill(0x5ea1ca57);
  return { slab, layout, nonces, nonceWords, count: PACKETS_PER_BATCH, batchNumber: 0 };
}

/** Gives every slot a nonce never used before with this key: (prefix, batch number, slot). */
function freshNonces(batch, batchNumber) {
  const words = batch.nonceWords;
  for (let slot = 0; slot < PACKETS_PER_BATCH; slot++) {
    words[slot * 3 + 1] = batchNumber;
    words[slot * 3 + 2] = slot;
  }
}

/**
 * Checks that the first, middle and last slots of a batch sealed once from `plaintextSlab` open
 * with node:crypto, so a broken implementation cannot post a fast but meaningless number.
 */
function verifySealed(impl, suite, key, plaintextSlab, batch, packetBytes) {
  const slotBytes = AAD_BYTES + packetBytes + TAG_BYTES;
  for (const slot of [0, PACKETS_PER_BATCH >> 1, PACKETS_PER_BATCH - 1]) {
    const offset = slot * slotBytes;
    const payloadOffset = offset + AAD_BYTES;
    const tagOffset = payloadOffset + packetBytes;
    const nonce = batch.nonces.subarray(slot * NONCE_BYTES, (slot + 1) * NONCE_BYTES);
    const decipher = createDecipheriv(suite, key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(batch.slab.subarray(offset, payloadOffset));
    decipher.setAuthTag(batch.slab.subarray(tagOffset, tagOffset + TAG_BYTES));
    let opened;
    try {
      opened = Buffer.concat([decipher.update(batch.slab.subarray(payloadOffset, tagOffset)), decipher.final()]);
    } catch {
      throw new Error(`${impl} ${suite} ${packetBytes} B: slot ${slot} does not open with node:crypto`);
    }
    if (!opened.equals(plaintextSlab.subarray(payloadOffset, tagOffset))) {
      throw new Error(`${impl} ${suite} ${packetBytes} B: slot ${slot} opens to the wrong plaintext`);
    }
  }
}

function randomKey() {
  return randomFillSync(new Uint8Array(32));
}

function rowFrom(suite, impl, packetBytes, threads, packetsPerSecond) {
  return {
    suite,
    impl,
    packetBytes,
    threads,
    mbPerSec: round((packetsPerSecond * packetBytes) / 1e6, 1),
    nsPerPacket: round(1e9 / packetsPerSecond, 1),
  };
}

function round(value, digits) {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function measureBackend(backend, suite, packetBytes) {
  const key = randomKey();
  const aeadKey = backend.createKey(suite, key);
  const batch = makeBatch(packetBytes);
  // Batch numbers count across the check, the warm-up and the slices, so nonces never repeat.
  let batchNumber = 0;
  try {
    const plaintextSlab = batch.slab.slice();
    freshNonces(batch, ++batchNumber);
    aeadKey.sealBatch(batch);
    verifySealed(backend.name, suite, key, plaintextSlab, batch, packetBytes);
    return measure(() => {
      freshNonces(batch, ++batchNumber);
      aeadKey.sealBatch(batch);
      return PACKETS_PER_BATCH;
    }, measureOptions).itemsPerSecond;
  } finally {
    aeadKey.destroy();
    key.fill(0);
  }
}

/** One createCipheriv per packet, writing ciphertext and tag into the same slab. */
function measureNodeCrypto(suite, packetBytes) {
  const key = Buffer.from(randomKey());
  const batch = makeBatch(packetBytes);
  const slab = Buffer.from(batch.slab.buffer);
  const nonces = Buffer.from(batch.nonces.buffer);
  const slotBytes = AAD_BYTES + packetBytes + TAG_BYTES;
  let batchNumber = 0;
  const options = { authTagLength: TAG_BYTES };
  const sealAll = () => {
    freshNonces(batch, ++batchNumber);
    for (let slot = 0; slot < PACKETS_PER_BATCH; slot++) {
      const offset = slot * slotBytes;
      const payloadOffset = offset + AAD_BYTES;
      const tagOffset = payloadOffset + packetBytes;
      const cipher = createCipheriv(suite, key, nonces.subarray(slot * NONCE_BYTES, (slot + 1) * NONCE_BYTES), options);
      cipher.setAAD(slab.subarray(offset, payloadOffset));
      slab.set(cipher.update(slab.subarray(payloadOffset, tagOffset)), payloadOffset);
      cipher.final();
      slab.set(cipher.getAuthTag(), tagOffset);
    }
    return PACKETS_PER_BATCH;
  };
  try {
    const plaintextSlab = batch.slab.slice();
    sealAll();
    verifySealed('node-crypto', suite, key, plaintextSlab, batch, packetBytes);
    return measure(sealAll, measureOptions).itemsPerSecond;
  } finally {
    key.fill(0);
  }
}

/** The pool keeps POOL_BATCHES_PER_THREAD batches per thread in flight over shared memory. */
async function measurePool(AeadPool, suite, packetBytes) {
  const pool = await AeadPool.create({
    threads: POOL_THREADS,
    backend: 'native',
    queueDepthMax: POOL_THREADS * POOL_BATCHES_PER_THREAD,
  });
  const key = randomKey();
  try {
    const handle = await pool.addKey(suite, key);
    const batches = Array.from({ length: POOL_THREADS * POOL_BATCHES_PER_THREAD }, () => makeBatch(packetBytes, true));
    let batchNumber = 0;
    const submit = (batch) => {
      freshNonces(batch, ++batchNumber);
      const sealed = pool.seal(handle, batch).then(() => batch);
      // Marked as handled: if the measurement fails, close() rejects what is still in flight,
      // and that must not end the process as an unhandled rejection.
      sealed.catch(() => {});
      return sealed;
    };
    const plaintextSlab = batches[0].slab.slice();
    await submit(batches[0]);
    verifySealed('pool', suite, key, plaintextSlab, batches[0], packetBytes);
    const inFlight = batches.map(submit);
    const result = await measureAsync(async () => {
      const done = await inFlight.shift();
      inFlight.push(submit(done));
      return PACKETS_PER_BATCH;
    }, measureOptions);
    await Promise.all(inFlight);
    await pool.removeKey(handle);
    return result.itemsPerSecond;
  } finally {
    key.fill(0);
    await pool.close();
  }
}

async function loadPool() {
  try {
    const module = await import('../dist/pool/pool.js');
    if (typeof module.AeadPool?.create !== 'function') return { AeadPool: null, reason: 'dist/pool/pool.js has no AeadPool yet' };
    return { AeadPool: module.AeadPool, reason: null };
  } catch (error) {
    return { AeadPool: null, reason: `dist/pool/pool.js did not load: ${error.message}` };
  }
}

function ratioLine(title, numerator, denominator, target) {
  if (numerator === undefined || denominator === undefined) {
    return { title, ratio: null, target, verdict: 'NOT MEASURED' };
  }
  const ratio = numerator.mbPerSec / denominator.mbPerSec;
  return { title, ratio: round(ratio, 2), target, verdict: ratio >= target ? 'pass' : 'FAIL' };
}

async function main() {
  const log = (line) => process.stderr.write(`${line}\n`);
  const wasm = await loadBackend('wasm');
  let native = null;
  try {
    native = await loadBackend('native');
  } catch (error) {
    log(`native backend not available, its rows are skipped: ${error.message}`);
  }
  const { AeadPool, reason: poolReason } = native === null ? { AeadPool: null, reason: 'the native backend is not available' } : await loadPool();
  if (AeadPool === null) log(`pool rows skipped: ${poolReason}`);
  const haveOpenssl = !ONLY_POOL_ROWS && opensslAvailable();
  if (!haveOpenssl) log('openssl is not installed: openssl-speed rows skipped');

  const machine = machineInfo({
    nativeOpenSslVersion: native?.openSslVersion ?? null,
    nativeUnavailable: native === null,
    poolThreads: AeadPool === null ? null : POOL_THREADS,
    packetsPerBatch: PACKETS_PER_BATCH,
    aadBytes: AAD_BYTES,
    opensslSpeedCommand: haveOpenssl ? `openssl ${opensslSpeedArgs('<cipher>', '<bytes>', opensslSeconds).join(' ')}` : null,
    measurement: `median of ${measureOptions.slices} slices of ${measureOptions.sliceSeconds} s after ${measureOptions.warmupSeconds} s warm-up; seal only; pool rows keep ${POOL_BATCHES_PER_THREAD} batches per thread in flight`,
  });
  const started = Date.now();
  const rows = [];
  const failures = [];
  /** Runs one measurement; a failure is reported and counted, and the others still run. */
  const attempt = async (label, run) => {
    try {
      return await run();
    } catch (error) {
      failures.push(`${label}: ${error.message}`);
      log(`FAILED ${label}: ${error.stack ?? error.message}`);
      return null;
    }
  };
  const record = (row) => {
    rows.push(row);
    log(`  ${row.suite} ${row.impl} ${row.packetBytes} B x${row.threads}: ${row.mbPerSec} MB/s, ${row.nsPerPacket} ns/packet`);
  };

  for (const suite of SUITES) {
    for (const packetBytes of PACKET_BYTES) {
      if (haveOpenssl) {
        const speed = opensslSpeed(suite, packetBytes, opensslSeconds, log);
        if (speed !== null) record(rowFrom(suite, 'openssl-speed', packetBytes, 1, speed.operations / speed.seconds));
      }
      const measurements = [
        ['native-batch', 1, native !== null && native.suites.includes(suite), () => measureBackend(native, suite, packetBytes)],
        ['wasm', 1, !ONLY_POOL_ROWS && wasm.suites.includes(suite), () => measureBackend(wasm, suite, packetBytes)],
        ['node-crypto', 1, !ONLY_POOL_ROWS, () => measureNodeCrypto(suite, packetBytes)],
        ['native-batch', POOL_THREADS, AeadPool !== null && native.suites.includes(suite), () => measurePool(AeadPool, suite, packetBytes)],
      ];
      for (const [impl, threads, applies, run] of measurements) {
        if (!applies) continue;
        const packetsPerSecond = await attempt(`${suite} ${impl} ${packetBytes} B x${threads}`, run);
        if (packetsPerSecond !== null) record(rowFrom(suite, impl, packetBytes, threads, packetsPerSecond));
      }
    }
  }
  machine.loadAverage1mAtEnd = machineInfo().loadAverage1m;
  machine.durationSeconds = round((Date.now() - started) / 1000, 1);

  // A filtered run must not replace the full table other tools read.
  const path = writeResults(ONLY_POOL_ROWS || process.env.BENCH_PACKET_BYTES ? 'crypto-partial' : 'crypto', { machine, rows });
  process.stdout.write(
    `\ncrypto benchmark: ${machine.cpuModel}, ${machine.cpuCount} CPUs, node ${machine.nodeVersion}, ` +
      `load ${machine.loadAverage1m.toFixed(2)} -> ${machine.loadAverage1mAtEnd.toFixed(2)}, ` +
      `${PACKETS_PER_BATCH} packets per batch, ${AAD_BYTES}-byte AAD, seal only\n\n`,
  );
  printTable(rows, ['suite', 'impl', 'packetBytes', 'threads', 'mbPerSec', 'nsPerPacket']);

  const find = (suite, impl, packetBytes, threads = 1) =>
    rows.find((row) => row.suite === suite && row.impl === impl && row.packetBytes === packetBytes && row.threads === threads);
  const targets = [];
  for (const suite of SUITES) {
    targets.push(
      ratioLine(`${suite}: native-batch / openssl-speed at 1400 B`, find(suite, 'native-batch', 1400), find(suite, 'openssl-speed', 1400), TARGETS.nativeVsOpensslAt1400),
      ratioLine(`${suite}: native-batch / node-crypto at 1400 B`, find(suite, 'native-batch', 1400), find(suite, 'node-crypto', 1400), TARGETS.nativeVsNodeCrypto),
      ratioLine(`${suite}: native-batch / node-crypto at 64 B`, find(suite, 'native-batch', 64), find(suite, 'node-crypto', 64), TARGETS.nativeVsNodeCrypto),
      ratioLine(`${suite}: pool ${POOL_THREADS} threads / 1 thread at 1400 B`, find(suite, 'native-batch', 1400, POOL_THREADS), find(suite, 'native-batch', 1400), TARGETS.poolSpeedup),
      ratioLine(`${suite}: pool ${POOL_THREADS} threads / 1 thread at 8192 B`, find(suite, 'native-batch', 8192, POOL_THREADS), find(suite, 'native-batch', 8192), TARGETS.poolSpeedup),
    );
  }
  process.stdout.write('\ntargets (ratios of MB/s in this run)\n');
  printTable(targets, [
    'title',
    { key: 'ratio', format: (value) => (value === null ? '-' : value.toFixed(2)) },
    { key: 'target', title: 'target', format: (value) => `>= ${value}` },
    'verdict',
  ]);
  if (machine.loadAverage1m > 0.5 * machine.cpuCount || machine.loadAverage1mAtEnd > 0.5 * machine.cpuCount) {
    process.stdout.write(`\nnote: the machine was busy (load average up to ${Math.max(machine.loadAverage1m, machine.loadAverage1mAtEnd).toFixed(2)} on ${machine.cpuCount} CPUs); re-run on a quiet machine before trusting these ratios.\n`);
  }
  process.stdout.write(`\nwrote ${path} (${rows.length} rows in ${machine.durationSeconds} s)\n`);
  if (failures.length > 0) {
    process.stdout.write(`\n${failures.length} measurement(s) FAILED and have no row:\n${failures.map((line) => `  ${line}`).join('\n')}\n`);
    process.exitCode = 1;
  }
}

await main();
