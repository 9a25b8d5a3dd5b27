// SIGINT/SIGTERM stop a running command cleanly with exit 130 (README, "Exit codes").

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = new URL('../../bin/sealcast.js', import.meta.url).pathname;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealcast-signals-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runUntilSignal(args: string[], signalName: NodeJS.Signals, readyPattern: RegExp): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'ignore', 'pipe'], cwd: dir });
    let stderr = '';
    let signalled = false;
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no exit within 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      stderr += text;
      if (!signalled && readyPattern.test(stderr)) {
        signalled = true;
        child.kill(signalName);
      }
    });
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stderr });
    });
  });
}

describe('signals', () => {
  it('SIGINT stops a waiting receiver with exit 130', async () => {
    const keyFile = join(dir, 'recv.key');
    const keygen = spawn(process.execPath, [BIN, 'keygen', keyFile], { stdio: 'ignore' });
    await new Promise((resolve) => keygen.on('close', resolve));
    const result = await runUntilSignal(['recv', '--group', '239.255.61.7:46107', '--key-file', keyFile], 'SIGINT', /listening on/);
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).toContain('stopped: interrupted by SIGINT');
  });

  it('SIGTERM stops a sender waiting on stdin with exit 130', async () => {
    const keyFile = join(dir, 'send.key');
    const keygen = spawn(process.execPath, [BIN, 'keygen', keyFile], { stdio: 'ignore' });
    await new Promise((resolve) => keygen.on('close', resolve));
    const result = await runUntilSignal(['send', '-', '--group', '239.255.61.8:46108', '--key-file', keyFile], 'SIGTERM', /session|sending|send/i);
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).toContain('interrupted by SIGTERM');
  });
});
