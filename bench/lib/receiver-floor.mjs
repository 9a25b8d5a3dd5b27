// The per-byte work any receiver must do that opens every packet, checks the whole stream's
// SHA-256 and writes a file, measured on this machine in the same run as the pipeline rows: the
// CPU time of SHA-256 over a sample of the input (node:crypto, which is OpenSSL's SHA code, fed
// 1 MiB at a time as a receiver's output chunks are), of opening the input as sealed packets of
// the row's size with the native batch (one thread), and of writing the sample to a fresh file in
// the scratch directory (1 MiB writes, as each receiver's output is written). Only those calls
// are timed: the sample is read into memory first, since a receiver reads no file. The kernel's
// own cost to deliver the datagrams comes on top and is not included, so the sum is a floor, not
// an estimate: a receiver cannot use less CPU per GiB than this, whatever else it does better.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const HEADER_BYTES = 36;
/** The piece a receiver hashes and writes at a time: its output chunk. */
const CHUNK_BYTES = MIB;
/** The most of the input measured; the figures are per GiB, so a sample is enough. */
const SAMPLE_BYTES_MAX = 256 * MIB;

/** CPU seconds (user + system, all threads) that `work` costs this process. */
function cpuSecOf(work) {
  const before = process.cpuUsage();
  work();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

/** The first `bytes` of the input, read into memory (the read is not part of any figure). */
function readSample(inputPath, bytes) {
  const sample = Buffer.allocUnsafe(bytes);
  const descriptor = openSync(inputPath, 'r');
  try {
    let filled = 0;
    while (filled < bytes) {
      const count = readSync(descriptor, sample, filled, Math.min(CHUNK_BYTES, bytes - filled), filled);
      if (count <= 0) throw new Error(`the input ended after ${filled} of ${bytes} bytes`);
      filled += count;
    }
  } finally {
    closeSync(descriptor);
  }
  return sample;
}

function sha256CpuSecPerGiB(sample) {
  const hash = createHash('sha256');
  const cpuSec = cpuSecOf(() => {
    for (let offset = 0; offset < sample.byteLength; offset += CHUNK_BYTES) hash.update(sample.subarray(offset, offset + CHUNK_BYTES));
    hash.digest();
  });
  return cpuSec / (sample.byteLength / GIB);
}

function writeCpuSecPerGiB(sample, workDir) {
  const target = join(workDir, 'floor-write.bin');
  try {
    const descriptor = openSync(target, 'w', 0o600);
    let cpuSec;
    try {
      cpuSec = cpuSecOf(() => {
        for (let offset = 0; offset < sample.byteLength; ) offset += writeSync(descriptor, sample, offset, Math.min(CHUNK_BYTES, sample.byteLength - offset));
      });
    } finally {
      closeSync(descriptor);
    }
    return cpuSec / (sample.byteLength / GIB);
  } finally {
    rmSync(target, { force: true });
  }
}

/**
 * CPU seconds per GiB of payload to open packets of `packetBytes` with the native backend, in
 * batches of 256 slots, over `sampleBytes` of the input (a throwaway key; each round seals with
 * fresh nonces first so that every open authenticates, and only the opens are timed).
 */
async function openCpuSecPerGiB(inputPath, packetBytes, sampleBytes) {
  const { loadNativeBackend } = await import('../../dist/crypto/native.js');
  const backend = loadNativeBackend();
  const { tagBytes, layoutWords, nonceBytes } = backend.constants;
  const payloadBytes = packetBytes - HEADER_BYTES - tagBytes;
  const slots = 256;
  const slab = new Uint8Array(slots * packetBytes);
  const layout = new Uint32Array(slots * layoutWords);
  const nonces = new Uint8Array(slots * nonceBytes);
  const status = new Uint8Array(slots);
  for (let slot = 0; slot < slots; slot++) {
    layout[slot * layoutWords] = slot * packetBytes;
    layout[slot * layoutWords + 1] = HEADER_BYTES;
    layout[slot * layoutWords + 2] = payloadBytes;
  }
  const key = backend.createKey('chacha20-poly1305', randomBytes(32));
  const batch = { slab, layout, nonces, count: slots };
  const descriptor = openSync(inputPath, 'r');
  let sequence = 0;
  let openedBytes = 0;
  let cpuMicros = 0;
  try {
    let position = 0;
    while (openedBytes < sampleBytes) {
      for (let slot = 0; slot < slots; slot++) {
        readSync(descriptor, slab, slot * packetBytes + HEADER_BYTES, payloadBytes, position);
        position = (position + payloadBytes) % Math.max(payloadBytes, sampleBytes - payloadBytes);
        new DataView(nonces.buffer).setBigUint64(slot * nonceBytes + 4, BigInt(sequence++));
      }
      key.sealBatch(batch);
      const before = process.cpuUsage();
      key.openBatch(batch, status);
      const used = process.cpuUsage(before);
      cpuMicros += used.user + used.system;
      if (status.some((value) => value !== backend.constants.statusOk)) throw new Error('a sealed packet did not open');
      openedBytes += slots * payloadBytes;
    }
  } finally {
    closeSync(descriptor);
    key.destroy();
  }
  return cpuMicros / 1e6 / (openedBytes / GIB);
}

/**
 * Measures the floor for each datagram size; returns { packetBytes: {sha256, open, write, total} }
 * in CPU-s/GiB, or null for a size that could not be measured (no native addon).
 */
export async function measureReceiverFloor({ inputPath, bytes, workDir, packetSizes }) {
  let sha256 = null;
  let write = null;
  try {
    const sample = readSample(inputPath, Math.min(bytes, SAMPLE_BYTES_MAX));
    sha256 = sha256CpuSecPerGiB(sample);
    write = writeCpuSecPerGiB(sample, workDir);
  } catch (error) {
    process.stderr.write(`receiver floor not measured: ${error.message}\n`);
    return null;
  }
  const floors = {};
  for (const packetBytes of packetSizes) {
    let open = null;
    try {
      open = await openCpuSecPerGiB(inputPath, packetBytes, Math.min(bytes, SAMPLE_BYTES_MAX));
    } catch (error) {
      process.stderr.write(`open cost at ${packetBytes} B not measured: ${error.message}\n`);
      open = null;
    }
    floors[packetBytes] = { sha256, open, write, total: open === null ? null : sha256 + open + write };
  }
  return floors;
}
