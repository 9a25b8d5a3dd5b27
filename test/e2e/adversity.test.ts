// End to end under attack and loss: an attacker in the group, a packet withheld by a relay,
// duplicates and reordering, a wrong key, and a receiver that joins mid-stream. Sender,
// receivers, relay and attacker are all separate processes on loopback with TTL 0.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_CODE_BY_ERROR, EXIT_PARTIAL } from '../../dist/cli/exit-codes.js';
import { jsonSummary, killAll, makeTempDir, randomGroup, removeDir, sha256File, spawnCli, spawnHelper, writeKey, writeRandomFile } from '../helpers/cli-process.js';

const MiB = 1024 * 1024;
const PAYLOAD_BYTES = 1400 - 36 - 16;
let dir: string;
let keyFile: string;
let otherKeyFile: string;
let input: string;
let inputSha256: string;

beforeAll(async () => {
  dir = await makeTempDir();
  keyFile = join(dir, 'group.key');
  otherKeyFile = join(dir, 'other.key');
  await writeKey(keyFile);
  await writeKey(otherKeyFile);
  input = join(dir, 'input.bin');
  await writeRandomFile(input, 4 * MiB);
  inputSha256 = await sha256File(input);
});

afterEach(() => killAll());
afterAll(async () => {
  killAll();
  await removeDir(dir);
});

function receiverArgs(group: string, output: string, key = keyFile): string[] {
  return ['recv', '--group', group, '--key-file', key, '-o', output, '--json', '--start-timeout', '30', '--idle-timeout', '5'];
}

describe('attacker in the group', () => {
  it('forged, bit-flipped, replayed, truncated and random datagrams change nothing and are counted', async () => {
    const group = randomGroup();
    const output = join(dir, 'attacked.bin');
    const receiver = spawnCli(receiverArgs(group, output), { timeoutMs: 60_000 });
    const attacker = spawnHelper('attacker.mjs', ['--group', group, '--each', '40', '--after-packets', '300'], { timeoutMs: 60_000 });
    await Promise.all([receiver.waitForStderr(/listening on/), attacker.waitForStderr(/attacker ready/)]);
    // A slow rate keeps the transfer running while the attacker injects.
    const sender = spawnCli(['send', input, '--group', group, '--key-file', keyFile, '--rate', '20M', '--json'], { timeoutMs: 60_000 });
    const [sent, received, attacked] = await Promise.all([sender.finished, receiver.finished, attacker.finished]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(attacked.code, attacked.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(0);
    expect(await sha256File(output)).toBe(inputSha256);
    const injected = JSON.parse(attacked.stderr.trim().split('\n').pop()!);
    expect(injected.forged).toBe(40);
    const drops = jsonSummary(received.stderr).drops;
    // Forgeries fail their tag; flipped epochs name no key; flipped session ids name another
    // session; replays are duplicates; truncated and random datagrams are malformed.
    expect(drops.authFailed).toBeGreaterThanOrEqual(40);
    expect(drops.noKey).toBeGreaterThanOrEqual(40);
    expect(drops.otherSession).toBeGreaterThan(0);
    expect(drops.duplicate).toBeGreaterThanOrEqual(40);
    expect(drops.malformed).toBeGreaterThanOrEqual(40);
  }, 90_000);
});

describe('relay between two groups', () => {
  async function relayed(relayArgs: string[], output: string) {
    const upstream = randomGroup();
    const downstream = randomGroup();
    const receiver = spawnCli(receiverArgs(downstream, output), { timeoutMs: 60_000 });
    const relay = spawnHelper('relay.mjs', ['--from', upstream, '--to', downstream, ...relayArgs], { timeoutMs: 60_000 });
    await Promise.all([receiver.waitForStderr(/listening on/), relay.waitForStderr(/relay ready/)]);
    const sender = spawnCli(['send', input, '--group', upstream, '--key-file', keyFile, '--rate', '100M'], { timeoutMs: 60_000 });
    const [sent, received] = await Promise.all([sender.finished, receiver.finished]);
    relay.child.kill('SIGTERM');
    await relay.finished;
    return { sent, received };
  }

  it('a withheld DATA packet gives E_GAP naming it, and no byte past the gap is written', async () => {
    const output = join(dir, 'gap.bin');
    const withheld = 37;
    const { sent, received } = await relayed(['--drop-data-seq', String(withheld)], output);
    expect(sent.code, sent.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(EXIT_CODE_BY_ERROR.E_GAP);
    const gapStart = withheld * PAYLOAD_BYTES;
    expect(received.stderr).toContain(`E_GAP: missing bytes ${gapStart}..${gapStart + PAYLOAD_BYTES - 1}`);
    expect(jsonSummary(received.stderr).exit).toBe('E_GAP');
    // The output is exactly the prefix before the gap.
    const written = await readFile(output);
    expect(written.byteLength).toBe(gapStart);
    expect(written.equals((await readFile(input)).subarray(0, gapStart))).toBe(true);
  }, 90_000);

  it('duplicated and reordered packets still give the exact output, with duplicates counted', async () => {
    const output = join(dir, 'shuffled.bin');
    const { sent, received } = await relayed(['--duplicate', '--swap-pairs'], output);
    expect(sent.code, sent.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(0);
    expect(await sha256File(output)).toBe(inputSha256);
    expect(jsonSummary(received.stderr).drops.duplicate).toBeGreaterThan(1000);
  }, 90_000);
});

describe('wrong key', () => {
  it('says so plainly, exits E_AUTH and writes nothing', async () => {
    const group = randomGroup();
    const output = join(dir, 'wrong-key.bin');
    const receiver = spawnCli(receiverArgs(group, output, otherKeyFile), { timeoutMs: 60_000 });
    await receiver.waitForStderr(/listening on/);
    const sender = spawnCli(['send', input, '--group', group, '--key-file', keyFile, '--rate', '20M'], { timeoutMs: 60_000 });
    const received = await receiver.finished;
    sender.child.kill('SIGKILL');
    expect(received.code, received.stderr).toBe(EXIT_CODE_BY_ERROR.E_AUTH);
    expect(received.stderr).toContain('no packet authenticated with this key: wrong key?');
    expect((await stat(output)).size).toBe(0);
  }, 90_000);

  it('also on a slow stream, within a few seconds', async () => {
    const group = randomGroup();
    const output = join(dir, 'wrong-key-slow.bin');
    const receiver = spawnCli(receiverArgs(group, output, otherKeyFile), { timeoutMs: 60_000 });
    await receiver.waitForStderr(/listening on/);
    // 40 kbit/s is about 4 datagrams per second: far below the 64-packet threshold in 3 s.
    const sender = spawnCli(['send', input, '--group', group, '--key-file', keyFile, '--rate', '40k'], { timeoutMs: 60_000 });
    const received = await receiver.finished;
    sender.child.kill('SIGKILL');
    expect(received.code, received.stderr).toBe(EXIT_CODE_BY_ERROR.E_AUTH);
    expect(received.stderr).toContain('wrong key?');
    expect(jsonSummary(received.stderr).drops.authFailed).toBeLessThan(64);
    expect((await stat(output)).size).toBe(0);
  }, 60_000);
});

describe('joining mid-stream', () => {
  it('starts at the first packet it opens, says where, and exits EXIT_PARTIAL with the rest of the stream', async () => {
    const group = randomGroup();
    const output = join(dir, 'partial.bin');
    // 4 MiB at 8 Mbit/s takes about 4 s; the receiver joins once the sender is well under way.
    const sender = spawnCli(['send', input, '--group', group, '--key-file', keyFile, '--rate', '8M', '--json'], { timeoutMs: 60_000 });
    await sender.waitForStderr(/sealcast send: session/);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const receiver = spawnCli(receiverArgs(group, output), { timeoutMs: 60_000 });
    const [sent, received] = await Promise.all([sender.finished, receiver.finished]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(EXIT_PARTIAL);
    const match = /joined mid-stream: output begins at stream offset (\d+)/.exec(received.stderr);
    expect(match, received.stderr).not.toBeNull();
    const startOffset = Number(match![1]);
    expect(startOffset).toBeGreaterThan(0);
    expect(startOffset % PAYLOAD_BYTES).toBe(0);
    expect(received.stderr).toContain('the SHA-256 cannot be checked');
    const summary = jsonSummary(received.stderr);
    expect(summary.exit).toBe('partial');
    expect(summary.startOffset).toBe(startOffset);
    const written = await readFile(output);
    expect(written.equals((await readFile(input)).subarray(startOffset))).toBe(true);
  }, 90_000);
});

describe('two senders with the same key on one group', () => {
  it('the receiver follows one session to the end and counts the other as otherSession', async () => {
    const group = randomGroup();
    const output = join(dir, 'two-senders.bin');
    const otherInput = join(dir, 'other-input.bin');
    await writeRandomFile(otherInput, 2 * MiB);
    const receiver = spawnCli(receiverArgs(group, output), { timeoutMs: 60_000 });
    await receiver.waitForStderr(/listening on/);
    const senders = [input, otherInput].map((file) => spawnCli(['send', file, '--group', group, '--key-file', keyFile, '--rate', '20M'], { timeoutMs: 60_000 }));
    const [received, ...sent] = await Promise.all([receiver.finished, ...senders.map((sender) => sender.finished)]);
    for (const result of sent) expect(result.code, result.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(0);
    const written = await sha256File(output);
    expect([inputSha256, await sha256File(otherInput)]).toContain(written);
    expect(jsonSummary(received.stderr).drops.otherSession).toBeGreaterThan(0);
  }, 60_000);
});

describe('a live stream on stdin', () => {
  it('sends what a slow pipe gives without waiting for a full slab', async () => {
    const group = randomGroup();
    const output = join(dir, 'live.bin');
    const receiver = spawnCli(receiverArgs(group, output), { timeoutMs: 60_000 });
    await receiver.waitForStderr(/listening on/);
    const sender = spawnCli(['send', '-', '--group', group, '--key-file', keyFile], { stdinPipe: true, timeoutMs: 60_000 });
    const pieces = ['first piece\n', 'second piece\n', 'third piece\n'];
    let expected = '';
    for (const piece of pieces) {
      sender.child.stdin!.write(piece);
      expected += piece;
      // Each piece reaches the receiver's output while the sender's stdin stays open.
      await waitFor(async () => (await readFile(output, 'utf8').catch(() => '')) === expected, 10_000);
    }
    sender.child.stdin!.end();
    const [sent, received] = await Promise.all([sender.finished, receiver.finished]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(received.code, received.stderr).toBe(0);
    expect(await readFile(output, 'utf8')).toBe(expected);
  }, 60_000);
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('receiver timeouts', () => {
  it('exits E_TIMEOUT when the sender stops before END', async () => {
    const group = randomGroup();
    const output = join(dir, 'stopped.bin');
    const receiver = spawnCli(['recv', '--group', group, '--key-file', keyFile, '-o', output, '--json', '--start-timeout', '30', '--idle-timeout', '1'], { timeoutMs: 60_000 });
    await receiver.waitForStderr(/listening on/);
    const sender = spawnCli(['send', input, '--group', group, '--key-file', keyFile, '--rate', '4M'], { timeoutMs: 60_000 });
    await receiver.waitForStderr(/receiving session/);
    sender.child.kill('SIGKILL');
    const received = await receiver.finished;
    expect(received.code, received.stderr).toBe(EXIT_CODE_BY_ERROR.E_TIMEOUT);
    expect(received.stderr).toMatch(/no packet for 1 s after stream offset \d+ and no END/);
    const summary = jsonSummary(received.stderr);
    expect(summary.exit).toBe('E_TIMEOUT');
    // What it wrote is the authenticated prefix of the input.
    const written = await readFile(output);
    expect(written.byteLength).toBe(summary.bytes);
    expect(written.equals((await readFile(input)).subarray(0, written.byteLength))).toBe(true);
  }, 60_000);

  it('exits E_TIMEOUT when no stream starts within --start-timeout', async () => {
    const group = randomGroup();
    const receiver = spawnCli(['recv', '--group', group, '--key-file', keyFile, '--start-timeout', '0.5', '--json'], { stdout: 'ignore', timeoutMs: 30_000 });
    const received = await receiver.finished;
    expect(received.code, received.stderr).toBe(EXIT_CODE_BY_ERROR.E_TIMEOUT);
    expect(received.stderr).toMatch(/no stream started/);
  }, 30_000);
});
