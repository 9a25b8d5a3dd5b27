// Group key files: exactly 32 random bytes, mode 0600. A key file that group or others can
// read is refused (as ssh refuses such private keys): a leaked group key opens every stream.

import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { SealcastError } from '../errors.js';
import { readSecretFile } from './secret-file.js';

export const GROUP_KEY_BYTES = 32;

/**
 * Reads and checks a group key file: opened first, then checked on the open descriptor (a
 * regular file of mode 0600 holding exactly 32 bytes). The caller zeroes the returned buffer.
 */
export async function readKeyFile(path: string): Promise<Buffer> {
  return readSecretFile(path, { label: 'key file', bytes: GROUP_KEY_BYTES, bytesMax: GROUP_KEY_BYTES, hint: '(make one with: sealcast keygen FILE)' });
}

/** Writes a fresh random group key with mode 0600; refuses to overwrite an existing file. */
export async function writeNewKeyFile(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new SealcastError('E_IO', `${path} already exists; refusing to overwrite a key file`);
    throw new SealcastError('E_IO', `cannot create ${path}: ${code ?? String(error)}`, { cause: error });
  }
  const key = randomBytes(GROUP_KEY_BYTES);
  try {
    // The umask can only remove bits, but set the mode explicitly in case the file system ignored it.
    await handle.chmod(0o600);
    await handle.writeFile(key);
    await handle.sync();
  } catch (error) {
    // A half-written key file would only be refused later; take it away now.
    await handle.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw new SealcastError('E_IO', `cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  } finally {
    key.fill(0);
    await handle.close().catch(() => {});
  }
}
