// sealcast itself, run through its CLI exactly as a user would (`node bin/sealcast.js ...`), one
// process per sender and receiver. sealcast has no loss repair yet, so a lost datagram ends the
// receiver with E_GAP (exit 7); the caller then retries at a lower --rate and records the rate.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, spawnMeasured } from './process.mjs';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO_ROOT, 'bin', 'sealcast.js');
const GROUP = '239.255.77.30:47030';
export const EXIT_GAP = 7;
// Node needs a moment to start and join the group; the sender's clock starts after this pause,
// so it is not charged to sealcast's throughput.
const RECEIVER_START_MS = 1500;
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
            '--interface', endpoint.address, '-o', outputPath, '--json', '--quiet'],
        });
        return { child, outputPath };
      });
      await sleep(RECEIVER_START_MS);
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
      const senderResult = await senderProcess.done;
      const receiverResults = await Promise.all(receiverProcesses.map(({ child }) => child.done));
      const gap = receiverResults.some((result) => result.code === EXIT_GAP);
      return {
        startedAtMs: senderProcess.startedAtMs,
        sender: senderResult,
        receivers: receiverResults,
        outputs: receiverProcesses.map(({ outputPath }) => outputPath),
        endedAtMs: Math.max(senderResult.endedAtMs, ...receiverResults.map((result) => result.endedAtMs)),
        gap,
        settings: { rate },
        notes: [`--rate ${rate}`],
      };
    },
  };
}

