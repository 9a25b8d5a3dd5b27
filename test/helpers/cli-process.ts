// Runs `node bin/sealcast.js ...` as real child processes for end-to-end tests: every child has
// a deadline, every child is tracked so a test's finally/afterEach can kill what is left, and
// stderr is captured so tests can read the --json summary and messages.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { createReadStream, openSync, closeSync } from 'node:fs';
import { mkdtemp, rm, writeFile, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'bin', 'sealcast.js');

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  stdout: string;
}

export interface Running {
  child: ChildProcess;
  /** Resolves when the child exits (or is killed at its deadline). */
  finished: Promise<Finished>;
  /** Resolves when stderr has printed a line matching `pattern`; rejects if the child exits first. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stderrSoFar(): string;
}

const live = new Set<ChildProcess>();

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Where the child's stdout goes: a file path, 'capture' (text, into Finished.stdout), 'pipe-raw'
   * (a pipe the test reads itself from child.stdout, bytes untouched) or 'ignore'.
   */
  stdout?: string | 'capture' | 'pipe-raw' | 'ignore';
  /** A file to stream into the child's stdin through a pipe; otherwise stdin is ignored. */
  stdinFile?: string;
  /** Leave the child's stdin as a pipe the test writes to (child.stdin). */
  stdinPipe?: boolean;
  timeoutMs: number;
}

export function spawnCli(args: readonly string[], options: SpawnOptions): Running {
  return spawnNode([CLI, ...args], options);
}

/** Runs a helper script of test/helpers (relay, attacker) the same way. */
export function spawnHelper(script: string, args: readonly string[], options: SpawnOptions): Running {
  return spawnNode([join(ROOT, 'test', 'helpers', script), ...args], options);
}

function spawnNode(args: readonly string[], options: SpawnOptions): Running {
  let stdoutFd: number | null = null;
  let stdoutSpec: 'pipe' | 'ignore' | number = 'ignore';
  if (options.stdout === 'capture' || options.stdout === 'pipe-raw') stdoutSpec = 'pipe';
  else if (options.stdout !== undefined && options.stdout !== 'ignore') {
    stdoutFd = openSync(options.stdout, 'w', 0o600);
    stdoutSpec = stdoutFd;
  }
  const child: ChildProcess = spawn(process.execPath, [...args], {
    env: { ...process.env, ...options.env },
    stdio: [options.stdinFile || options.stdinPipe ? 'pipe' : 'ignore', stdoutSpec, 'pipe'],
  });
  if (stdoutFd !== null) closeSync(stdoutFd);
  live.add(child);
  if (options.stdinFile && child.stdin) {
    const input = createReadStream(options.stdinFile);
    input.pipe(child.stdin);
    child.stdin.on('error', () => {});
  }
  let stderr = '';
  let stdout = '';
  const stderrListeners = new Set<() => void>();
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    stderr += text;
    for (const listener of stderrListeners) listener();
  });
  if (child.stdout && options.stdout === 'capture') {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => (stdout += text));
  }
  const deadline = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const finished = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(deadline);
      live.delete(child);
      for (const listener of stderrListeners) listener();
      resolve({ code, signal, stderr, stdout });
    });
  });
  let exited = false;
  void finished.then(() => (exited = true));
  return {
    child,
    finished,
    stderrSoFar: () => stderr,
    waitForStderr(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const match = pattern.exec(stderr);
          if (match) {
            done();
            resolve(match[0]);
          } else if (exited || child.exitCode !== null) {
            done();
            reject(new Error(`process exited before printing ${pattern}; stderr:\n${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${pattern}; stderr:\n${stderr}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          stderrListeners.delete(check);
        };
        stderrListeners.add(check);
        check();
      });
    },
  };
}

/** Kills every child still running (call in afterEach / finally). */
export function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

/** A group and port no other test file is likely to use at the same time. */
export function randomGroup(): string {
  return `239.255.${randomInt(1, 255)}.${randomInt(1, 255)}:${randomInt(20_000, 60_000)}`;
}

/** The --json summary: the last stderr line that parses as a JSON object. */
export function jsonSummary(stderr: string): Record<string, any> {
  const lines = stderr.trim().split('\n').reverse();
  for (const line of lines) {
    if (line.startsWith('{')) {
      try {
        return JSON.parse(line) as Record<string, any>;
      } catch {
        // Not the summary; keep looking.
      }
    }
  }
  throw new Error(`no JSON summary on stderr:\n${stderr}`);
}

export async function makeTempDir(prefix = 'sealcast-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function writeKey(path: string, key: Uint8Array = randomBytes(32)): Promise<void> {
  await writeFile(path, key, { mode: 0o600 });
}

/** Writes `bytes` random bytes in 1 MiB pieces (so 200 MiB never sits in memory at once). */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const handle = await open(path, 'w', 0o600);
  try {
    let left = bytes;
    while (left > 0) {
      const piece = randomBytes(Math.min(left, 1024 * 1024));
      await handle.write(piece);
      left -= piece.byteLength;
    }
  } finally {
    await handle.close();
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
