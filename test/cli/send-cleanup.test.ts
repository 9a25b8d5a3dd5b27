// A send refused for a bad setting must exit: no worker pool, control server or open input may
// be left behind to keep the process alive.

import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODE_BY_ERROR } from '../../dist/cli/exit-codes.js';
import { killAll, makeTempDir, randomGroup, removeDir, spawnCli, writeKey, writeRandomFile } from '../helpers/cli-process.js';

let dir: string;
let keyFile: string;
let input: string;

beforeAll(async () => {
  dir = await makeTempDir('sealcast-send-cleanup-');
  keyFile = join(dir, 'group.key');
  input = join(dir, 'input.bin');
  await writeKey(keyFile);
  await writeRandomFile(input, 4096);
});

afterEach(() => killAll());

afterAll(async () => {
  await removeDir(dir);
});

describe('send refused for a bad SEALCAST_IO', () => {
  it('exits with E_ARG when sealing on worker threads', async () => {
    const send = spawnCli(['send', input, '--group', randomGroup(), '--key-file', keyFile, '--seal-threads', '1'], { env: { SEALCAST_IO: 'fast' }, timeoutMs: 20_000 });
    const result = await send.finished;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_ARG);
    expect(result.stderr).toMatch(/SEALCAST_IO must be one of/);
  }, 30_000);

  it('exits with E_ARG in control mode', async () => {
    const args = ['send', input, '--group', randomGroup(), '--control', '127.0.0.1:0', '--db', join(dir, 'registry.db'), '--server-key', join(dir, 'server.pem')];
    const send = spawnCli(args, { env: { SEALCAST_IO: 'fast' }, timeoutMs: 20_000 });
    const result = await send.finished;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_ARG);
  }, 30_000);
});
