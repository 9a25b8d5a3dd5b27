// sealcast itself, run through its CLI exactly as a user would (`node bin/sealcast.js ...`), one
// process per sender and receiver. sealcast has no loss repair yet, so a lost datagram ends the
// receiver with E_GAP (exit 7); the caller then retries at a lower --rate and records the rate.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnMeasured, waitFor } from './process.mjs';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO_ROOT, 'bin', 'sealcast.js');
const GROUP = '239.255.77.30:47030';
export const EXIT_GAP = 7;
const EXIT_IO = 3;
const OUTPUT_OVERRUN = /the output is not keeping up with the stream/;
const END_REPEATS_MAX = 8;
// The sender starts once every receiver has said it is listening (it has joined the group); the
// clock starts with the sender, so Node's start-up in the receivers is not charged to sealcast.
const RECEIVER_READY_MS = 15_000;
const KEYGEN_TIMEOUT_MS = 20_000;

/** A sealcast variant: one AEAD suite. */
export function sealcastPeer({ suite }) {
  return {
    tool: 'sealcast',
    mode: suite,
    retriesOnGap: true,

    missing() {
      if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))) return 'dist/cli/main.js missing (run npm run build)';
      try {
        const help = execFileSync(process.execPath, [CLI, '--help'], { timeout: KEYGEN_TIMEOUT_MS, encoding: 'utf8' });
        for (const command of ['keygen', 'send', 'recv']) {
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

    prepare({ workDir }) {
      const keyDir = join(workDir, 'sealcast-keys');
      mkdirSync(keyDir, { recursive: true, mode: 0o700 });
      this.keyPath = join(keyDir, 'group.key');
      rmSync(this.keyPath, { force: true });
      execFileSync(process.execPath, [CLI, 'keygen', this.keyPath], { timeout: KEYGEN_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
    },

    async run({ sender, receivers, inputPath, packetBytes, workDir, timeoutMs, path, rate }) {
      const ttl = path === 'loopback' ? '0' : '1';
      const receiverProcesses = receivers.map((endpoint, index) => {
        const outputPath = join(workDir, `sealcast-out-${index + 1}.bin`);
        rmSync(outputPath, { force: true });
        const child = spawnMeasured({
          label: `sealcast recv ${index + 1}`,
          namespace: endpoint.namespace,
          cwd: workDir,
          timeoutMs,
          cpuFile: join(workDir, `sealcast-r${index + 1}.cpu`),
          argv: [process.execPath, CLI, 'recv', '--group', GROUP, '--key-file', this.keyPath,
            // A receiver that never hears the stream gives up by itself instead of waiting for the
            // benchmark's deadline.
            '--interface', endpoint.address, '-o', outputPath, '--start-timeout', '60', '--json'],
        });
        return { child, outputPath };
      });
      for (const { child } of receiverProcesses) {
        await waitFor(() => child.stderrSoFar().includes('listening on'), RECEIVER_READY_MS);
      }
      const senderProcess = spawnMeasured({
        label: 'sealcast send',
        namespace: sender.namespace,
        cwd: workDir,
        timeoutMs,
        cpuFile: join(workDir, 'sealcast-s.cpu'),
        argv: [process.execPath, CLI, 'send', inputPath, '--group', GROUP, '--key-file', this.keyPath,
          '--interface', sender.address, '--ttl', ttl, '--rate', rate, '--packet-size', String(packetBytes),
          '--suite', suite, '--json', '--quiet'],
      });
      // sealcast's sender does not hear from receivers; once every receiver has ended and one of
      // them failed, the attempt is lost and the rest of the file need not be sent.
      let senderStopped = false;
      let senderEnded = false;
      senderProcess.done.then(() => {
        senderEnded = true;
      });
      const receiversDone = Promise.all(receiverProcesses.map(({ child }) => child.done));
      receiversDone.then((results) => {
        if (!senderEnded && results.some((result) => result.code !== 0)) {
          senderStopped = true;
          senderProcess.stop('SIGKILL');
        }
      });
      const senderResult = await senderProcess.done;
      const receiverResults = await receiversDone;
      // A receiver that fell behind the rate ends in E_GAP (it lost datagrams) or, when its
      // socket buffer held but its output could not keep up, in E_IO saying so: both mean the
      // rate was too high, and the benchmark retries lower.
      const lost = receiverResults.some((result) => result.code === EXIT_GAP);
      const overrun = receiverResults.some((result) => result.code === EXIT_IO && OUTPUT_OVERRUN.test(result.stderrTail));
      const gap = lost || overrun;
      const gapKind = lost ? 'E_GAP' : overrun ? 'E_IO output overrun' : null;
      const notes = senderStopped ? ['sender stopped once every receiver had ended'] : [];
      receiverResults.forEach((result, index) => {
        const summary = lastJsonLine(result.stderrTail);
        // END is sent several times by design, so a few duplicates are expected and not worth a note.
        const dropped = summary?.drops ? Object.entries(summary.drops).filter(([kind, count]) => count > (kind === 'duplicate' ? END_REPEATS_MAX : 0)) : [];
        if (dropped.length) notes.push(`receiver ${index + 1} dropped ${dropped.map(([kind, count]) => `${count} ${kind}`).join(', ')}`);
      });
      return {
        datagramBytes: meanSentDatagramBytes(lastJsonLine(senderResult.stderrTail)),
        startedAtMs: senderProcess.startedAtMs,
        // A sender stopped because its receivers failed is not a sender failure of its own.
        sender: senderStopped ? { ...senderResult, code: 0 } : senderResult,
        receivers: receiverResults,
        outputs: receiverProcesses.map(({ outputPath }) => outputPath),
        endedAtMs: Math.max(senderResult.endedAtMs, ...receiverResults.map((result) => result.endedAtMs)),
        gap,
        gapKind,
        settings: { rate },
        notes,
      };
    },
  };
}


// The kernel counts a UDP GSO send (a run of up to 64 datagrams handed over at once) as one
// multicast packet, so for sealcast the mean datagram size comes from the sender's own counts:
// every DATA datagram is header + payload + tag, and the rest are END datagrams.
const HEADER_BYTES = 36;
const TAG_BYTES = 16;
const END_PAYLOAD_BYTES = 48;

function meanSentDatagramBytes(summary) {
  if (!summary || !Number.isFinite(summary.datagrams) || !Number.isFinite(summary.packets) || !Number.isFinite(summary.bytes) || summary.datagrams <= 0) return null;
  const endDatagrams = summary.datagrams - summary.packets;
  const total = summary.bytes + summary.packets * (HEADER_BYTES + TAG_BYTES) + endDatagrams * (HEADER_BYTES + END_PAYLOAD_BYTES + TAG_BYTES);
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
