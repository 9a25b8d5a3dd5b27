// The sender's file input: two buffers that take turns. Checked: the bytes come out exactly and
// in order for sizes around the chunk size, each chunk stays intact until the next is asked for,
// the descriptor is closed however the iteration ends, and destroy() stops it.

import { randomBytes } from 'node:crypto';
import { fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileSource } from '../../dist/pipeline/file-source.js';

const dir = mkdtempSync(join(tmpdir(), 'sealcast-file-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileOf(bytes: number): { path: string; data: Buffer } {
  const path = join(dir, `input-${bytes}.bin`);
  const data = randomBytes(bytes);
  writeFileSync(path, data);
  return { path, data };
}

function isClosed(fd: number): boolean {
  try {
    fstatSync(fd);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EBADF';
  }
}

describe('FileSource', () => {
  for (const bytes of [0, 1, 4095, 4096, 4097, 3 * 4096 + 17]) {
    it(`yields the file's ${bytes} bytes exactly, and closes the descriptor at the end`, async () => {
      const { path, data } = fileOf(bytes);
      const fd = openSync(path, 'r');
      const source = new FileSource(fd, 4096);
      const chunks: Buffer[] = [];
      for await (const chunk of source) {
        expect(chunk.byteLength).toBeGreaterThan(0);
        expect(chunk.byteLength).toBeLessThanOrEqual(4096);
        const copy = Buffer.from(chunk);
        // The read of the next chunk runs meanwhile; it must not land in this one.
        await new Promise((resolve) => setTimeout(resolve, 1));
        expect(Buffer.from(chunk).equals(copy)).toBe(true);
        chunks.push(copy);
      }
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      expect(isClosed(fd)).toBe(true);
    });
  }

  it('closes the descriptor when the reader stops early, and can be read only once', async () => {
    const { path } = fileOf(5 * 4096);
    const fd = openSync(path, 'r');
    const source = new FileSource(fd, 4096);
    for await (const chunk of source) {
      expect(chunk.byteLength).toBe(4096);
      break;
    }
    expect(isClosed(fd)).toBe(true);
    await expect(source[Symbol.asyncIterator]().next()).rejects.toThrow(/read once/);
  });

  it('ends with the error destroy() gives, at the next read', async () => {
    const { path } = fileOf(5 * 4096);
    const fd = openSync(path, 'r');
    const source = new FileSource(fd, 4096);
    const iterator = source[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    source.destroy(Object.assign(new Error('stop'), { code: 'E_CLOSED' }));
    // The read already under way completes; the one after it is refused.
    await expect((async () => {
      for (;;) if ((await iterator.next()).done) return;
    })()).rejects.toMatchObject({ code: 'E_CLOSED' });
    expect(isClosed(fd)).toBe(true);
  });

  it('closes at once when destroyed before anything was read', async () => {
    const { path } = fileOf(10);
    const fd = openSync(path, 'r');
    const source = new FileSource(fd);
    source.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isClosed(fd)).toBe(true);
    await expect(source[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'E_CLOSED' });
  });

  it('reports a read error', async () => {
    // A directory opens for reading but fails to read (EISDIR).
    const fd = openSync(dir, 'r');
    const source = new FileSource(fd);
    await expect(source[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'EISDIR' });
    expect(isClosed(fd)).toBe(true);
  });

  it('refuses a bad descriptor or chunk size', () => {
    expect(() => new FileSource(-1)).toThrow(TypeError);
    expect(() => new FileSource(0, 0)).toThrow(RangeError);
  });
});
