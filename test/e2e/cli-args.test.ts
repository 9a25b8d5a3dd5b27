// The data-plane commands' argument and key-file errors, run in-process through run(): each
// fails before any socket opens, with a clear message and the documented exit code.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_CODE_BY_ERROR } from '../../dist/cli/exit-codes.js';
import { makeTempDir, removeDir, writeKey } from '../helpers/cli-process.js';
import { runInProcess } from '../helpers/run-in-process.js';

let dir: string;
let keyFile: string;
let input: string;

beforeAll(async () => {
  dir = await makeTempDir();
  keyFile = join(dir, 'good.key');
  await writeKey(keyFile);
  input = join(dir, 'input.bin');
  await writeFile(input, 'hello');
});
afterAll(async () => removeDir(dir));

const runCaptured = runInProcess;

const group = '239.255.77.1:45000';

describe('keygen', () => {
  it('writes 32 bytes with mode 0600 and refuses to overwrite', async () => {
    const path = join(dir, 'new.key');
    expect((await runCaptured(['keygen', path])).code).toBe(0);
    const info = await stat(path);
    expect(info.mode & 0o777).toBe(0o600);
    expect((await readFile(path)).byteLength).toBe(32);
    const before = await readFile(path);
    const again = await runCaptured(['keygen', path]);
    expect(again.code).toBe(EXIT_CODE_BY_ERROR.E_IO);
    expect(again.stderr).toMatch(/refusing to overwrite/);
    expect((await readFile(path)).equals(before)).toBe(true);
  });

  it('draws a different key each time', async () => {
    await runCaptured(['keygen', join(dir, 'a.key')]);
    await runCaptured(['keygen', join(dir, 'b.key')]);
    expect((await readFile(join(dir, 'a.key'))).equals(await readFile(join(dir, 'b.key')))).toBe(false);
  });
});

describe('send and recv argument errors', () => {
  it.each([
    ['a missing --group', ['send', 'INPUT', '--key-file', 'KEY']],
    ['a missing --key-file', ['recv', '--group', group]],
    ['a non-multicast group', ['send', 'INPUT', '--group', '10.1.2.3:5000', '--key-file', 'KEY']],
    ['a group without a port', ['recv', '--group', '239.1.2.3', '--key-file', 'KEY']],
    ['a bad rate', ['send', 'INPUT', '--group', group, '--key-file', 'KEY', '--rate', 'fast']],
    ['an oversized packet', ['send', 'INPUT', '--group', group, '--key-file', 'KEY', '--packet-size', '70000']],
    ['an unknown suite', ['send', 'INPUT', '--group', group, '--key-file', 'KEY', '--suite', 'rot13']],
    ['a bad interface', ['recv', '--group', group, '--key-file', 'KEY', '--interface', 'eth0']],
    ['a bad ttl', ['send', 'INPUT', '--group', group, '--key-file', 'KEY', '--ttl', '300']],
    ['a zero idle timeout', ['recv', '--group', group, '--key-file', 'KEY', '--idle-timeout', '0']],
    ['an unknown flag', ['recv', '--group', group, '--key-file', 'KEY', '--frobnicate']],
    ['an unknown control transport', ['send', 'INPUT', '--group', group, '--control', '127.0.0.1:0', '--db', 'DB', '--control-transport', 'carrier-pigeon']],
    ['a control transport without --control', ['send', 'INPUT', '--group', group, '--key-file', 'KEY', '--control-transport', 'net']],
  ])('rejects %s with E_ARG', async (_name, argv) => {
    const result = await runCaptured(argv.map((arg) => (arg === 'KEY' ? keyFile : arg === 'INPUT' ? input : arg)));
    expect(result.code, result.stderr).toBe(EXIT_CODE_BY_ERROR.E_ARG);
    expect(result.stderr.length).toBeGreaterThan(0);
  });

  it('rejects a missing key file with E_KEY', async () => {
    const result = await runCaptured(['send', input, '--group', group, '--key-file', join(dir, 'absent.key')]);
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_KEY);
    expect(result.stderr).toMatch(/cannot read key file .*ENOENT/);
  });

  it('rejects a key file of the wrong size with E_KEY', async () => {
    const path = join(dir, 'short.key');
    await writeFile(path, Buffer.alloc(31), { mode: 0o600 });
    const result = await runCaptured(['recv', '--group', group, '--key-file', path]);
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_KEY);
    expect(result.stderr).toMatch(/exactly 32 bytes, it holds 31/);
  });

  it('refuses a key file that group or others can read, with E_KEY', async () => {
    const path = join(dir, 'open.key');
    await writeKey(path);
    await chmod(path, 0o644);
    const result = await runCaptured(['send', input, '--group', group, '--key-file', path]);
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_KEY);
    expect(result.stderr).toMatch(/chmod 600/);
  });

  it('rejects an unreadable input with E_IO', async () => {
    const result = await runCaptured(['send', join(dir, 'no-such-input'), '--group', group, '--key-file', keyFile]);
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_IO);
    expect(result.stderr).toMatch(/cannot read .*ENOENT/);
    const directory = await runCaptured(['send', dir, '--group', group, '--key-file', keyFile]);
    expect(directory.code).toBe(EXIT_CODE_BY_ERROR.E_IO);
  });

  it('refuses AES-256-GCM on the WASM backend with E_BACKEND', async () => {
    const result = await runCaptured(['send', input, '--group', group, '--key-file', keyFile, '--suite', 'aes-256-gcm'], { ...process.env, SEALCAST_BACKEND: 'wasm' });
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_BACKEND);
    expect(result.stderr).toMatch(/aes-256-gcm is not available on the wasm backend/);
  });
});
