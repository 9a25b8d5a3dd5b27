// UFTP 4.10 (uftp / uftpd): encrypted reliable multicast file transfer, the encrypted peer.
// AES-256-GCM with ECDH-ECDSA key exchange; both sides need EC keys or the session fails with
// "No client key compatible with server key" (see /work/shared/PEERS.md). uftpd runs with -d so
// it stays in the foreground (no daemon fork): the process GNU time measures is the worker.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { haveCommand, sleep, spawnMeasured, waitFor } from './process.mjs';

const PUBLIC_GROUP = '232.255.77.10';
const PRIVATE_GROUP = '232.255.77.11';
const SERVER_ID = '0x00000001';
const clientId = (index) => `0x000000${(0x11 + index).toString(16).padStart(2, '0')}`;
// With AES-256-GCM a data packet is the block plus 52 bytes of UFTP headers and tag (measured);
// UFTP refuses blocks above 8800 bytes and its sender crashed (double free) at 8800 with
// AES-256-GCM here, so at jumbo sizes it uses 8700 (as PEERS.md did): 8752-byte datagrams.
const ENCRYPTED_OVERHEAD_BYTES = 52;
const BLOCK_BYTES_MAX = 8700;
const RECEIVER_READY_MS = 10_000;
const RECEIVER_STOP_MS = 5_000;
const KEY_TOOL_TIMEOUT_MS = 15_000;

// uftp_keymgt prints to stderr; both streams are returned.
function keyTool(args) {
  const result = spawnSync('uftp_keymgt', args, { timeout: KEY_TOOL_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  return { ok: result.status === 0, text: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

function fingerprint(keyPath) {
  const { text } = keyTool([keyPath]);
  const match = /fingerprint: ([0-9A-F:]+)/.exec(text);
  if (!match) throw new Error(`uftp_keymgt printed no fingerprint for ${keyPath}: ${text.trim()}`);
  return match[1];
}

function ensureKey(keyPath) {
  if (existsSync(keyPath)) return;
  const { text } = keyTool(['-g', 'ec:prime256v1', keyPath]);
  if (!existsSync(keyPath)) throw new Error(`uftp_keymgt made no key ${keyPath}: ${text.trim()}`);
  chmodSync(keyPath, 0o600);
}

export const uftp = {
  tool: 'UFTP',
  mode: 'aes256-gcm',

  missing() {
    for (const command of ['uftp', 'uftpd', 'uftp_keymgt']) {
      if (!haveCommand(command)) return `${command} not found (apt-get install uftp)`;
    }
    return null;
  },

  unsupported({ path, receivers, privateNamespace }) {
    // Tried in a namespace shaped like a host (lo without the MULTICAST flag, a default route
    // elsewhere): with -I lo the session timed out and a datagram left by the default route.
    if (!privateNamespace) return 'not root: UFTP with -I lo on the host loopback does not stay on lo, so it runs only inside a namespace';
    // uftpd binds port 1044 exclusively, so one host holds one client.
    if (path === 'loopback' && receivers > 1) return 'uftpd binds its port exclusively: one client per host, so >1 receiver runs only on the bridge path';
    return null;
  },

  /** EC keys for the server and up to `receiverCountMax` clients, in a 0700 directory. */
  prepare({ workDir, receiverCountMax }) {
    const keyDir = join(workDir, 'uftp-keys');
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    ensureKey(join(keyDir, 'server.pem'));
    for (let index = 0; index < receiverCountMax; index += 1) ensureKey(join(keyDir, `client${index + 1}.pem`));
    this.keyDir = keyDir;
    this.serverFingerprint = fingerprint(join(keyDir, 'server.pem'));
    this.clientFingerprints = Array.from({ length: receiverCountMax }, (_, index) => fingerprint(join(keyDir, `client${index + 1}.pem`)));
  },

  async run({ sender, receivers, inputPath, packetBytes, workDir, timeoutMs }) {
    const blockBytes = Math.min(BLOCK_BYTES_MAX, packetBytes - ENCRYPTED_OVERHEAD_BYTES);
    // PEERS.md: "-R -1" (as fast as the interface allows) for one receiver; with three a fixed
    // 700 Mbit/s did better.
    const rateKbps = receivers.length > 1 ? '700000' : '-1';
    const hostsPath = join(workDir, 'uftp-hosts.txt');
    const serversPath = join(workDir, 'uftp-servers.txt');
    const statusPath = join(workDir, 'uftp-status.txt');
    writeFileSync(hostsPath, receivers.map((_, index) => `${clientId(index)}|${this.clientFingerprints[index]}\n`).join(''));
    writeFileSync(serversPath, `${SERVER_ID}|${sender.address}|${this.serverFingerprint}\n`);
    rmSync(statusPath, { force: true });

    const receiverProcesses = receivers.map((endpoint, index) => {
      const outputDir = join(workDir, `uftp-out-${index + 1}`);
      mkdirSync(outputDir, { recursive: true });
      const child = spawnMeasured({
        label: `uftpd ${index + 1}`,
        namespace: endpoint.namespace,
        cwd: workDir,
        timeoutMs,
        cpuFile: join(workDir, `uftp-r${index + 1}.cpu`),
        argv: ['uftpd', '-d', '-q', '-x', '2', '-I', endpoint.device, '-M', PUBLIC_GROUP, '-U', clientId(index),
          '-D', outputDir, '-B', '4194304', '-S', serversPath, '-E', '-k', join(this.keyDir, `client${index + 1}.pem`)],
      });
      return { child, outputPath: join(outputDir, basename(inputPath)) };
    });
    for (const { child } of receiverProcesses) {
      await waitFor(() => child.stderrSoFar().includes('Loaded ECDSA key'), RECEIVER_READY_MS);
    }
    // uftpd logs its key before its socket is joined; a short pause keeps the first ANNOUNCE
    // from going unheard (it would be repeated, but that would be charged to UFTP's time).
    await sleep(200);
    const senderProcess = spawnMeasured({
      label: 'uftp',
      namespace: sender.namespace,
      cwd: workDir,
      timeoutMs,
      cpuFile: join(workDir, 'uftp-s.cpu'),
      argv: ['uftp', '-I', sender.device, '-U', SERVER_ID, '-M', PUBLIC_GROUP, '-P', PRIVATE_GROUP, '-R', rateKbps,
        '-b', String(blockBytes), '-B', '4194304', '-x', '1', '-S', statusPath, '-Y', 'aes256-gcm', '-h', 'sha256',
        '-e', 'ecdh_ecdsa', '-k', join(this.keyDir, 'server.pem'), '-c', '-H', `@${hostsPath}`, inputPath],
    });
    const senderResult = await senderProcess.done;
    // uftpd is a long-running daemon: once the server has every client's COMPLETE it exits, and
    // the clients are stopped with SIGINT so GNU time reports their CPU.
    for (const { child } of receiverProcesses) child.stop('SIGINT');
    const stopTimer = setTimeout(() => receiverProcesses.forEach(({ child }) => child.stop('SIGKILL')), RECEIVER_STOP_MS);
    const receiverResults = await Promise.all(receiverProcesses.map(({ child }) => child.done));
    clearTimeout(stopTimer);
    const status = existsSync(statusPath) ? readFileSync(statusPath, 'utf8') : '';
    const failedClients = receivers
      .map((_, index) => clientId(index))
      .filter((id) => !new RegExp(`^RESULT;${id};[^;]*;[^;]*;copy;`, 'm').test(status));
    return {
      startedAtMs: senderProcess.startedAtMs,
      sender: senderResult,
      // A SIGINT-stopped uftpd exits with a non-zero status by design; its result is judged by the
      // server's status file and the digest of its output.
      receivers: receiverResults.map((result) => ({ ...result, code: 0, expectedStop: true })),
      outputs: receiverProcesses.map(({ outputPath }) => outputPath),
      endedAtMs: senderResult.endedAtMs,
      settings: { blockBytes, rateKbps },
      notes: [`-b ${blockBytes} -R ${rateKbps}`, ...(failedClients.length ? [`status file: no copy result for ${failedClients.join(',')}`] : [])],
    };
  },
};
