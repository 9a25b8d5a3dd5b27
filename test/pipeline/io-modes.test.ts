// The core end-to-end cases once per socket I/O path: batched system calls through the addon
// (--io native) and plain node:dgram (--io dgram). Separate processes on loopback, TTL 0. Each
// side's --json summary says which path it used, so a silent fallback cannot pass as native.
// (SEALCAST_IO=dgram runs the whole of test/e2e on the plain path as well.)

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_CODE_BY_ERROR } from '../../dist/cli/exit-codes.js';
import { jsonSummary, killAll, makeTempDir, randomGroup, removeDir, sha256File, spawnCli, spawnHelper, writeKey, writeRandomFile } from '../helpers/cli-process.js';
import { transfer } from '../helpers/transfer.js';
import { probeNative } from '../native/availability.js';

const MiB = 1024 * 1024;
const PAYLOAD_BYTES = 1400 - 36 - 16;
const nativeLoaded = probeNative().binding !== null;
const modes = [
  { io: 'native' as const, available: nativeLoaded && process.platform === 'linux' },
  { io: 'dgram' as const, available: true },
];

let dir: string;
let keyFile: string;
let input: string;
let inputSha256: string;

beforeAll(async () => {
  dir = await makeTempDir();
  keyFile = join(dir, 'group.key');
  await writeKey(keyFile);
  input = join(dir, 'input.bin');
  await writeRandomFile(input, 6 * MiB + 123);
  inputSha256 = await sha256File(input);
});

afterEach(() => killAll());
afterAll(async () => {
  killAll();
  await removeDir(dir);
});

function receiverArgs(group: string, output: string, io: string): string[] {
  return ['recv', '--group', group, '--key-file', keyFile, '-o', output, '--json', '--start-timeout', '30', '--idle-timeout', '5', '--io', io];
}

describe.each(modes)('--io $io', ({ io, available }) => {
  it.skipIf(!available).each([
    { fromStdin: false, backend: 'native' as const, packetSize: 1400 },
    { fromStdin: true, backend: 'wasm' as const, packetSize: 1400 },
    { fromStdin: false, backend: 'native' as const, packetSize: 8972 },
  ])('two receivers get the exact input (stdin=$fromStdin, $backend backend, $packetSize-byte datagrams)', async ({ fromStdin, backend, packetSize }) => {
    if (backend === 'native' && !nativeLoaded) return;
    const result = await transfer({
      dir,
      input,
      keyFile,
      fromStdin,
      backend,
      packetSize,
      timeoutMs: 60_000,
      extraSenderArgs: ['--io', io],
      extraReceiverArgs: ['--io', io],
    });
    expect(result.sender.code, result.sender.stderr).toBe(0);
    expect(result.senderSummary.io).toBe(io);
    expect(result.senderSummary.sha256).toBe(inputSha256);
    for (const receiver of result.receivers) {
      expect(receiver.finished.code, receiver.finished.stderr).toBe(0);
      expect(receiver.summary.io).toBe(io);
      // The native path takes GSO runs whole (receive-side GRO, Linux 5.0 and later).
      expect(receiver.summary.gro).toBe(io === 'native');
      expect(receiver.summary.drops.malformed).toBe(0);
      expect(await sha256File(receiver.output)).toBe(inputSha256);
    }
  }, 90_000);

  it.skipIf(!available)('an attacker in the group changes nothing and every kind of junk is counted', async () => {
    const group = randomGroup();
    const output = join(dir, `attacked-${io}.bin`);
    const receiver = spawnCli(receiverArgs(group, output, io), { timeoutMs: 60_000 });
    const attacker = spawnHelper('attacker.mjs', ['--group', group, '--each', '40', '--after-packets', '300'], { timeoutMs: 60_000 });
    await Promise.all([receiver.waitForStderr(/listening on/), attacker.waitForStderr(/attacker ready/)]);
    const sender = spawnCli(['send', input, '--group', group, '--key-file', keyFile, '--rate', '20M', '--json', '--io', io], { timeoutMs: 60_000 });
    const [sent, received, attacked] = await Promise.all([sender.finished, receiver.finished, attacker.finished]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(attacked.code, attacked.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(0);
    expect(await sha256File(output)).toBe(inputSha256);
    const summary = jsonSummary(received.stderr);
    expect(summary.io).toBe(io);
    expect(summary.drops.authFailed).toBeGreaterThanOrEqual(40);
    expect(summary.drops.noKey).toBeGreaterThanOrEqual(40);
    expect(summary.drops.otherSession).toBeGreaterThan(0);
    expect(summary.drops.duplicate).toBeGreaterThanOrEqual(40);
    expect(summary.drops.malformed).toBeGreaterThanOrEqual(40);
  }, 90_000);

  it.skipIf(!available)('a withheld DATA packet gives E_GAP naming it, and no byte past the gap is written', async () => {
    const upstream = randomGroup();
    const downstream = randomGroup();
    const output = join(dir, `gap-${io}.bin`);
    const withheld = 41;
    const receiver = spawnCli(receiverArgs(downstream, output, io), { timeoutMs: 60_000 });
    const relay = spawnHelper('relay.mjs', ['--from', upstream, '--to', downstream, '--drop-data-seq', String(withheld)], { timeoutMs: 60_000 });
    await Promise.all([receiver.waitForStderr(/listening on/), relay.waitForStderr(/relay ready/)]);
    const sender = spawnCli(['send', input, '--group', upstream, '--key-file', keyFile, '--rate', '100M', '--io', io], { timeoutMs: 60_000 });
    const [sent, received] = await Promise.all([sender.finished, receiver.finished]);
    relay.child.kill('SIGTERM');
    await relay.finished;
    expect(sent.code, sent.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(EXIT_CODE_BY_ERROR.E_GAP);
    const gapStart = withheld * PAYLOAD_BYTES;
    expect(received.stderr).toContain(`E_GAP: missing bytes ${gapStart}..${gapStart + PAYLOAD_BYTES - 1}`);
    expect(jsonSummary(received.stderr).io).toBe(io);
    const written = await readFile(output);
    expect(written.byteLength).toBe(gapStart);
    expect(written.equals((await readFile(input)).subarray(0, gapStart))).toBe(true);
  }, 90_000);
});

describe('choosing the path', () => {
  it('an unknown --io or SEALCAST_IO is refused with E_ARG', async () => {
    const group = randomGroup();
    const bad = spawnCli(['recv', '--group', group, '--key-file', keyFile, '--io', 'fast'], { timeoutMs: 30_000 });
    const badEnv = spawnCli(['send', input, '--group', group, '--key-file', keyFile], { env: { SEALCAST_IO: 'fast' }, timeoutMs: 30_000 });
    const [flag, env] = await Promise.all([bad.finished, badEnv.finished]);
    expect(flag.code).toBe(EXIT_CODE_BY_ERROR.E_ARG);
    expect(flag.stderr).toMatch(/--io must be one of auto, native, dgram/);
    expect(env.code).toBe(EXIT_CODE_BY_ERROR.E_ARG);
    expect(env.stderr).toMatch(/SEALCAST_IO must be one of auto, native, dgram/);
  }, 60_000);
});
