import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Registry } from '../../dist/store/registry.js';
import { SealcastError } from '../../dist/errors.js';

const ADD_MANY = fileURLToPath(new URL('./fixtures/add-many.mjs', import.meta.url));
let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-registry-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(args: string[], options: { killAfterLines?: number; timeoutMs?: number } = {}): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ADD_MANY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
      if (options.killAfterLines !== undefined && stdout.split('\n').length > options.killAfterLines) child.kill('SIGKILL');
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('registry', () => {
  it('creates a 0600 WAL database with the versioned schema, usage and withdrawal tables', () => {
    const path = join(dir, 'reg.db');
    const registry = Registry.open(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(registry.schemaVersion()).toBe(1);
    registry.addPskSubscriber('alice', randomBytes(32));
    registry.close();
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((row) => row.name);
      expect(tables).toEqual(['schema_version', 'subscribers', 'usage_records', 'withdrawals']);
      const columns = (db.prepare('PRAGMA table_info(subscribers)').all() as Array<{ name: string }>).map((row) => row.name);
      expect(columns).toEqual(expect.arrayContaining(['key_kind', 'psk', 'public_key', 'certificate', 'hsm_key_label']));
    } finally {
      db.close();
    }
  });

  it('keeps subscribers and their keys across a restart', () => {
    const path = join(dir, 'reg.db');
    const psk = randomBytes(32);
    const first = Registry.open(path);
    first.addPskSubscriber('alice', psk);
    first.addPskSubscriber('bob', randomBytes(32));
    first.close();
    const second = Registry.open(path);
    expect(second.listSubscribers().map((record) => record.id)).toEqual(['alice', 'bob']);
    const found = second.lookupForRegistration('alice');
    expect(found.status).toBe('active');
    expect(found.status === 'active' && found.psk?.equals(psk)).toBe(true);
    second.close();
  });

  it('removal erases the key, records an audit row and refuses registration; re-adding gives a new key', () => {
    const registry = Registry.open(join(dir, 'reg.db'));
    registry.addPskSubscriber('alice', randomBytes(32));
    expect(() => registry.addPskSubscriber('alice', randomBytes(32))).toThrow(/already exists/);
    const removed = registry.removeSubscriber('alice');
    expect(removed.status).toBe('removed');
    expect(registry.lookupForRegistration('alice')).toEqual({ status: 'removed', keyKind: 'psk' });
    expect(registry.countWithdrawals('alice')).toBe(1);
    expect(() => registry.removeSubscriber('alice')).toThrow(/already removed/);
    expect(() => registry.removeSubscriber('nobody')).toThrow(/no subscriber named nobody/);
    const fresh = randomBytes(32);
    registry.addPskSubscriber('alice', fresh);
    const found = registry.lookupForRegistration('alice');
    expect(found.status === 'active' && found.psk?.equals(fresh)).toBe(true);
    registry.close();
  });

  it('looks many ids up at once exactly as one at a time, in order', () => {
    const registry = Registry.open(join(dir, 'many.db'));
    const alice = randomBytes(32);
    registry.addPskSubscriber('alice', alice);
    registry.addPskSubscriber('bob', randomBytes(32));
    registry.removeSubscriber('bob');
    const ids = ['bob', 'alice', 'nobody', 'alice'];
    const many = registry.lookupManyForRegistration(ids);
    expect(many).toEqual(ids.map((id) => registry.lookupForRegistration(id)));
    expect(many.map((found) => found.status)).toEqual(['removed', 'active', 'unknown', 'active']);
    expect(many[1].status === 'active' && many[1].psk?.equals(alice)).toBe(true);
    expect(registry.lookupManyForRegistration([])).toEqual([]);
    expect(registry.lookupManyForRegistration(['alice'])).toEqual([registry.lookupForRegistration('alice')]);
    registry.close();
    expect(() => registry.lookupManyForRegistration(['alice'])).toThrow();
  });

  it('refuses a database others can read, a foreign SQLite file, bad names and bad keys', () => {
    const path = join(dir, 'open.db');
    Registry.open(path).close();
    chmodSync(path, 0o644);
    expect(() => Registry.open(path)).toThrow(/mode 644; restrict it with: chmod 600/);
    const foreign = join(dir, 'foreign.db');
    const db = new Database(foreign);
    db.exec('CREATE TABLE t (x)');
    db.close();
    chmodSync(foreign, 0o600);
    expect(() => Registry.open(foreign)).toThrow(/not a sealcast registry/);
    const registry = Registry.open(join(dir, 'reg.db'));
    expect(() => registry.addPskSubscriber('bad name', randomBytes(32))).toThrow(SealcastError);
    expect(() => registry.addPskSubscriber('ok', randomBytes(16))).toThrow(RangeError);
    registry.close();
  });

  it('refuses a symbolic link, a directory and a FIFO in place of the database, at once', () => {
    const real = join(dir, 'real.db');
    Registry.open(real).close();
    const link = join(dir, 'link.db');
    symlinkSync(real, link);
    expect(() => Registry.open(link)).toThrow(/link\.db: it is a symbolic link/);
    const directory = join(dir, 'directory.db');
    mkdirSync(directory, { mode: 0o700 });
    expect(() => Registry.open(directory)).toThrow(/directory\.db/);
    const fifo = join(dir, 'fifo.db');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    // Without O_NONBLOCK this open would wait for a writer for ever.
    expect(() => Registry.open(fifo)).toThrow(/fifo\.db: it is not a regular file/);
  });

  it('is safe under concurrent adds from several processes', async () => {
    const path = join(dir, 'reg.db');
    const results = await Promise.all(['p0', 'p1', 'p2', 'p3'].map((prefix) => runChild([path, prefix, '25'])));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    // Exactly one process won the race for the shared name.
    expect(results.filter((result) => result.stdout.includes('done shared=true'))).toHaveLength(1);
    const registry = Registry.open(path);
    const ids = registry.listSubscribers().map((record) => record.id);
    expect(ids).toHaveLength(101);
    expect(new Set(ids).size).toBe(101);
    registry.close();
  });

  it('a killed writer leaves the database consistent with every reported add present', async () => {
    const path = join(dir, 'reg.db');
    Registry.open(path).close();
    const result = await runChild([path, 'k', '100000', '0'], { killAfterLines: 200 });
    expect(result.signal).toBe('SIGKILL');
    const reported = result.stdout.split('\n').filter((line) => line.startsWith('added ')).map((line) => line.slice(6));
    expect(reported.length).toBeGreaterThanOrEqual(200);
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    const registry = Registry.open(path);
    const ids = new Set(registry.listSubscribers().map((record) => record.id));
    for (const id of reported) expect(ids.has(id)).toBe(true);
    registry.close();
  });
});
