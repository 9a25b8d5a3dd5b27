// The per-byte work any receiver must do that opens every packet, checks the whole stream's
// SHA-256 and writes a file, measured on this machine in the same run as the pipeline rows: the
// CPU time of SHA-256 over the input (OpenSSL's CLI, the same SHA code Node uses), of opening the
// input as sealed packets of the row's size with the native batch (one thread), and of writing
// the input to the scratch directory (a fresh file, as each receiver's output is). The kernel's
// own cost to deliver the datagrams comes on top and is not included, so the sum is a floor, not
// an estimate: a receiver cannot use less CPU per GiB than this, whatever else it does better.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const GIB = 1024 ** 3;
const HEADER_BYTES = 36;

/** CPU seconds (user + system) of a child process, from GNU time. */
function childCpuSec(command, args) {
  const result = spawnSync('/usr/bin/time', ['-f', '%U %S', command, ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr?.toString().trim() ?? result.error?.message}`);
  const [user, system] = result.stderr.toString().trim().split('\n').pop().split(' ').map(Number);
  if (!Number.isFinite(user) || !Number.isFinite(system)) throw new Error(`no CPU time from GNU time for ${command}`);
  return user + system;
}

function sha256CpuSecPerGiB(inputPath, bytes) {
  return childCpuSec('openssl', ['dgst', '-sha256', inputPath]) / (bytes / GIB);
}

function writeCpuSecPerGiB(inputPath, bytes, workDir) {
  const target = join(workDir, 'floor-write.bin');
  try {
    return childCpuSec('dd', [`if=${inputPath}`, `of=${target}`, 'bs=256K', 'status=none']) / (bytes / GIB);
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
 * in CPU-s/GiB, or null for a size that could not be measured (no openssl, no native addon).
 */
export async function measureReceiverFloor({ inputPath, bytes, workDir, packetSizes }) {
  let sha256 = null;
  let write = null;
  try {
    sha256 = sha256CpuSecPerGiB(inputPath, bytes);
    write = writeCpuSecPerGiB(inputPath, bytes, workDir);
  } catch (error) {
    process.stderr.write(`receiver floor not measured: ${error.message}\n`);
    return null;
  }
  const floors = {};
  for (const packetBytes of packetSizes) {
    let open = null;
    try {
      open = await openCpuSecPerGiB(inputPath, packetBytes, Math.min(bytes, 256 * 1024 * 1024));
    } catch (error) {
      process.stderr.write(`open cost at ${packetBytes} B not measured: ${error.message}\n`);
      open = null;
    }
    floors[packetBytes] = { sha256, open, write, total: open === null ? null : sha256 + open + write };
  }
  return floors;
}
