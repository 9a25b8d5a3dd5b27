// Runs `openssl speed -evp <cipher> -bytes <size> -seconds <n>` and parses its machine-readable
// output, so that a benchmark can compare itself with OpenSSL's own loop in the same run.

import { spawnSync } from 'node:child_process';

/** The exact arguments used, for the record. -elapsed: wall-clock time, like our own timing. */
export function opensslSpeedArgs(cipher, bytes, seconds) {
  return ['speed', '-mr', '-elapsed', '-evp', cipher, '-bytes', String(bytes), '-seconds', String(seconds)];
}

export function opensslAvailable() {
  const result = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 5_000 });
  return result.status === 0;
}

/**
 * Returns { operations, seconds, bytesPerSecond, command } or null when openssl is missing or
 * its output cannot be parsed (the reason goes to `onSkip`).
 */
export function opensslSpeed(cipher, bytes, seconds, onSkip = () => {}) {
  if (!Number.isInteger(seconds) || seconds < 1) throw new RangeError(`seconds must be a positive integer, got ${seconds}`);
  const args = opensslSpeedArgs(cipher, bytes, seconds);
  const command = `openssl ${args.join(' ')}`;
  const result = spawnSync('openssl', args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (result.error !== undefined || result.status !== 0) {
    onSkip(`${command} failed: ${result.error?.message ?? result.stderr.trim().split('\n').pop()}`);
    return null;
  }
  // "+R:<operations>:<name>:<seconds>" is one line per size in -mr output; openssl 3 prints it
  // on stderr and the summary on stdout.
  const match = /^\+R:(\d+):[^:]*:([\d.]+)\s*$/m.exec(`${result.stdout}\n${result.stderr}`);
  if (match === null) {
    onSkip(`${command}: no +R line in its output`);
    return null;
  }
  const operations = Number(match[1]);
  const measuredSeconds = Number(match[2]);
  if (!(operations > 0 && measuredSeconds > 0)) {
    onSkip(`${command}: implausible result ${match[0]}`);
    return null;
  }
  return { operations, seconds: measuredSeconds, bytesPerSecond: (operations * bytes) / measuredSeconds, command };
}
