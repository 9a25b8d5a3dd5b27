import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from '../../dist/store/registry.js';
import { runInProcess } from '../helpers/run-in-process.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-cli-subscribers-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const cli = runInProcess;

describe('sealcast subscribers', () => {
  it('add writes a 32-byte key file of mode 0600 and never prints the key', async () => {
    const db = join(dir, 'reg.db');
    const pskOut = join(dir, 'alice.psk');
    const result = await cli(['subscribers', 'add', 'alice', '--db', db, '--psk-out', pskOut]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/added subscriber alice .* written to .*alice\.psk \(mode 0600\)/);
    const psk = readFileSync(pskOut);
    expect(psk.byteLength).toBe(32);
    expect(statSync(pskOut).mode & 0o777).toBe(0o600);
    expect(statSync(db).mode & 0o777).toBe(0o600);
    const listing = (await cli(['subscribers', 'list', '--db', db])).stdout + (await cli(['subscribers', 'show', 'alice', '--db', db, '--json'])).stdout;
    const printed = result.stdout + result.stderr + listing;
    for (const form of [psk.toString('hex'), psk.toString('base64'), psk.toString('base64url')]) expect(printed).not.toContain(form.slice(0, 12));
    const registry = Registry.open(db);
    const found = registry.lookupForRegistration('alice');
    expect(found.status === 'active' && found.psk?.equals(psk)).toBe(true);
    registry.close();
  });

  it('refuses to overwrite a key file, a duplicate name and a bad name, with E_IO / E_ARG exit codes', async () => {
    const db = join(dir, 'reg.db');
    const existing = join(dir, 'taken.psk');
    writeFileSync(existing, 'do not touch');
    const overwrite = await cli(['subscribers', 'add', 'bob', '--db', db, '--psk-out', existing]);
    expect(overwrite.code).toBe(3);
    expect(overwrite.stderr).toMatch(/E_IO: .*already exists .*never overwrites/);
    expect(readFileSync(existing, 'utf8')).toBe('do not touch');
    expect((await cli(['subscribers', 'list', '--db', db, '--json'])).stdout).toBe('');

    expect((await cli(['subscribers', 'add', 'bob', '--db', db, '--psk-out', join(dir, 'bob.psk')])).code).toBe(0);
    const duplicate = await cli(['subscribers', 'add', 'bob', '--db', db, '--psk-out', join(dir, 'bob2.psk')]);
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toMatch(/E_ARG: subscriber bob already exists/);
    expect(() => statSync(join(dir, 'bob2.psk'))).toThrow();

    for (const name of ['bad name', 'x'.repeat(65), '../etc']) {
      const bad = await cli(['subscribers', 'add', name, '--db', db, '--psk-out', join(dir, 'x.psk')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/E_ARG: subscriber name must be 1 to 64 characters/);
    }
    expect((await cli(['subscribers', 'add', 'carol'])).code).toBe(2);
  });

  it('list, show and remove report records and fail clearly for unknown names', async () => {
    const db = join(dir, 'reg.db');
    for (const name of ['bob', 'alice']) await cli(['subscribers', 'add', name, '--db', db, '--psk-out', join(dir, `${name}.psk`)]);
    const list = await cli(['subscribers', 'list', '--db', db]);
    expect(list.stdout.split('\n').slice(1, 3).map((line) => line.split(/\s+/).slice(0, 3).join(' '))).toEqual(['alice psk active', 'bob psk active']);
    const removed = await cli(['subscribers', 'remove', 'bob', '--db', db]);
    expect(removed.code).toBe(0);
    const show = await cli(['subscribers', 'show', 'bob', '--db', db]);
    expect(show.stdout).toMatch(/status:\s+removed/);
    expect(show.stdout).toMatch(/removed:\s+\d{4}-/);
    const unknown = await cli(['subscribers', 'show', 'zed', '--db', db]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no subscriber named zed/);
    expect((await cli(['subscribers', 'remove', 'bob', '--db', db])).stderr).toMatch(/already removed/);
  });
});
