// The receiver's `-o FILE` target: a regular file is written synchronously (FileOutput), anything
// else through Node's asynchronous WriteStream; both are created with mode 0600, and a path that
// cannot be written is an E_IO error naming it.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileOutput, openFileOutput } from '../../dist/pipeline/file-output.js';

const dir = mkdtempSync(join(tmpdir(), 'sealcast-file-output-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function end(stream: import('node:stream').Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}

describe('openFileOutput', () => {
  it('writes a regular file synchronously: each write is on disk when its callback runs', async () => {
    const path = join(dir, 'out.bin');
    const output = await openFileOutput(path);
    expect(output).toBeInstanceOf(FileOutput);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const parts = [randomBytes(1 << 20), randomBytes(1), randomBytes(70_000)];
    let onDisk = 0;
    for (const part of parts) {
      await new Promise<void>((resolve, reject) => output.write(part, (error) => (error ? reject(error) : resolve())));
      onDisk += part.byteLength;
      expect(statSync(path).size).toBe(onDisk);
    }
    await end(output);
    expect(readFileSync(path).equals(Buffer.concat(parts))).toBe(true);
  });

  it('truncates an existing file', async () => {
    const path = join(dir, 'existing.bin');
    const first = await openFileOutput(path);
    first.write(randomBytes(5000));
    await end(first);
    const second = await openFileOutput(path);
    second.write(Buffer.from('short'));
    await end(second);
    expect(readFileSync(path, 'utf8')).toBe('short');
  });

  it('gives a FIFO an asynchronous stream, so that a slow reader never blocks the receive loop', async () => {
    const path = join(dir, 'pipe');
    execFileSync('mkfifo', ['-m', '600', path]);
    const chunks: Buffer[] = [];
    const reader = createReadStream(path);
    reader.on('data', (chunk) => chunks.push(chunk as Buffer));
    const readerDone = new Promise<void>((resolve) => reader.on('close', () => resolve()));
    const output = await openFileOutput(path);
    expect(output).toBeInstanceOf(WriteStream);
    expect(output).not.toBeInstanceOf(FileOutput);
    const data = randomBytes(300_000);
    output.write(data);
    await end(output);
    await readerDone;
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('fails with E_IO naming the path when it cannot be opened', async () => {
    const missing = join(dir, 'no-such-dir', 'out.bin');
    await expect(openFileOutput(missing)).rejects.toMatchObject({ code: 'E_IO', message: expect.stringContaining(`cannot write ${missing}: ENOENT`) });
    await expect(openFileOutput(dir)).rejects.toMatchObject({ code: 'E_IO', message: expect.stringContaining('EISDIR') });
  });
});

describe('FileOutput', () => {
  it('reports a failed write to its callback and the stream, and closes its descriptor', async () => {
    // /dev/full accepts the open and fails every write with ENOSPC.
    const fd = openSync('/dev/full', 'w');
    const output = new FileOutput(fd);
    const closed = new Promise((resolve) => output.once('close', resolve));
    const failed = new Promise<NodeJS.ErrnoException>((resolve) => output.once('error', resolve));
    const callbackError = await new Promise<NodeJS.ErrnoException | null | undefined>((resolve) => output.write(Buffer.from('x'), resolve));
    expect(callbackError?.code).toBe('ENOSPC');
    expect((await failed).code).toBe('ENOSPC');
    await closed;
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
  });

  it('refuses something that is not a descriptor', () => {
    expect(() => new FileOutput(-1)).toThrow(TypeError);
    expect(() => new FileOutput(1.5)).toThrow(TypeError);
  });
});
