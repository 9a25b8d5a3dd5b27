// A registered receiver refused for a bad setting must exit: its control connection may not be
// left open to keep the process alive.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_CODE_BY_ERROR } from '../../dist/cli/exit-codes.js';
import { writePskFile } from '../../dist/keys/psk.js';
import { killAll, spawnCli } from '../helpers/cli-process.js';
import { startTestServer, type TestServer } from '../control/helpers.js';

let server: TestServer | null = null;

afterEach(async () => {
  killAll();
  await server?.close();
  server = null;
});

describe('recv refused for a bad SEALCAST_IO', () => {
  it('exits with E_ARG in control mode', async () => {
    server = await startTestServer(['alice']);
    const pskFile = join(server.tempDir, 'alice.psk');
    writePskFile(pskFile, server.psks.get('alice')!);
    const args = ['recv', '--server', `127.0.0.1:${server.server.address.port}`, '--id', 'alice', '--psk-file', pskFile, '--server-fingerprint', server.identity.fingerprint];
    const recv = spawnCli(args, { env: { SEALCAST_IO: 'fast' }, timeoutMs: 20_000 });
    const result = await recv.finished;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(EXIT_CODE_BY_ERROR.E_ARG);
    expect(result.stderr).toMatch(/SEALCAST_IO must be one of/);
  }, 30_000);
});
