#!/usr/bin/env node
// End-to-end pipeline benchmark: sealcast against udpcast (plain) and UFTP (AES-256-GCM) in the
// same run, on the same machine, with the same file, every output verified by SHA-256. See
// docs/benchmarks.md for how to run it and what the rows mean.
//
//   node bench/pipeline.mjs [--quick] [--runs N] [--size-mib N] [--paths loopback,bridge]
//        [--receivers 1,3] [--packet-bytes 1400,8972] [--tools sealcast,sealcast-aes,udpcast,uftp,iperf,node-dgram]
//        [--sealcast-rate 1400=4G,8972=8G] [--sealcast-mode control|key-file] [--loss PERCENT]
//        [--max-minutes M]

import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, openSync, closeSync, writeSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { machineInfo } from './lib/machine.mjs';
import { printTable } from './lib/table.mjs';
import { writeResults } from './lib/results.mjs';
import { addIngressLoss, segmentAtSender, canCreateNamespaces, createBridgeTopology, createLoopbackNamespace, deleteBenchNamespaces, readIngressLoss, removeIngressLoss, teardownAllTopologies } from './netns.mjs';
import { haveCommand, haveGnuTime, killAllChildren, meanDatagramBytes, readMulticastOutCounters } from './peers/process.mjs';
import { SEALCAST_MODES, sealcastPeer } from './peers/sealcast.mjs';
import { udpcast } from './peers/udpcast.mjs';
import { uftp } from './peers/uftp.mjs';
import { iperf } from './peers/iperf.mjs';
import { nodeDgram } from './peers/node-dgram.mjs';
import { measureReceiverFloor } from './lib/receiver-floor.mjs';
import { holdGuestMemory } from './lib/guest-memory.mjs';

const TOOL_NAMES = ['sealcast', 'sealcast-aes', 'udpcast', 'uftp', 'iperf', 'node-dgram'];
const MIB = 1024 * 1024;
// In control mode sealcast repairs losses and lowers its own rate, so a run normally succeeds at
// the first rate. A run that still fails with E_GAP (in key-file mode: any lost datagram; in
// control mode: a loss that was not repaired in time) is retried at 0.8 x the rate, at most 10
// times (4G -> 3.2G -> 2.56G -> 2.05G -> 1.64G -> 1.31G -> ... -> 429M); later runs of the same row
// start at the last rate tried. Steps of 0.8 rather than coarser ones find a rate within 20% of
// the highest one the receivers keep up with; a failed attempt costs little, because its sender
// is stopped as soon as every receiver has ended.
const GAP_RETRIES_MAX = 10;
const GAP_RATE_FACTOR = 0.8;
const GIB = 1024 * MIB;

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: node bench/pipeline.mjs [options]
  --quick                 64 MiB file, 1 run (also SCBENCH_QUICK=1); for development
  --runs N                runs per row, the median is reported (default 3; SCBENCH_RUNS)
  --size-mib N            file size in MiB (default 1024)
  --paths LIST            loopback,bridge (bridge needs root)
  --receivers LIST        receiver counts (default 1,3)
  --packet-bytes LIST     datagram sizes (default 1400,8972)
  --tools LIST            sealcast,sealcast-aes,udpcast,uftp,iperf,node-dgram (default all)
  --sealcast-rate MAP     first --rate per size, e.g. 1400=4G,8972=8G; lowered on E_GAP
  --sealcast-mode MODE    control (default: per-subscriber keys over the control plane, loss
                          repair on) or key-file (one group key, no repair)
  --loss PERCENT          drop PERCENT % of the frames reaching each receiver (nftables on its
                          veth, every tool alike); bridge path only, needs root and nft;
                          implies --segment-at-sender
  --segment-at-sender     bridge path: the sender's veth cuts GSO sends into single datagrams
                          (as on a real wire) instead of passing them through the bridge whole
  --no-warm-up            skip the uncounted transfer that starts each group of rows (the
                          first transfer after a change costs its receivers far more)
  --keep-page-reporting   leave the VM's free page reporting on (by default the benchmark, as
                          root, turns it off while it runs and restores it: see
                          bench/lib/guest-memory.mjs)
  --max-minutes M         stop starting new runs after M minutes (default 90)
  --help`;

function parseList(text, convert = (item) => item) {
  return text.split(',').map((item) => item.trim()).filter(Boolean).map(convert);
}

function positiveInteger(name, text) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got "${text}"`);
  return value;
}

/** --loss: a percentage in (0, 50], e.g. 1 or 0.5. */
function lossPercent(text) {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0 && value <= 50)) throw new RangeError(`--loss must be a percentage above 0 and at most 50, e.g. 1, got "${text}"`);
  return value;
}

function parseOptions(argv, env) {
  const options = {
    quick: env.SCBENCH_QUICK === '1',
    runs: env.SCBENCH_RUNS ? positiveInteger('SCBENCH_RUNS', env.SCBENCH_RUNS) : null,
    sizeMib: null,
    paths: ['loopback', 'bridge'],
    receivers: [1, 3],
    packetBytes: [1400, 8972],
    tools: [...TOOL_NAMES],
    // 4G at 1400 B: one sender process tops out near 440 MB/s of payload here, so 3G (about 340
    // MB/s) made the sender's pacing, not its CPU, the limit whenever UFTP ran fast on loopback.
    sealcastRates: { 1400: '4G', 8972: '8G' },
    sealcastMode: 'control',
    lossPercent: 0,
    segmentAtSender: false,
    warmUp: true,
    holdGuestMemory: true,
    maxMinutes: 90,
  };
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index];
    const value = () => {
      if (index + 1 >= argv.length) throw new RangeError(`${flag} needs a value`);
      index += 1;
      return argv[index];
    };
    switch (flag) {
      case '--quick': options.quick = true; break;
      case '--runs': options.runs = positiveInteger('--runs', value()); break;
      case '--size-mib': options.sizeMib = positiveInteger('--size-mib', value()); break;
      case '--paths': options.paths = parseList(value()); break;
      case '--receivers': options.receivers = parseList(value(), (item) => positiveInteger('--receivers', item)); break;
      case '--packet-bytes': options.packetBytes = parseList(value(), (item) => positiveInteger('--packet-bytes', item)); break;
      case '--tools': options.tools = parseList(value()); break;
      case '--sealcast-rate':
        for (const pair of parseList(value())) {
          const [size, rate] = pair.split('=');
          if (!rate || !/^\d+(\.\d+)?[KMG]?$/i.test(rate)) throw new RangeError(`--sealcast-rate entries look like 1400=3G, got "${pair}"`);
          options.sealcastRates[positiveInteger('--sealcast-rate size', size)] = rate;
        }
        break;
      case '--sealcast-mode': options.sealcastMode = value(); break;
      case '--loss': options.lossPercent = lossPercent(value()); break;
      case '--segment-at-sender': options.segmentAtSender = true; break;
      case '--no-warm-up': options.warmUp = false; break;
      case '--keep-page-reporting': options.holdGuestMemory = false; break;
      case '--max-minutes': options.maxMinutes = positiveInteger('--max-minutes', value()); break;
      case '--help': case '-h': options.help = true; break;
      default: throw new RangeError(`unknown option "${flag}"\n${USAGE}`);
    }
  }
  for (const path of options.paths) if (!['loopback', 'bridge'].includes(path)) throw new RangeError(`--paths takes loopback,bridge, got "${path}"`);
  for (const tool of options.tools) if (!TOOL_NAMES.includes(tool)) throw new RangeError(`unknown tool "${tool}"`);
  if (!SEALCAST_MODES.includes(options.sealcastMode)) throw new RangeError(`--sealcast-mode takes ${SEALCAST_MODES.join(' or ')}, got "${options.sealcastMode}"`);
  if (options.lossPercent > 0 && options.paths.includes('loopback')) {
    throw new RangeError('--loss works only on the bridge path (add --paths bridge): on loopback one drop would hit every receiver at once, and the rule needs a device of its own per receiver');
  }
  // A drop must hit one datagram, as on a wire, not a whole GSO send of up to 64 (see netns.mjs).
  if (options.lossPercent > 0) options.segmentAtSender = true;
  for (const size of options.packetBytes) if (size < 512 || size > 8972) throw new RangeError(`--packet-bytes must be 512..8972 (the bridge MTU is 9000), got ${size}`);
  options.runs ??= options.quick ? 1 : 3;
  options.sizeMib ??= options.quick ? 64 : 1024;
  return options;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const median = (values) => {
  const sorted = values.filter((value) => typeof value === 'number' && Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
/** Debian package versions of the peers, when dpkg knows them. */
function peerVersions() {
  try {
    const text = execFileSync('dpkg-query', ['-W', '-f', '${Package} ${Version}\n', 'uftp', 'udpcast', 'iperf'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    return Object.fromEntries(text.trim().split('\n').map((line) => line.split(' ')));
  } catch (error) {
    // dpkg-query exits non-zero when one package is unknown but still prints the others.
    const text = error.stdout ?? '';
    return Object.fromEntries(text.trim().split('\n').filter(Boolean).map((line) => line.split(' ')));
  }
}

const mean = (values) => (values.length ? values.reduce((sum, value) => sum + value, 0) / values.length : null);
const log = (text) => process.stderr.write(`${text}\n`);

/** Writes `bytes` of random data to `path` and returns its SHA-256 (hex). */
function writeRandomFile(path, bytes) {
  const chunk = Buffer.allocUnsafe(16 * MIB);
  const hash = createHash('sha256');
  const fd = openSync(path, 'w', 0o600);
  try {
    for (let written = 0; written < bytes; ) {
      const length = Math.min(chunk.length, bytes - written);
      const view = chunk.subarray(0, length);
      randomFillSync(view);
      hash.update(view);
      writeSync(fd, view);
      written += length;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

async function sha256File(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MIB })) hash.update(chunk);
  return hash.digest('hex');
}

/** True only when the file exists, has the input's length and the input's digest. */
async function verifyOutput(path, expectedBytes, expectedDigest) {
  if (!existsSync(path)) return { ok: false, why: 'no output file' };
  const bytes = statSync(path).size;
  if (bytes !== expectedBytes) return { ok: false, why: `output has ${bytes} bytes, expected ${expectedBytes}` };
  const digest = await sha256File(path);
  return digest === expectedDigest ? { ok: true } : { ok: false, why: 'SHA-256 differs from the input' };
}

function describeExit(result) {
  if (result.spawnError) return `${result.label}: could not start: ${result.spawnError}`;
  if (result.timedOut) return `${result.label}: timed out`;
  if (result.code !== 0) {
    const lastLine = result.stderrTail.trim().split('\n').filter(Boolean).at(-1) ?? '';
    return `${result.label}: exit ${result.code ?? result.signal}${lastLine ? ` (${lastLine.slice(0, 160)})` : ''}`;
  }
  return null;
}

// Rates like "3G" scaled down by a factor, in whole megabits.
function lowerRate(rate, factor) {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(rate);
  const unit = { '': 1, K: 1e3, M: 1e6, G: 1e9 }[match[2].toUpperCase()];
  const bits = Number(match[1]) * unit * factor;
  return `${Math.max(1, Math.round(bits / 1e6))}M`;
}

// ---------------------------------------------------------------------------------------------
// One run of one tool

async function runOnce(peer, context) {
  const { input, sender } = context;
  const countersBefore = sender.namespace ? readMulticastOutCounters(sender.namespace) : null;
  const lossBefore = context.lossPercent > 0 ? context.receivers.map(readIngressLoss) : null;
  const result = await peer.run(context);
  const countersAfter = sender.namespace ? readMulticastOutCounters(sender.namespace) : null;
  const lossAfter = lossBefore ? context.receivers.map(readIngressLoss) : null;
  const failures = [];
  for (const exit of [result.sender, ...result.receivers]) {
    const problem = describeExit(exit);
    if (problem) failures.push(problem);
  }
  let bytes = input.bytes;
  let seconds = (result.endedAtMs - result.startedAtMs) / 1000;
  let verified = null;
  if (result.outputs) {
    const checks = [];
    for (const output of result.outputs) checks.push(await verifyOutput(output, input.bytes, input.digest));
    verified = checks.every((check) => check.ok);
    checks.forEach((check, index) => {
      if (!check.ok) failures.push(`receiver ${index + 1}: ${check.why}`);
    });
    for (const output of result.outputs) rmSync(output, { force: true });
  } else if (result.measured) {
    ({ bytes, seconds } = result.measured);
  } else {
    failures.push('no measurement');
  }
  // CPU is charged per GiB offered: for ceiling rows that is what was sent, not what arrived.
  const gib = (result.measured?.cpuBytes ?? bytes) / GIB;
  const receiverCpu = result.receivers.map((exit) => (exit.cpuSec === null ? null : exit.cpuSec / gib));
  return {
    ok: failures.length === 0,
    gap: Boolean(result.gap),
    gapKind: result.gapKind ?? null,
    failures,
    verified,
    mbPerSec: bytes / seconds / 1e6,
    senderCpuSecPerGiB: result.sender.cpuSec === null ? null : result.sender.cpuSec / gib,
    receiverCpuSecPerGiB: receiverCpu.includes(null) ? null : { mean: mean(receiverCpu), max: Math.max(...receiverCpu), perReceiver: receiverCpu },
    datagramBytes: result.datagramBytes ?? meanDatagramBytes(countersBefore, countersAfter),
    settings: result.settings ?? {},
    notes: result.notes ?? [],
    repair: result.repair ?? null,
    setupSec: result.setupSec ?? null,
    lossMeasured: lossBefore ? measuredLoss(lossBefore, lossAfter) : null,
  };
}

/** Frames that reached the receivers' loss rules during one run, and how many were dropped. */
function measuredLoss(before, after) {
  let frames = 0;
  let dropped = 0;
  for (let index = 0; index < before.length; index += 1) {
    if (!before[index] || !after[index]) return null;
    frames += after[index].frames - before[index].frames;
    dropped += after[index].dropped - before[index].dropped;
  }
  return { frames, dropped };
}

/** Bits per second as "1.54G" or "983M", the way --rate is written. */
function formatRate(bitsPerSecond) {
  if (!Number.isFinite(bitsPerSecond)) return '?';
  return bitsPerSecond >= 1e9 ? `${Number((bitsPerSecond / 1e9).toFixed(2))}G` : `${Math.round(bitsPerSecond / 1e6)}M`;
}

/** sealcast's repair figures of one attempt, for the notes: "3G ok (1234 resent/41 req, min 1.2G)". */
function describeRepair(repair) {
  if (!repair) return '';
  const parts = [`${repair.datagrams} resent/${repair.requests} req`];
  if (repair.unavailableBytes > 0) parts.push(`${repair.unavailableBytes} B gone`);
  parts.push(`min ${formatRate(repair.rateLowestBitsPerSecond)}`);
  return ` (${parts.join(', ')})`;
}

// ---------------------------------------------------------------------------------------------
// Rows

function summariseRow(key, attempts, runsWanted) {
  const good = attempts.filter((attempt) => attempt.ok);
  const failed = attempts.filter((attempt) => !attempt.ok);
  const notes = [...new Set(attempts.flatMap((attempt) => attempt.notes))];
  if (key.tool === 'sealcast') {
    const outcome = (attempt) => (attempt.ok ? 'ok' : attempt.gap ? (attempt.gapKind ?? 'E_GAP') : 'failed');
    notes.unshift(`--rate: ${attempts.map((attempt) => `${attempt.settings.rate} ${outcome(attempt)}${describeRepair(attempt.repair)}`).join(', ')}`);
    const setup = median(good.map((attempt) => attempt.setupSec));
    if (setup !== null) notes.push(`set-up ${setup.toFixed(2)} s before the clock`);
  }
  const lossSeen = attempts.map((attempt) => attempt.lossMeasured).filter(Boolean);
  if (lossSeen.length) {
    const frames = lossSeen.reduce((sum, loss) => sum + loss.frames, 0);
    const dropped = lossSeen.reduce((sum, loss) => sum + loss.dropped, 0);
    notes.push(`nft dropped ${frames ? ((100 * dropped) / frames).toFixed(2) : '0'} % of ${frames} frames`);
  }
  // One line per distinct failure, so a row that failed the same way five times stays readable.
  const failureCounts = new Map();
  for (const attempt of failed) {
    const text = attempt.failures.join('; ').replace(/\d+\.\.\d+ \(\d+ bytes\)/g, 'N..M');
    failureCounts.set(text, (failureCounts.get(text) ?? 0) + 1);
  }
  for (const [text, count] of failureCounts) notes.push(`FAILED x${count}: ${text}`);
  if (good.length < runsWanted) notes.push(`${good.length} of ${runsWanted} runs succeeded`);
  const isCeiling = key.tool === 'iperf2';
  const hasOutputs = good.some((attempt) => attempt.verified !== null);
  const repairs = good.map((attempt) => attempt.repair).filter(Boolean);
  return {
    ...key,
    datagramBytes: median(good.map((attempt) => attempt.datagramBytes)),
    mbPerSec: median(good.map((attempt) => attempt.mbPerSec)),
    senderCpuSecPerGiB: isCeiling ? null : median(good.map((attempt) => attempt.senderCpuSecPerGiB)),
    receiverCpuSecPerGiB: isCeiling || good.length === 0 ? null : {
      mean: median(good.map((attempt) => attempt.receiverCpuSecPerGiB?.mean)),
      max: median(good.map((attempt) => attempt.receiverCpuSecPerGiB?.max)),
      perReceiver: Array.from({ length: key.receivers }, (_, index) => median(good.map((attempt) => attempt.receiverCpuSecPerGiB?.perReceiver[index]))),
    },
    verified: good.length > 0 && !hasOutputs ? null : good.length > 0 && good.every((attempt) => attempt.verified === true),
    runs: good.length,
    failedRuns: failed.length,
    rate: key.tool === 'sealcast' ? [...new Set(good.map((attempt) => attempt.settings.rate))].join(',') || null : undefined,
    // sealcast in control mode: DATA datagrams sent again for repair requests, as a count and as a
    // fraction of the DATA datagrams, and the lowest rate the sender adapted down to (medians).
    repairDatagrams: repairs.length ? median(repairs.map((repair) => repair.datagrams)) : undefined,
    repairFraction: repairs.length ? median(repairs.map((repair) => (repair.dataPackets > 0 ? repair.datagrams / repair.dataPackets : 0))) : undefined,
    rateLowestBitsPerSecond: repairs.length ? median(repairs.map((repair) => repair.rateLowestBitsPerSecond)) : undefined,
    setupSec: key.tool === 'sealcast' ? median(good.map((attempt) => attempt.setupSec)) ?? undefined : undefined,
    status: good.length > 0 ? 'ok' : 'failed',
    notes,
  };
}

function skippedRow(key, reason) {
  return { ...key, datagramBytes: null, mbPerSec: null, senderCpuSecPerGiB: null, receiverCpuSecPerGiB: null, verified: null, runs: 0, failedRuns: 0, status: 'skipped', notes: [reason] };
}

// ---------------------------------------------------------------------------------------------
// Targets (issue 3): at 1400 B, sealcast >= 2 x UFTP's encrypted throughput and >= udpcast's
// plain throughput, with sender and receiver CPU-s/GiB <= 0.5 x UFTP's, compared in the same run.

function evaluateTargets(rows) {
  const verdicts = [];
  const find = (tool, mode, path, receivers) => rows.find((row) => row.tool === tool && row.mode === mode && row.path === path && row.receivers === receivers && row.packetBytes === 1400 && row.status === 'ok');
  for (const row of rows) {
    if (row.tool !== 'sealcast' || row.packetBytes !== 1400) continue;
    const where = `${row.mode}, ${row.path}, ${row.receivers} receiver(s)`;
    if (row.status !== 'ok') {
      verdicts.push({ target: `sealcast ${where}`, pass: false, detail: 'sealcast run failed' });
      continue;
    }
    const uftpRow = find('UFTP', 'aes256-gcm', row.path, row.receivers);
    const udpcastRow = find('udpcast', 'plain', row.path, row.receivers);
    if (uftpRow) {
      verdicts.push({ target: `throughput >= 2 x UFTP (${where})`, pass: row.mbPerSec >= 2 * uftpRow.mbPerSec, detail: `${row.mbPerSec.toFixed(0)} vs 2 x ${uftpRow.mbPerSec.toFixed(0)} MB/s` });
      verdicts.push({ target: `sender CPU <= 0.5 x UFTP (${where})`, pass: row.senderCpuSecPerGiB <= 0.5 * uftpRow.senderCpuSecPerGiB, detail: `${row.senderCpuSecPerGiB.toFixed(2)} vs 0.5 x ${uftpRow.senderCpuSecPerGiB.toFixed(2)} CPU-s/GiB` });
      verdicts.push({ target: `receiver CPU <= 0.5 x UFTP (${where})`, pass: row.receiverCpuSecPerGiB.max <= 0.5 * uftpRow.receiverCpuSecPerGiB.mean, detail: `${row.receiverCpuSecPerGiB.max.toFixed(2)} (max) vs 0.5 x ${uftpRow.receiverCpuSecPerGiB.mean.toFixed(2)} CPU-s/GiB` });
    }
    if (udpcastRow) {
      verdicts.push({ target: `throughput >= udpcast plain (${where})`, pass: row.mbPerSec >= udpcastRow.mbPerSec, detail: `${row.mbPerSec.toFixed(0)} vs ${udpcastRow.mbPerSec.toFixed(0)} MB/s` });
    }
    if (!uftpRow && !udpcastRow) verdicts.push({ target: `sealcast ${where}`, pass: null, detail: 'no peer row to compare with in this run' });
  }
  return verdicts;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const options = parseOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!haveGnuTime()) throw new Error('/usr/bin/time (GNU time) is needed to measure CPU per process: apt-get install time');
  const startedAtMs = performance.now();
  const deadlineMs = startedAtMs + options.maxMinutes * 60_000;
  const isRoot = canCreateNamespaces();
  if (options.lossPercent > 0) {
    if (!isRoot) throw new RangeError('--loss needs root: the loss rule is an nftables rule in each receiver\'s network namespace (bridge path)');
    if (!haveCommand('nft')) throw new RangeError('--loss needs nft: apt-get install -y nftables');
  }

  const peers = {
    sealcast: sealcastPeer({ suite: 'chacha20-poly1305', keyMode: options.sealcastMode }),
    'sealcast-aes': sealcastPeer({ suite: 'aes-256-gcm', keyMode: options.sealcastMode }),
    udpcast,
    uftp,
    iperf,
    'node-dgram': nodeDgram,
  };
  const active = [];
  const globalSkips = [];
  for (const name of options.tools) {
    const peer = peers[name];
    const missing = peer.missing();
    if (missing) {
      log(`skipping ${peer.tool} (${peer.mode}): ${missing}`);
      globalSkips.push({ tool: peer.tool, mode: peer.mode, reason: missing });
    } else {
      active.push(peer);
    }
  }

  // RAM-backed storage keeps disk speed out of the figures (all tools write their outputs there).
  const scratchRoot = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const workDir = mkdtempSync(join(scratchRoot, 'scbench-'));
  const guestMemory = options.holdGuestMemory ? holdGuestMemory() : { held: false, reason: '--keep-page-reporting' };
  log(guestMemory.held
    ? `free page reporting off while the benchmark runs (page_reporting_order ${guestMemory.previous} -> never; restored at the end)`
    : `free page reporting left as it is: ${guestMemory.reason}`);
  const cleanup = () => {
    killAllChildren();
    teardownAllTopologies();
    rmSync(workDir, { recursive: true, force: true });
    if (guestMemory.held) guestMemory.restore();
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      log(`\n${signal}: stopping children, removing namespaces and temp files`);
      process.exit(130);
    });
  }
  if (isRoot) deleteBenchNamespaces();
  if (options.segmentAtSender && options.paths.includes('loopback')) log('--segment-at-sender applies to the bridge path only; the loopback path runs as always');

  const inputPath = join(workDir, 'input.bin');
  const bytes = options.sizeMib * MIB;
  log(`writing ${options.sizeMib} MiB of random data to ${inputPath}`);
  const digest = writeRandomFile(inputPath, bytes);
  const input = { path: inputPath, bytes, digest };
  const receiverCountMax = Math.max(...options.receivers);
  for (const peer of active) peer.prepare?.({ workDir, receiverCountMax });
  const sealcastActive = active.find((peer) => peer.tool === 'sealcast');
  const sealcastStartupCpuSec = sealcastActive ? await sealcastActive.startupCpuSec({ workDir }) : null;

  const rows = [];
  const sealcastRate = new Map();
  const timeoutMs = Math.max(60_000, (bytes / 10e6) * 1000);

  for (const path of options.paths) {
    if (path === 'bridge' && !isRoot) {
      log('skipping the namespace bridge path: creating network namespaces needs root');
      for (const peer of active) rows.push(skippedRow({ tool: peer.tool, mode: peer.mode, path, receivers: null, packetBytes: null, lossPercent: options.lossPercent }, 'not root: no namespace bridge'));
      continue;
    }
    let topology = null;
    try {
      if (path === 'loopback') {
        topology = isRoot ? createLoopbackNamespace() : null;
      } else {
        topology = createBridgeTopology(receiverCountMax);
        if (options.segmentAtSender) segmentAtSender(topology.sender);
        // One rule per receiver, for the whole path: every tool's runs cross the same loss.
        if (options.lossPercent > 0) {
          for (const endpoint of topology.receivers(receiverCountMax)) addIngressLoss(endpoint, options.lossPercent);
          log(`dropping ${options.lossPercent} % of the frames reaching each receiver (nftables ingress rule on its veth)`);
        }
      }
      // Without root the loopback path uses the host's lo with each tool's interface flag.
      const hostLoopback = { namespace: null, device: 'lo', address: '127.0.0.1' };
      const sender = topology ? topology.sender : hostLoopback;
      const receiversFor = (count) => (topology ? topology.receivers(count) : Array.from({ length: count }, () => hostLoopback));

      for (const receiverCount of options.receivers) {
        for (const packetBytes of options.packetBytes) {
          const attemptsByPeer = new Map();
          const runnable = [];
          for (const peer of active) {
            const key = { tool: peer.tool, mode: peer.mode, path, receivers: receiverCount, packetBytes, lossPercent: options.lossPercent };
            const reason = peer.unsupported({ path, receivers: receiverCount, privateNamespace: topology !== null });
            if (reason) {
              rows.push(skippedRow(key, reason));
              continue;
            }
            attemptsByPeer.set(peer, { key, attempts: [] });
            runnable.push(peer);
          }
          // The first transfer after a topology or group change costs its receivers far more than
          // the next ones (on this VM, a receiver wrote its first fresh output at 6.5 CPU-s/GiB
          // and the same transfer right after at 3.8): the guest's first touch of freed memory.
          // One uncounted transfer of the first tool takes that cost, so that no tool's row
          // carries it because of where it stands in --tools.
          if (options.warmUp && runnable.length > 0 && performance.now() <= deadlineMs) {
            const peer = runnable[0];
            const rateKey = `${path}/${receiverCount}/${packetBytes}/${peer.mode}`;
            const rate = sealcastRate.get(rateKey) ?? options.sealcastRates[packetBytes] ?? '2G';
            log(`${path} ${receiverCount}r ${packetBytes}B ${peer.tool} ${peer.mode} warm-up (not counted)`);
            const outcome = await runOnce(peer, {
              path, sender, receivers: receiversFor(receiverCount), input, inputPath, packetBytes,
              workDir, timeoutMs, rate, durationSec: options.quick ? 2 : 4, lossPercent: options.lossPercent,
            });
            log(`  -> ${outcome.ok ? `${outcome.mbPerSec.toFixed(1)} MB/s (warm-up)` : `warm-up failed: ${outcome.failures.join('; ')}`}`);
          }
          // Runs are interleaved (run 1 of every tool, then run 2, ...) so that a disturbance on
          // the shared machine hits every tool alike instead of one tool's whole row.
          for (let run = 1; run <= options.runs; run += 1) {
            for (const peer of runnable) {
              const entry = attemptsByPeer.get(peer);
              if (performance.now() > deadlineMs) {
                entry.deadline = true;
                continue;
              }
              const rateKey = `${path}/${receiverCount}/${packetBytes}/${peer.mode}`;
              let rate = sealcastRate.get(rateKey) ?? options.sealcastRates[packetBytes] ?? '2G';
              const tries = peer.retriesOnGap ? GAP_RETRIES_MAX + 1 : 1;
              for (let attempt = 1; attempt <= tries; attempt += 1) {
                const runDir = workDir;
                log(`${path} ${receiverCount}r ${packetBytes}B ${peer.tool} ${peer.mode} run ${run}/${options.runs}${peer.retriesOnGap ? ` --rate ${rate}` : ''}`);
                const outcome = await runOnce(peer, {
                  path, sender, receivers: receiversFor(receiverCount), input, inputPath, packetBytes,
                  workDir: runDir, timeoutMs, rate, durationSec: options.quick ? 2 : 4, lossPercent: options.lossPercent,
                });
                entry.attempts.push(outcome);
                log(`  -> ${outcome.ok ? `${outcome.mbPerSec.toFixed(1)} MB/s, sender ${outcome.senderCpuSecPerGiB?.toFixed(2)} CPU-s/GiB, receiver(s) ${outcome.receiverCpuSecPerGiB?.perReceiver.map((cpu) => cpu.toFixed(2)).join('/') ?? '-'} CPU-s/GiB` : `FAILED: ${outcome.failures.join('; ')}`}`);
                if (outcome.ok || !outcome.gap) break;
                rate = lowerRate(rate, GAP_RATE_FACTOR);
                sealcastRate.set(rateKey, rate);
              }
            }
          }
          for (const peer of runnable) {
            const entry = attemptsByPeer.get(peer);
            const row = summariseRow(entry.key, entry.attempts, options.runs);
            if (entry.deadline) row.notes.push(`--max-minutes ${options.maxMinutes} reached before all runs`);
            rows.push(row);
          }
        }
      }
    } finally {
      // Deleting the namespaces deletes the rules with them; removing them first keeps a
      // teardown that fails from leaving a lossy link behind.
      if (topology?.kind === 'bridge' && options.lossPercent > 0) {
        for (const endpoint of topology.receivers(receiverCountMax)) removeIngressLoss(endpoint);
      }
      topology?.teardown();
    }
  }

  // Measured while the input still exists; the scratch directory is removed on exit.
  let receiverFloor = null;
  if (rows.some((row) => row.tool === 'sealcast' && row.status === 'ok')) {
    log('measuring the per-byte floor of a verifying receiver (SHA-256, open, file write)');
    receiverFloor = await measureReceiverFloor({ inputPath, bytes, workDir, packetSizes: options.packetBytes });
  }
  const targets = evaluateTargets(rows);
  const columns = [
    { key: 'tool' }, { key: 'mode' }, { key: 'path' },
    { key: 'receivers', title: 'rcv' },
    ...(options.lossPercent > 0 ? [{ key: 'lossPercent', title: 'loss %' }] : []),
    { key: 'packetBytes', title: 'pkt B' },
    { key: 'datagramBytes', title: 'wire B' },
    { key: 'mbPerSec', title: 'MB/s' },
    { key: 'senderCpuSecPerGiB', title: 'snd CPU-s/GiB' },
    { key: 'receiverCpuSecPerGiB', title: 'rcv CPU-s/GiB mean/max', format: (value) => (value && value.mean !== null ? `${value.mean.toFixed(2)}/${value.max.toFixed(2)}` : '-') },
    { key: 'verified', title: 'verified', format: (value, row) => (row.status === 'skipped' ? 'skipped' : value === null ? 'n/a' : value ? 'yes' : 'FAILED') },
    { key: 'runs', title: 'runs', format: (value, row) => `${value}/${value + row.failedRuns}` },
    ...(options.sealcastMode === 'control' && active.some((peer) => peer.tool === 'sealcast') ? [{
      key: 'repairDatagrams',
      title: 'resent (% of data)',
      format: (value, row) => (value === undefined || value === null ? '-' : `${Math.round(value)} (${(100 * row.repairFraction).toFixed(2)}%)`),
    }, {
      key: 'rateLowestBitsPerSecond',
      title: 'lowest rate',
      format: (value) => (value === undefined || value === null ? '-' : formatRate(value)),
    }] : []),
    { key: 'notes', title: 'notes', align: 'left', format: (value) => value.join('; ').slice(0, 140) },
  ];
  const sealcastHow = options.sealcastMode === 'control' ? 'sealcast in control mode (per-subscriber keys, loss repair on)' : 'sealcast with --key-file (one group key, no loss repair)';
  const lossHow = `${options.lossPercent > 0 ? `, ${options.lossPercent} % random loss on every receiver's link` : ''}${options.segmentAtSender ? ', GSO sends cut into datagrams at the sender\'s veth' : ''}`;
  process.stdout.write(`\nsealcast pipeline benchmark: ${options.sizeMib} MiB random file, median of ${options.runs} run(s), every output SHA-256 verified; ${sealcastHow}${lossHow}\n\n`);
  printTable(rows.filter((row) => row.status !== 'skipped'), columns);
  const skipped = rows.filter((row) => row.status === 'skipped');
  if (skipped.length || globalSkips.length) process.stdout.write('\nSkipped:\n');
  if (skipped.length) {
    // One line per tool and reason, naming the paths, receiver counts and sizes it covers.
    const groups = new Map();
    for (const row of skipped) {
      const groupKey = `${row.tool} ${row.mode}: ${row.notes.join('; ')}`;
      if (!groups.has(groupKey)) groups.set(groupKey, { paths: new Set(), receivers: new Set(), sizes: new Set() });
      const group = groups.get(groupKey);
      group.paths.add(row.path);
      group.receivers.add(row.receivers ?? 'any');
      group.sizes.add(row.packetBytes ?? 'any');
    }
    for (const [groupKey, group] of groups) {
      process.stdout.write(`  ${groupKey} [${[...group.paths].join('/')}, ${[...group.receivers].join('/')} receiver(s), ${[...group.sizes].join('/')} B]\n`);
    }
  }
  for (const skip of globalSkips) process.stdout.write(`  ${skip.tool} ${skip.mode}: not run: ${skip.reason}\n`);
  if (sealcastStartupCpuSec !== null) {
    process.stdout.write(`\nOne sealcast process costs ${sealcastStartupCpuSec.toFixed(2)} CPU-s to start (sealcast doctor), i.e. ${(sealcastStartupCpuSec / (bytes / GIB)).toFixed(2)} CPU-s/GiB of this ${options.sizeMib} MiB file; it is included in every sealcast CPU figure above.\n`);
  }
  if (targets.length) {
    process.stdout.write('\nTargets at 1400 B (same run):\n');
    for (const verdict of targets) process.stdout.write(`  ${verdict.pass === null ? 'n/a ' : verdict.pass ? 'PASS' : 'FAIL'}  ${verdict.target}: ${verdict.detail}\n`);
  }
  if (receiverFloor) {
    process.stdout.write('\nPer-byte floor of a receiver that opens every packet, checks the SHA-256 and writes the file\n(measured now on this input; the kernel\'s delivery cost comes on top):\n');
    for (const [packetBytes, floor] of Object.entries(receiverFloor)) {
      const part = (value) => (value === null ? 'n/a' : value.toFixed(2));
      process.stdout.write(`  ${packetBytes} B: SHA-256 ${part(floor.sha256)} + open ${part(floor.open)} + write ${part(floor.write)} = ${part(floor.total)} CPU-s/GiB\n`);
    }
  }
  const resultsPath = writeResults('pipeline', {
    machine: machineInfo({ root: isRoot, scratch: scratchRoot, peerVersions: peerVersions() }),
    settings: { sealcastStartupCpuSec, freePageReportingOff: guestMemory.held, sealcastMode: options.sealcastMode, lossPercent: options.lossPercent, segmentAtSender: options.segmentAtSender, sizeBytes: bytes, runs: options.runs, quick: options.quick, paths: options.paths, receivers: options.receivers, packetBytes: options.packetBytes, skippedTools: globalSkips },
    rows,
    targets,
    receiverFloorCpuSecPerGiB: receiverFloor,
    elapsedSec: (performance.now() - startedAtMs) / 1000,
  });
  process.stdout.write(`\nwrote ${resultsPath}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    // Bad options are the user's to fix and need no stack trace.
    if (error instanceof RangeError) {
      log(`bench/pipeline: ${error.message}`);
      process.exit(2);
    }
    log(`bench/pipeline: ${error.stack ?? error.message}`);
    // Exit now rather than when the last child's deadline passes: the exit handlers kill the
    // children, delete the namespaces and the scratch directory.
    process.exit(1);
  },
);
