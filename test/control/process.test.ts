// Client and server as separate processes: the registry is managed with the CLI, the server runs
// in a child process, and clients register from this process with the key files the CLI wrote.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerWithServer } from '../../dist/control/client.js';
import { readPskFile } from '../../dist/keys/psk.js';
import { SealcastError } from '../../dist/errors.js';
import { runInProcess } from '../helpers/run-in-process.js';

const SERVER = fileURLToPath(new URL('./fixtures/server.mjs', import.meta.url));
let dir = '';
let child: ChildProcess | null = null;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-process-'));
});
afterEach(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  child = null;
  rmSync(dir, { recursive: true, force: true });
});

const cli = runInProcess;

function startServerProcess(dbPath: string, keyPath: string): Promise<{ port: number; fingerprint: string; dataKeyDigest: string; created: boolean }> {
  return new Promise((resolve, reject) => {
    child = spawn(process.execPath, [SERVER, dbPath, keyPath], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 15_000);
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(stdout.split('\n')[0]));
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
}

describe('client and server in separate processes', () => {
  it('three subscribers added with the CLI register with a server process; a removed one gets E_AUTH', async () => {
    const db = join(dir, 'registry.db');
    for (const name of ['alice', 'bob', 'carol']) {
      const result = await cli(['subscribers', 'add', name, '--db', db, '--psk-out', join(dir, `${name}.psk`)]);
      expect(result.code, result.stderr).toBe(0);
    }
    const keyPath = join(dir, 'server', 'server_ed25519.pem');
    const server = await startServerProcess(db, keyPath);
    expect(server.created).toBe(true);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    for (const name of ['alice', 'bob', 'carol']) {
      const psk = readPskFile(join(dir, `${name}.psk`));
      const client = await registerWithServer({ host: '127.0.0.1', port: server.port, clientId: name, psk, pinnedFingerprint: server.fingerprint, timeoutMs: 10_000 });
      psk.fill(0);
      expect(createHash('sha256').update(client.initialKey.dataKey).digest('hex')).toBe(server.dataKeyDigest);
      expect(client.session).toMatchObject({ group: '239.255.77.20', port: 47001 });
      client.close();
    }
    // Removal by the CLI, while the server runs in another process, takes effect at once.
    expect((await cli(['subscribers', 'remove', 'carol', '--db', db])).code).toBe(0);
    const psk = readPskFile(join(dir, 'carol.psk'));
    const error = await registerWithServer({ host: '127.0.0.1', port: server.port, clientId: 'carol', psk, pinnedFingerprint: server.fingerprint, timeoutMs: 10_000 }).catch((caught) => caught);
    expect(error).toBeInstanceOf(SealcastError);
    expect((error as SealcastError).code).toBe('E_AUTH');
    expect((error as SealcastError).message).toMatch(/"carol" was removed/);
  });

  it('the server key survives a restart: same fingerprint, not re-created', async () => {
    const db = join(dir, 'registry.db');
    const keyPath = join(dir, 'server_ed25519.pem');
    const first = await startServerProcess(db, keyPath);
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child!.kill('SIGTERM');
    await exited;
    const second = await startServerProcess(db, keyPath);
    expect(second.created).toBe(false);
    expect(second.fingerprint).toBe(first.fingerprint);
  });
});
