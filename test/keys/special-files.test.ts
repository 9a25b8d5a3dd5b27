// Key files that are not regular files (a FIFO here) are refused with E_KEY at once. The PSK and
// server-key readers are synchronous, so blocking on a FIFO would freeze the whole process.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readPskFile } from '../../dist/keys/psk.js';
import { loadOrCreateIdentity } from '../../dist/keys/identity.js';
import { errorOf } from '../helpers/error-of.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-special-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function fifo(name: string): string {
  const path = join(dir, name);
  execFileSync('mkfifo', ['-m', '600', path]);
  return path;
}


describe('special files as keys', () => {
  it('refuses a FIFO as a pre-shared key file', () => {
    expect(errorOf(() => readPskFile(fifo('client.psk')))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/not a regular file/) });
  });

  it('refuses a FIFO as the server key', () => {
    expect(errorOf(() => loadOrCreateIdentity(fifo('server_ed25519.pem')))).toMatchObject({ code: 'E_KEY', message: expect.stringMatching(/not a regular file/) });
  });
});
