#!/usr/bin/env node
// `npm run demo`: the main job on this machine's loopback. It generates a 32 MiB random file and
// a group key, starts two receivers and one sender as separate processes (multicast interface
// 127.0.0.1, TTL 0: nothing leaves the machine), then checks that both receivers wrote exactly
// the file. Exits 0 when both outputs verify.

import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createReadStream, openSync, closeSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'sealcast.js');
const SIZE_BYTES = 32 * 1024 * 1024;
const DEADLINE_MS = 120_000;
const group = `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}:${randomInt(20_000, 60_000)}`;

const say = (line) => process.stdout.write(`demo: ${line}\n`);
const children = new Set();

function start(args, { stdoutFile } = {}) {
  const stdoutFd = stdoutFile ? openSync(stdoutFile, 'w', 0o600) : 'ignore';
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', stdoutFd, 'pipe'] });
  if (typeof stdoutFd === 'number') closeSync(stdoutFd);
  children.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const listeners = new Set();
  child.stderr.on('data', (text) => {
    stderr += text;
    for (const listener of listeners) listener();
  });
  const finished = new Promise((resolve) => child.on('close', (code) => {
    children.delete(child);
    for (const listener of listeners) listener();
    resolve({ code, stderr });
  }));
  const printed = (pattern) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (pattern.test(stderr)) {
          listeners.delete(check);
          resolve();
        } else if (child.exitCode !== null) {
          listeners.delete(check);
          reject(new Error(`sealcast ${args[0]} exited early:\n${stderr}`));
        }
      };
      listeners.add(check);
      check();
    });
  return { child, finished, printed };
}

async function sha256(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'sealcast-demo-'));
  const deadline = setTimeout(() => {
    say(`gave up after ${DEADLINE_MS / 1000} s`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  }, DEADLINE_MS);
  try {
    const input = join(dir, 'input.bin');
    const handle = await open(input, 'w', 0o600);
    for (let written = 0; written < SIZE_BYTES; written += 1024 * 1024) await handle.write(randomBytes(1024 * 1024));
    await handle.close();
    const inputSha256 = await sha256(input);
    say(`generated ${SIZE_BYTES / 1024 / 1024} MiB of random data: ${input}`);
    say(`  sha256 ${inputSha256}`);

    const keyFile = join(dir, 'group.key');
    const keygen = await start(['keygen', keyFile]).finished;
    if (keygen.code !== 0) throw new Error(`keygen failed:\n${keygen.stderr}`);
    say(`sealcast keygen ${keyFile}  (32 random bytes, mode 0600)`);

    const outputs = [join(dir, 'receiver-1.bin'), join(dir, 'receiver-2.bin')];
    const receivers = [
      start(['recv', '--group', group, '--key-file', keyFile, '-o', outputs[0], '--json', '--start-timeout', '30']),
      start(['recv', '--group', group, '--key-file', keyFile, '--json', '--start-timeout', '30'], { stdoutFile: outputs[1] }),
    ];
    say(`sealcast recv --group ${group} --key-file group.key -o receiver-1.bin`);
    say(`sealcast recv --group ${group} --key-file group.key > receiver-2.bin`);
    await Promise.all(receivers.map((receiver) => receiver.printed(/listening on/)));

    say(`sealcast send input.bin --group ${group} --key-file group.key   (loopback, TTL 0)`);
    const sender = start(['send', input, '--group', group, '--key-file', keyFile, '--json']);
    const sent = await sender.finished;
    const received = await Promise.all(receivers.map((receiver) => receiver.finished));
    const senderSummary = lastJson(sent.stderr);
    if (sent.code !== 0) throw new Error(`the sender failed (exit ${sent.code}):\n${sent.stderr}`);
    say(`sender: ${senderSummary.bytes} bytes in ${senderSummary.packets} packets of ${senderSummary.datagramBytes} bytes, ${senderSummary.suite} on the ${senderSummary.backend} backend, ${senderSummary.megabytesPerSecond} MB/s`);

    let allVerified = true;
    for (const [index, result] of received.entries()) {
      const summary = lastJson(result.stderr);
      const outputSha256 = await sha256(outputs[index]);
      const verified = result.code === 0 && outputSha256 === inputSha256;
      allVerified &&= verified;
      say(
        `receiver ${index + 1}: exit ${result.code} (${summary.exit}), ${summary.bytes} bytes, ${summary.megabytesPerSecond} MB/s, drops ${JSON.stringify(summary.drops)}, sha256 ${outputSha256 === inputSha256 ? 'matches the input' : `DIFFERS: ${outputSha256}`}`,
      );
      if (result.code !== 0) process.stdout.write(result.stderr);
    }
    say(allVerified ? 'both receivers wrote exactly the input: OK' : 'FAILED');
    return allVerified ? 0 : 1;
  } finally {
    clearTimeout(deadline);
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

function lastJson(stderr) {
  const line = stderr.trim().split('\n').reverse().find((candidate) => candidate.startsWith('{'));
  try {
    return line ? JSON.parse(line) : {};
  } catch {
    return {};
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    say(`FAILED: ${error.message}`);
    process.exitCode = 1;
  },
);
