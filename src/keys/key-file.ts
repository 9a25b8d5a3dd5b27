// Group key files: exactly 32 random bytes, mode 0600. A key file that group or others can
// read is refused (as ssh refuses such private keys): a leaked group key opens every stream.

import { randomBytes } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { SealcastError } from '../errors.js';

export const GROUP_KEY_BYTES = 32;

/** Reads and checks a group key file. The caller zeroes the returned buffer when done. */
export async function readKeyFile(path: string): Promise<Buffer> {
  let mode: number;
  let size: number;
  let isFile: boolean;
  try {
    const info = await stat(path);
    ({ mode, size } = info);
    isFile = info.isFile();
  } catch (error) {
    throw new SealcastError('E_KEY', `cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new SealcastError(
      'E_KEY',
      `key file ${path} is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run: chmod 600 ${path}`,
    );
  }
  // Checked before reading, so a huge file is never read into memory and a FIFO or device
  // (whose size stat cannot tell) never blocks the read.
  if (!isFile) throw new SealcastError('E_KEY', `key file ${path} is not a regular file (make one with: sealcast keygen FILE)`);
  if (size !== GROUP_KEY_BYTES) {
    throw new SealcastError('E_KEY', `key file ${path} must hold exactly ${GROUP_KEY_BYTES} bytes, it holds ${size} (make one with: sealcast keygen FILE)`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new SealcastError('E_KEY', `cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
  if (bytes.byteLength !== GROUP_KEY_BYTES) {
    bytes.fill(0);
    throw new SealcastError('E_KEY', `key file ${path} must hold exactly ${GROUP_KEY_BYTES} bytes, it holds ${bytes.byteLength} (make one with: sealcast keygen FILE)`);
  }
  return bytes;
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
  } finally {
    key.fill(0);
    await handle.close();
  }
}
