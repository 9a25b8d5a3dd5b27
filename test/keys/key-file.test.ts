// Group key files: mode 0600, exactly 32 bytes, and anything else refused with E_KEY before a
// single byte is read (a FIFO or a huge file must neither block nor be read into memory).

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GROUP_KEY_BYTES, readKeyFile, writeNewKeyFile } from '../../dist/keys/key-file.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-keyfile-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('group key files', () => {
  it('writes a fresh key with mode 0600, reads it back, and never overwrites it', async () => {
    const path = join(dir, 'group.key');
    await writeNewKeyFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const key = await readKeyFile(path);
    expect(key.byteLength).toBe(GROUP_KEY_BYTES);
    expect(key.equals(readFileSync(path))).toBe(true);
    await expect(writeNewKeyFile(path)).rejects.toMatchObject({ code: 'E_IO' });
  });

  it('refuses a key file that group or others can read', async () => {
    const path = join(dir, 'open.key');
    writeFileSync(path, Buffer.alloc(GROUP_KEY_BYTES, 1), { mode: 0o600 });
    chmodSync(path, 0o644);
    await expect(readKeyFile(path)).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/chmod 600/) });
  });

  it('refuses a file of the wrong size, naming the size', async () => {
    const path = join(dir, 'long.key');
    writeFileSync(path, Buffer.alloc(4 * 1024 * 1024, 1), { mode: 0o600 });
    await expect(readKeyFile(path)).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/holds 4194304/) });
  });

  it('refuses a FIFO instead of blocking on it', async () => {
    const path = join(dir, 'fifo.key');
    execFileSync('mkfifo', ['-m', '600', path]);
    // Without a writer, reading the FIFO would never finish: the refusal must come from stat.
    await expect(readKeyFile(path)).rejects.toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/not a regular file/) });
  }, 5_000);

  it('refuses a missing file with E_KEY', async () => {
    await expect(readKeyFile(join(dir, 'missing.key'))).rejects.toMatchObject({ code: 'E_KEY' });
  });
});
