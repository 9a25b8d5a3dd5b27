// The streams and environment a CLI command uses. run() takes them as arguments so commands can
// be tested in-process with captured output, exactly as they run in a real process.

import type { Readable, Writable } from 'node:stream';

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** Aborted when the process is asked to stop (SIGINT/SIGTERM); commands finish cleanly. */
  signal: AbortSignal;
}

export interface CommandContext {
  io: CliIo;
  /** The exit code the command chose; run() returns it. */
  exitCode: number;
}

export function processIo(signal: AbortSignal): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, signal };
}

export function writeLine(stream: Writable, line: string): void {
  stream.write(line.endsWith('\n') ? line : `${line}\n`);
}
