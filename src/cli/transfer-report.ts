// Progress lines and the final JSON summary shared by `send` and `recv`. Progress goes to stderr
// only when it is a terminal (and not --quiet), so pipes and logs stay clean.

import type { Writable } from 'node:stream';
import { isSealcastError } from '../errors.js';
import { EXIT_CODE_BY_ERROR } from './exit-codes.js';
import { writeLine } from './io.js';

const PROGRESS_INTERVAL_MS = 500;

export function isTerminal(stream: Writable): boolean {
  return (stream as Writable & { isTTY?: boolean }).isTTY === true;
}

/** Starts a progress line that `render` fills every half second; returns the function that stops it. */
export function startProgress(stderr: Writable, enabled: boolean, render: () => string): () => void {
  if (!enabled) return () => {};
  const timer = setInterval(() => stderr.write(`\r${render()}\u001b[K`), PROGRESS_INTERVAL_MS);
  return () => {
    clearInterval(timer);
    stderr.write(`\r${render()}\u001b[K\n`);
  };
}

export function megabytesPerSecond(bytes: number, durationMs: number): number {
  return durationMs > 0 ? Math.round((bytes / 1e6 / (durationMs / 1000)) * 100) / 100 : 0;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/** How an outcome reads in the JSON summary: `exit` is the code name, `exitCode` the number. */
export function exitFields(error: unknown, successExitCode: number, successName: string): { exit: string; exitCode: number; message?: string } {
  if (error === null || error === undefined) return { exit: successName, exitCode: successExitCode };
  if (isSealcastError(error)) return { exit: error.code, exitCode: EXIT_CODE_BY_ERROR[error.code], message: error.message };
  return { exit: 'E_INTERNAL', exitCode: EXIT_CODE_BY_ERROR.E_INTERNAL, message: error instanceof Error ? error.message : String(error) };
}

export function writeJsonSummary(stderr: Writable, summary: Record<string, unknown>): void {
  writeLine(stderr, JSON.stringify(summary));
}
