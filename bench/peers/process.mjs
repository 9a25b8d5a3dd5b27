// Child processes for the benchmark: each runs in its own process group, optionally inside a
// network namespace, under GNU time so its CPU time (user + system, including threads and
// waited-for children) is known after it exits. Every child has a deadline and is killed with its
// whole group when the deadline passes or the benchmark exits.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { namespacePrefix } from '../netns.mjs';

const GNU_TIME = '/usr/bin/time';
const STDERR_TAIL_BYTES = 8192;
const STDOUT_KEEP_BYTES = 1 << 20;
const CLOSE_WAIT_MS = 2000;

const liveGroups = new Set();
let exitHandlerInstalled = false;

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function installExitHandler() {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  });
}

/** Kills every child group still running (used by signal handlers before namespaces go away). */
export function killAllChildren() {
  for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
}

/** True when GNU time is available; without it CPU time cannot be measured per process. */
export function haveGnuTime() {
  return existsSync(GNU_TIME);
}

/** True when `command` is on PATH. */
export function haveCommand(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

// GNU time writes "Command exited with non-zero status N" or "Command terminated by signal N"
// before the formatted line, so the figures are on the last non-empty line.
function readCpuFile(cpuFile) {
  if (!existsSync(cpuFile)) return null;
  const lines = readFileSync(cpuFile, 'utf8').trim().split('\n');
  rmSync(cpuFile, { force: true });
  const match = /^([\d.]+) ([\d.]+)$/.exec(lines.at(-1) ?? '');
  if (!match) return null;
  return { userSec: Number(match[1]), systemSec: Number(match[2]) };
}

/**
 * Starts `argv` (in `namespace` when given) under GNU time.
 * Returns { pid, startedAtMs, done, stop(signal), output() }; `done` resolves (never rejects) to
 * { code, signal, timedOut, cpuSec, endedAtMs, stderrTail, stdout }.
 */
export function spawnMeasured({ argv, namespace = null, cwd, env, timeoutMs, cpuFile, captureStdout = false, label = argv[0] }) {
  installExitHandler();
  rmSync(cpuFile, { force: true });
  const fullArgv = [...namespacePrefix(namespace), GNU_TIME, '-o', cpuFile, '-f', '%U %S', ...argv];
  const child = spawn(fullArgv[0], fullArgv.slice(1), {
    cwd,
    env: env ?? process.env,
    detached: true,
    stdio: ['ignore', captureStdout ? 'pipe' : 'ignore', 'pipe'],
  });
  const startedAtMs = performance.now();
  let stderrTail = '';
  let stdout = '';
  let timedOut = false;
  child.stderr.on('data', (chunk) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
  });
  if (captureStdout) {
    child.stdout.on('data', (chunk) => {
      if (stdout.length < STDOUT_KEEP_BYTES) stdout += chunk.toString();
    });
  }
  if (child.pid !== undefined) liveGroups.add(child.pid);
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid, 'SIGKILL');
  }, timeoutMs);
  const done = new Promise((resolve) => {
    let endedAtMs = null;
    let settled = false;
    const finish = (code, signal, spawnError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      liveGroups.delete(child.pid);
      const cpu = readCpuFile(cpuFile);
      resolve({
        label,
        code,
        signal,
        timedOut,
        spawnError: spawnError?.message ?? null,
        cpuSec: cpu ? cpu.userSec + cpu.systemSec : null,
        startedAtMs,
        endedAtMs: endedAtMs ?? performance.now(),
        stderrTail,
        stdout,
      });
    };
    child.once('error', (error) => finish(null, null, error));
    child.once('exit', (code, signal) => {
      endedAtMs = performance.now();
      // Whatever the leader did, nothing of its group may outlive it (a forked daemon would
      // also hold stderr open and delay 'close' forever).
      killGroup(child.pid, 'SIGKILL');
      // 'close' follows once stderr is drained; the bound covers a pipe some stray process holds.
      const closeTimer = setTimeout(() => finish(code, signal, null), CLOSE_WAIT_MS);
      child.once('close', () => {
        clearTimeout(closeTimer);
        finish(code, signal, null);
      });
    });
  });
  return {
    pid: child.pid,
    startedAtMs,
    done,
    // GNU time ignores SIGINT and SIGQUIT while it waits, so signalling the group reaches the
    // measured program and time still reports its figures.
    stop: (signal = 'SIGINT') => killGroup(child.pid, signal),
    stderrSoFar: () => stderrTail,
  };
}

/** Resolves when `predicate(stderrSoFar)` holds, or after `maxMs` (resolving false). */
export async function waitFor(predicate, maxMs, pollMs = 20) {
  const deadline = performance.now() + maxMs;
  while (performance.now() < deadline) {
    if (predicate()) return true;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return predicate();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Multicast datagrams and octets sent from `namespace` so far (IpExt counters, IP headers included). */
export function readMulticastOutCounters(namespace) {
  try {
    const text = execFileSync(namespacePrefix(namespace)[0] ?? 'cat', namespace ? [...namespacePrefix(namespace).slice(1), 'cat', '/proc/net/netstat'] : ['/proc/net/netstat'], { timeout: 5000 }).toString();
    const lines = text.split('\n').filter((line) => line.startsWith('IpExt:'));
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/);
    const value = (name) => Number(values[names.indexOf(name)]);
    return { packets: value('OutMcastPkts'), octets: value('OutMcastOctets') };
  } catch {
    return null;
  }
}

/** Mean UDP payload of multicast datagrams sent between two counter readings (IPv4 + UDP = 28 B). */
export function meanDatagramBytes(before, after) {
  if (!before || !after) return null;
  const packets = after.packets - before.packets;
  if (packets <= 0) return null;
  return Math.round((after.octets - before.octets) / packets - 28);
}
