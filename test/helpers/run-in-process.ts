// Runs the CLI in this process (run(argv) from dist/cli/main.js) with captured stdout and stderr,
// for tests of commands that need no separate process.

import { PassThrough } from 'node:stream';
import { run } from '../../dist/cli/main.js';

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runInProcess(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<InProcessResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk) => (out += chunk));
  stderr.on('data', (chunk) => (err += chunk));
  const code = await run(argv, { stdout, stderr, stdin: new PassThrough(), env, signal: new AbortController().signal });
  return { code, stdout: out, stderr: err };
}
