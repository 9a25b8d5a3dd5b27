// What `sealcast recv --server` loads before it connects: the control client, never the control
// server with its registry and SQLite (better-sqlite3), which a receiver has no use for and
// which made every receiver start slower. Checked on a real process, through module hooks; the
// process runs the bundle (dist/bundle/), whose manifest says which modules each chunk holds.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { modulesLoaded } from '../helpers/bundle-manifest.js';

const BIN = new URL('../../bin/sealcast.js', import.meta.url).pathname;
const TRACE = new URL('../helpers/module-trace/register.mjs', import.meta.url).pathname;

/** A loopback port nothing listens on: bound once by us, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('sealcast recv start-up', () => {
  it('loads the control client but not the control server, the registry or SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealcast-recv-startup-'));
    try {
      const pskPath = join(dir, 'client.psk');
      writeFileSync(pskPath, Buffer.alloc(32, 7), { mode: 0o600 });
      chmodSync(pskPath, 0o600);
      const port = await closedPort();
      const result = spawnSync(
        process.execPath,
        ['--import', TRACE, BIN, 'recv', '--server', `127.0.0.1:${port}`, '--id', 'r1', '--psk-file', pskPath, '-o', join(dir, 'out.bin')],
        { timeout: 20_000, encoding: 'utf8' },
      );
      // Nothing listens there, so it ends at the connection: E_IO, exit 3.
      expect(result.status, result.stderr).toBe(3);
      expect(result.stderr).toMatch(/E_IO: control connection to 127\.0\.0\.1:\d+ failed/);
      const loaded = result.stderr.split('\n').filter((line) => line.startsWith('module-trace ')).map((line) => line.slice('module-trace '.length));
      expect(loaded.filter((url) => url.includes('better-sqlite3'))).toEqual([]);
      const modules = modulesLoaded(loaded);
      expect(modules).toContain('cli/recv.js');
      expect(modules).toContain('control/client.js');
      expect(modules.filter((module) => module === 'control/server.js' || module.startsWith('store/'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
