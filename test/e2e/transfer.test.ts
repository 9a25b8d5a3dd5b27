// End to end: sender and two receivers as separate processes on loopback (multicast interface
// 127.0.0.1, TTL 0). Every receiver's output must hash to the input's SHA-256.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { listBackends } from '../helpers/backends.js';
import { killAll, makeTempDir, randomGroup, removeDir, sha256File, spawnCli, writeKey, writeRandomFile } from '../helpers/cli-process.js';
import { createHash } from 'node:crypto';
import { transfer } from '../helpers/transfer.js';

const MiB = 1024 * 1024;
const backends = await listBackends();
const nativeAvailable = backends.some((entry) => entry.name === 'native' && entry.backend !== null);

let dir: string;
let keyFile: string;
const inputs = new Map<number, { path: string; sha256: string }>();

beforeAll(async () => {
  dir = await makeTempDir();
  keyFile = join(dir, 'group.key');
  await writeKey(keyFile);
  // Payload per 1400-byte datagram is 1348 bytes, so 1348/1349 straddle one packet boundary.
  for (const size of [0, 1, 1348, 1349, 1399, 1400, 10 * MiB]) {
    const path = join(dir, `input-${size}.bin`);
    await writeRandomFile(path, size);
    inputs.set(size, { path, sha256: await sha256File(path) });
  }
});

afterEach(() => killAll());
afterAll(async () => {
  killAll();
  await removeDir(dir);
});

interface Case {
  backend: 'native' | 'wasm';
  suite: 'chacha20-poly1305' | 'aes-256-gcm';
  size: number;
  fromStdin: boolean;
}

const cases: Case[] = [];
for (const fromStdin of [false, true]) {
  for (const size of [0, 1, 1348, 1349, 1399, 1400, 10 * MiB]) {
    cases.push({ backend: 'native', suite: 'chacha20-poly1305', size, fromStdin });
  }
  for (const size of [0, 1, 1349, 1400, 10 * MiB]) {
    cases.push({ backend: 'native', suite: 'aes-256-gcm', size, fromStdin });
    cases.push({ backend: 'wasm', suite: 'chacha20-poly1305', size, fromStdin });
  }
}

async function expectExactTransfer(testCase: Case, input: { path: string; sha256: string }, rate?: string, timeoutMs = 60_000, extraSenderArgs: string[] = []): Promise<void> {
  const result = await transfer({
    extraSenderArgs,
    dir,
    input: input.path,
    keyFile,
    fromStdin: testCase.fromStdin,
    backend: testCase.backend,
    suite: testCase.suite,
    rate,
    timeoutMs,
  });
  expect(result.sender.code, result.sender.stderr).toBe(0);
  expect(result.senderSummary.sha256).toBe(input.sha256);
  expect(result.senderSummary.backend).toBe(testCase.backend);
  expect(result.senderSummary.suite).toBe(testCase.suite);
  for (const receiver of result.receivers) {
    expect(receiver.finished.code, receiver.finished.stderr).toBe(0);
    expect(receiver.summary.exit).toBe('ok');
    expect(receiver.summary.backend).toBe(testCase.backend);
    expect(await sha256File(receiver.output)).toBe(input.sha256);
  }
}

describe.each(cases)('$backend $suite, $size bytes, stdin=$fromStdin, two receivers', (testCase) => {
  const available = testCase.backend === 'wasm' || nativeAvailable;
  it.skipIf(!available)('every receiver writes exactly the input', async () => {
    await expectExactTransfer(testCase, inputs.get(testCase.size)!);
  }, 90_000);
});

describe('sealing on a worker pool (--seal-threads 1)', () => {
  it.each([
    { backend: 'native' as const, suite: 'aes-256-gcm' as const },
    { backend: 'wasm' as const, suite: 'chacha20-poly1305' as const },
  ])('$backend $suite, 10 MiB, two receivers', async ({ backend, suite }) => {
    if (backend === 'native' && !nativeAvailable) return;
    await expectExactTransfer({ backend, suite, size: 10 * MiB, fromStdin: false }, inputs.get(10 * MiB)!, undefined, 60_000, ['--seal-threads', '1']);
  }, 90_000);
});

describe('stdout as a pipe to a slow reader', () => {
  it('10 MiB arrive exactly although the reader pauses (written chunks are reused only once written)', async () => {
    const input = inputs.get(10 * MiB)!;
    const group = randomGroup();
    const receiver = spawnCli(['recv', '--group', group, '--key-file', keyFile, '--json', '--start-timeout', '30'], { stdout: 'pipe-raw', timeoutMs: 60_000 });
    // Read slower than the stream arrives (a pause after every read), so the receiver's pipe
    // stays full, its writes queue in the child and their callbacks come late: a chunk refilled
    // before its write completed would show up here as a wrong digest.
    const hash = createHash('sha256');
    let bytes = 0;
    const stdout = receiver.child.stdout!;
    stdout.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.byteLength;
      stdout.pause();
      setTimeout(() => stdout.resume(), 20);
    });
    await receiver.waitForStderr(/listening on/);
    const sender = spawnCli(['send', input.path, '--group', group, '--key-file', keyFile, '--rate', '40M'], { timeoutMs: 60_000 });
    expect((await sender.finished).code).toBe(0);
    const finished = await receiver.finished;
    expect(finished.code, finished.stderr).toBe(0);
    expect(bytes).toBe(10 * MiB);
    expect(hash.digest('hex')).toBe(input.sha256);
  }, 90_000);
});

describe('jumbo datagrams', () => {
  it('65507-byte datagrams carry 10 MiB exactly', async () => {
    const input = inputs.get(10 * MiB)!;
    const result = await transfer({ dir, input: input.path, keyFile, packetSize: 65_507, timeoutMs: 60_000 });
    expect(result.sender.code, result.sender.stderr).toBe(0);
    expect(result.senderSummary.datagramBytes).toBe(65_507);
    for (const receiver of result.receivers) {
      expect(receiver.finished.code, receiver.finished.stderr).toBe(0);
      expect(await sha256File(receiver.output)).toBe(input.sha256);
    }
  }, 90_000);
});

// Half the default rate: these run while another test file's processes share the two cores, and
// UDP has no flow control, so a starved receiver would lose packets (E_GAP) for reasons that
// are not the pipeline's.
const BIG_RATE = '100M';

describe('200 MiB random file, once per backend', () => {
  let big: { path: string; sha256: string };
  beforeAll(async () => {
    const path = join(dir, 'input-200MiB.bin');
    await writeRandomFile(path, 200 * MiB);
    big = { path, sha256: await sha256File(path) };
  }, 120_000);

  it.skipIf(!nativeAvailable)('native backend, chacha20-poly1305, two receivers', async () => {
    await expectExactTransfer({ backend: 'native', suite: 'chacha20-poly1305', size: 200 * MiB, fromStdin: false }, big, BIG_RATE, 150_000);
  }, 180_000);

  it('wasm backend, chacha20-poly1305, from stdin, two receivers', async () => {
    await expectExactTransfer({ backend: 'wasm', suite: 'chacha20-poly1305', size: 200 * MiB, fromStdin: true }, big, BIG_RATE, 150_000);
  }, 180_000);
});
