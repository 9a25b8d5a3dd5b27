// Describes the machine a benchmark ran on, so that result files can be compared honestly.

import { execFileSync } from 'node:child_process';
import os from 'node:os';

function commandOutput(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/**
 * CPU, memory, OS, Node and OpenSSL versions, and the load average when called (other work on
 * the machine skews results; a high load average says so). `extra` is merged in.
 */
export function machineInfo(extra = {}) {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    platform: os.platform(),
    arch: os.arch(),
    kernel: os.release(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    availableParallelism: os.availableParallelism(),
    totalMemoryBytes: os.totalmem(),
    nodeVersion: process.version,
    nodeOpenSslVersion: process.versions.openssl,
    opensslCli: commandOutput('openssl', ['version']),
    loadAverage1m: os.loadavg()[0],
    date: new Date().toISOString(),
    ...extra,
  };
}
