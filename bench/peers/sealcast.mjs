// sealcast itself, run through its CLI exactly as a user would (`node bin/sealcast.js ...`), one
// process per sender and receiver, in one of two key modes:
//
// - control (the default, the product's main mode): a registry with one subscriber per receiver
//   and a server key in the scratch directory; the sender runs the control server
//   (`--control ADDR:0 --wait-for N`), each receiver registers with its own pre-shared key, pins
//   the server's fingerprint and asks for lost datagrams over its control connection, which the
//   sender multicasts again (and lowers its rate when receivers lose too much).
// - key-file: one group key (`--key-file`), no way back from the receivers and so no repair: a
//   lost datagram ends the receiver with E_GAP (exit 7).
//
// Either way a receiver that still ends in E_GAP (or in E_IO because its output fell behind) means
// the rate was too high, and the caller retries at a lower --rate and records the rate.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { spawnMeasured, waitFor } from './process.mjs';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO_ROOT, 'bin', 'sealcast.js');
const GROUP = '239.255.77.30:47030';
export const EXIT_GAP = 7;
export const SEALCAST_MODES = ['control', 'key-file'];
const EXIT_IO = 3;
const OUTPUT_OVERRUN = /the output is not keeping up with the stream/;
const END_REPEATS_MAX = 8;
const SENDER_STOP_GRACE_MS = 2_000;
// key-file mode: the sender starts once every receiver has said it is listening (it has joined the
// group); the clock starts with the sender, so Node's start-up in the receivers is not charged.
const RECEIVER_READY_MS = 15_000;
const KEYGEN_TIMEOUT_MS = 20_000;
// control mode: how long the sender may take to print its control address and fingerprint (Node
// start-up, SQLite, the server key), and how long it waits for every receiver to hold the key.
const CONTROL_READY_MS = 20_000;
const WAIT_FOR_SUBSCRIBERS_SEC = 60;
// The clock starts when the sender says it starts sending; polling stderr this often puts the
// start at most this late, which is negligible against runs of a second or more.
const START_POLL_MS = 2;
const CONTROL_LINE = /control server on (\S+):(\d+), fingerprint (SHA256:[A-Za-z0-9+/=_-]+)/;
const SENDING_LINE = 'sealcast send: session ';

/** A sealcast variant: one AEAD suite, in control mode (repair on) or key-file mode. */
export function sealcastPeer({ suite, keyMode = 'control' }) {
  if (!SEALCAST_MODES.includes(keyMode)) throw new RangeError(`sealcast mode must be ${SEALCAST_MODES.join(' or ')}, got "${keyMode}"`);
  return {
    tool: 'sealcast',
    mode: suite,
    keyMode,
    retriesOnGap: true,

    missing() {
      if (!existsSync(join(REPO_ROOT, 'dist', 'bundle', 'main.js'))) return 'dist/bundle/main.js missing (run npm run build)';
      try {
        const help = execFileSync(process.execPath, [CLI, '--help'], { timeout: KEYGEN_TIMEOUT_MS, encoding: 'utf8' });
        const commands = keyMode === 'control' ? ['subscribers', 'send', 'recv'] : ['keygen', 'send', 'recv'];
        for (const command of commands) {
          if (!new RegExp(`^\\s+${command}\\b`, 'm').test(help)) return `sealcast has no '${command}' command yet`;
        }
      } catch (error) {
        return `sealcast --help failed: ${error.message}`;
      }
      return null;
    },

    unsupported() {
      return null;
    },

    /**
     * CPU seconds one `sealcast doctor` process costs (Node start-up, module loading, backend
     * load): every sealcast process in a run pays about this much, which matters at --quick sizes.
     */
    async startupCpuSec({ workDir }) {
      const child = spawnMeasured({ label: 'sealcast doctor', cwd: workDir, timeoutMs: KEYGEN_TIMEOUT_MS, cpuFile: join(workDir, 'sealcast-doctor.cpu'), argv: [process.execPath, CLI, 'doctor'] });
      const result = await child.done;
      return result.code === 0 ? result.cpuSec : null;
    },

    /**
     * Keys for the whole benchmark run, in the scratch directory: the group key (key-file mode),
     * or a registry with one subscriber per receiver the run can have (control mode). The server
     * key is created by the first sender (Ed25519, well before its clock starts).
     */
    prepare({ workDir, receiverCountMax }) {
      const keyDir = join(workDir, `sealcast-keys-${suite}`);
      rmSync(keyDir, { recursive: true, force: true });
      mkdirSync(keyDir, { recursive: true, mode: 0o700 });
      if (keyMode === 'key-file') {
        this.keyPath = join(keyDir, 'group.key');
        execFileSync(process.execPath, [CLI, 'keygen', this.keyPath], { timeout: KEYGEN_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
        return;
      }
      this.registryPath = join(keyDir, 'registry.db');
      this.serverKeyPath = join(keyDir, 'server.pem');
      this.subscribers = Array.from({ length: receiverCountMax }, (_, index) => {
        const id = `receiver${index + 1}`;
        const pskPath = join(keyDir, `${id}.psk`);
        execFileSync(process.execPath, [CLI, 'subscribers', 'add', id, '--db', this.registryPath, '--psk-out', pskPath], { timeout: KEYGEN_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
        return { id, pskPath };
      });
    },

    async run(context) {
      return keyMode === 'control' ? runControl(this, suite, context) : runKeyFile(this, suite, context);
    },
  };
}

/**
 * Starts receiver `index` in its endpoint's namespace, writing to its own output file, with the
 * key-mode arguments given. A receiver that never hears the stream gives up by itself
 * (--start-timeout) instead of waiting for the benchmark's deadline.
 */
function spawnReceiver(endpoint, index, { workDir, timeoutMs }, keyArgs) {
  const outputPath = join(workDir, `sealcast-out-${index + 1}.bin`);
  rmSync(outputPath, { force: true });
  const child = spawnMeasured({
    label: `sealcast recv ${index + 1}`,
    namespace: endpoint.namespace,
    cwd: workDir,
    timeoutMs,
    cpuFile: join(workDir, `sealcast-r${index + 1}.cpu`),
    argv: [process.execPath, CLI, 'recv', ...keyArgs, '--interface', endpoint.address, '-o', outputPath, '--start-timeout', '60', '--json'],
  });
  return { child, outputPath };
}

/** Starts `sealcast send` with `args` in the sender's namespace, its CPU time measured. */
function spawnSender(sender, { workDir, timeoutMs }, args) {
  return spawnMeasured({
    label: 'sealcast send',
    namespace: sender.namespace,
    cwd: workDir,
    timeoutMs,
    cpuFile: join(workDir, 'sealcast-s.cpu'),
    argv: [process.execPath, CLI, 'send', ...args],
  });
}

/** Group key, receivers first: the sender starts once every receiver has joined the group. */
async function runKeyFile(peer, suite, { sender, receivers, inputPath, packetBytes, workDir, timeoutMs, path, rate }) {
  const ttl = path === 'loopback' ? '0' : '1';
  const receiverProcesses = receivers.map((endpoint, index) =>
    spawnReceiver(endpoint, index, { workDir, timeoutMs }, ['--group', GROUP, '--key-file', peer.keyPath]),
  );
  for (const { child } of receiverProcesses) {
    await waitFor(() => child.stderrSoFar().includes('listening on'), RECEIVER_READY_MS);
  }
  const senderProcess = spawnSender(sender, { workDir, timeoutMs }, [inputPath, '--group', GROUP, '--key-file', peer.keyPath,
    '--interface', sender.address, '--ttl', ttl, '--rate', rate, '--packet-size', String(packetBytes), '--suite', suite, '--json', '--quiet']);
  const finished = await finishRun(senderProcess, receiverProcesses, { withRepair: false });
  return { ...finished, startedAtMs: senderProcess.startedAtMs, settings: { rate, keyMode: 'key-file' } };
}

/**
 * Per-subscriber keys, sender first: it prints its control address and fingerprint, the receivers
 * register (pinning that fingerprint) and join, and the sender starts sending once all of them
 * hold the key. The clock starts when the sender says it starts sending.
 */
async function runControl(peer, suite, { sender, receivers, inputPath, packetBytes, workDir, timeoutMs, path, rate }) {
  const ttl = path === 'loopback' ? '0' : '1';
  if (receivers.length > peer.subscribers.length) throw new RangeError(`${receivers.length} receivers but only ${peer.subscribers.length} subscribers were registered`);
  // Port 0: the sender picks a free port and prints it, so no run can collide with another's.
  // No --quiet: the line that says sending starts is what starts the clock.
  const senderProcess = spawnSender(sender, { workDir, timeoutMs }, [inputPath, '--group', GROUP, '--control', `${sender.address}:0`,
    '--db', peer.registryPath, '--server-key', peer.serverKeyPath, '--wait-for', String(receivers.length),
    '--wait-timeout', String(WAIT_FOR_SUBSCRIBERS_SEC),
    '--interface', sender.address, '--ttl', ttl, '--rate', rate, '--packet-size', String(packetBytes), '--suite', suite, '--json']);
  let senderEnded = false;
  senderProcess.done.then(() => {
    senderEnded = true;
  });
  await waitFor(() => senderEnded || CONTROL_LINE.test(senderProcess.stderrSoFar()), CONTROL_READY_MS);
  const control = CONTROL_LINE.exec(senderProcess.stderrSoFar());
  if (control === null) {
    senderProcess.stop('SIGKILL');
    const senderResult = await senderProcess.done;
    const notStarted = receivers.map((_, index) => ({
      label: `sealcast recv ${index + 1}`, code: null, signal: null, timedOut: false, cpuSec: null,
      spawnError: 'not started: the sender printed no control address and fingerprint',
      startedAtMs: senderResult.endedAtMs, endedAtMs: senderResult.endedAtMs, stderrTail: '', stdout: '',
    }));
    return {
      startedAtMs: senderProcess.startedAtMs, endedAtMs: senderResult.endedAtMs, sender: senderResult, receivers: notStarted,
      outputs: null, gap: false, gapKind: null, settings: { rate, keyMode: 'control' }, notes: [],
    };
  }
  const [, host, port, fingerprint] = control;
  const receiverProcesses = receivers.map((endpoint, index) => {
    const subscriber = peer.subscribers[index];
    return spawnReceiver(endpoint, index, { workDir, timeoutMs }, [
      '--server', `${host}:${port}`, '--id', subscriber.id, '--psk-file', subscriber.pskPath, '--server-fingerprint', fingerprint,
    ]);
  });
  let receiversEnded = false;
  Promise.all(receiverProcesses.map(({ child }) => child.done)).then(() => {
    receiversEnded = true;
  });
  // Bounded by the sender's own --wait-timeout; a sender or receivers that ended first end it too.
  await waitFor(() => senderEnded || receiversEnded || senderProcess.stderrSoFar().includes(SENDING_LINE), (WAIT_FOR_SUBSCRIBERS_SEC + 5) * 1000, START_POLL_MS);
  const sendingStarted = senderProcess.stderrSoFar().includes(SENDING_LINE);
  const startedAtMs = sendingStarted ? performance.now() : senderProcess.startedAtMs;
  const finished = await finishRun(senderProcess, receiverProcesses, { withRepair: true });
  const summary = lastJsonLine(finished.sender.stderrTail);
  const receiverSummaries = finished.receivers.map((result) => lastJsonLine(result.stderrTail));
  const repair = summary && Number.isFinite(summary.repairDatagrams) ? {
    dataPackets: summary.packets,
    requests: summary.repairRequests,
    datagrams: summary.repairDatagrams,
    unavailableBytes: summary.repairUnavailableBytes,
    rateLowestBitsPerSecond: summary.rateBitsPerSecondLowest,
    receiverRequests: receiverSummaries.map((receiver) => receiver?.repairRequests ?? null),
    receiverBytesRequested: receiverSummaries.map((receiver) => receiver?.repairBytesRequested ?? null),
  } : null;
  return {
    ...finished,
    startedAtMs,
    // Sender start-up, registration and key delivery, which happen before the clock starts.
    setupSec: sendingStarted ? (startedAtMs - senderProcess.startedAtMs) / 1000 : null,
    repair,
    settings: { rate, keyMode: 'control' },
  };
}

/**
 * Waits for the sender and the receivers; stops the sender early once every receiver has ended
 * and one of them failed, since the attempt is lost and the rest need not be sent.
 */
async function finishRun(senderProcess, receiverProcesses, { withRepair }) {
  let senderStopped = false;
  let senderEnded = false;
  senderProcess.done.then(() => {
    senderEnded = true;
  });
  const receiversDone = Promise.all(receiverProcesses.map(({ child }) => child.done));
  receiversDone.then((results) => {
    if (!senderEnded && results.some((result) => result.code !== 0)) {
      senderStopped = true;
      // SIGINT first: the sender then still prints its JSON summary (what it sent and repaired),
      // which tells why the attempt failed; SIGKILL if it does not end soon.
      senderProcess.stop('SIGINT');
      setTimeout(() => {
        if (!senderEnded) senderProcess.stop('SIGKILL');
      }, SENDER_STOP_GRACE_MS);
    }
  });
  const senderResult = await senderProcess.done;
  const receiverResults = await receiversDone;
  // A receiver that fell behind the rate ends in E_GAP (it lost datagrams that were not repaired)
  // or, when its socket buffer held but its output could not keep up, in E_IO saying so: both
  // mean the rate was too high, and the benchmark retries lower.
  const lost = receiverResults.some((result) => result.code === EXIT_GAP);
  const overrun = receiverResults.some((result) => result.code === EXIT_IO && OUTPUT_OVERRUN.test(result.stderrTail));
  const notes = senderStopped ? ['sender stopped once every receiver had ended'] : [];
  receiverResults.forEach((result, index) => {
    const summary = lastJsonLine(result.stderrTail);
    // END is sent several times by design, and with repair and several receivers every receiver
    // also hears the resends another one asked for, so those duplicates are not worth a note.
    // With one receiver every duplicate beyond the END copies is a repair it did not need.
    const duplicatesExpected = withRepair && receiverResults.length > 1 ? Infinity : END_REPEATS_MAX;
    const dropped = summary?.drops ? Object.entries(summary.drops).filter(([kind, count]) => count > (kind === 'duplicate' ? duplicatesExpected : 0)) : [];
    if (dropped.length) notes.push(`receiver ${index + 1} dropped ${dropped.map(([kind, count]) => `${count} ${kind}`).join(', ')}`);
  });
  return {
    datagramBytes: meanSentDatagramBytes(lastJsonLine(senderResult.stderrTail)),
    // A sender stopped because its receivers failed is not a sender failure of its own.
    sender: senderStopped ? { ...senderResult, code: 0 } : senderResult,
    receivers: receiverResults,
    outputs: receiverProcesses.map(({ outputPath }) => outputPath),
    endedAtMs: Math.max(senderResult.endedAtMs, ...receiverResults.map((result) => result.endedAtMs)),
    gap: lost || overrun,
    gapKind: lost ? 'E_GAP' : overrun ? 'E_IO output overrun' : null,
    notes,
  };
}

// The kernel counts a UDP GSO send (a run of up to 64 datagrams handed over at once) as one
// multicast packet, so for sealcast the mean datagram size comes from the sender's own counts.
// `datagrams` counts everything sent: the DATA datagrams (header + payload + tag), the repairs
// (DATA datagrams sent again: at the full datagram size, since only the stream's last DATA
// datagram is shorter) and the END copies (header + END payload + tag).
const HEADER_BYTES = 36;
const TAG_BYTES = 16;
const END_PAYLOAD_BYTES = 48;

export function meanSentDatagramBytes(summary) {
  if (!summary || !Number.isFinite(summary.datagrams) || !Number.isFinite(summary.packets) || !Number.isFinite(summary.bytes) || summary.datagrams <= 0) return null;
  const repairDatagrams = Number.isFinite(summary.repairDatagrams) ? summary.repairDatagrams : 0;
  const repairDatagramBytes = Number.isFinite(summary.datagramBytes) ? summary.datagramBytes : 0;
  const endDatagrams = summary.datagrams - summary.packets - repairDatagrams;
  if (endDatagrams < 0) return null;
  const total = summary.bytes + summary.packets * (HEADER_BYTES + TAG_BYTES) + repairDatagrams * repairDatagramBytes + endDatagrams * (HEADER_BYTES + END_PAYLOAD_BYTES + TAG_BYTES);
  return Math.round(total / summary.datagrams);
}

// `--json` ends stderr with a one-line JSON summary (drops, exit code, digest).
function lastJsonLine(text) {
  const line = text.trim().split('\n').reverse().find((candidate) => candidate.startsWith('{'));
  if (!line) return null;
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
