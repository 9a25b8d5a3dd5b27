// `sealcast doctor`: what this installation will use, so a user can see at a glance whether the
// native core loaded and which suites they can choose.

import type { Command } from 'commander';
import { WIRE_SUITES, type CryptoBackend } from '../crypto/backend.js';
import { randomBytes } from 'node:crypto';
import { loadBackend, nativeUnavailableReason } from '../crypto/load.js';
import { nativeKeyHandle } from '../crypto/native.js';
import { defaultPoolThreads } from '../pool/pool.js';
import { writeLine, type CommandContext } from './io.js';

export interface DoctorReport {
  backend: string;
  suites: string[];
  wireSuites: string[];
  openSsl: string | null;
  nodeOpenSsl: string;
  poolThreads: number;
  nativeUnavailable: string | null;
  /** How the native core computes ChaCha20-Poly1305 ('lanes', 'primitives' or 'evp'); null on WASM. */
  chachaEngine: string | null;
  node: string;
}

/**
 * Asks the addon which ChaCha20-Poly1305 engine a key gets: a fresh key runs the engine's
 * self-check, so this reports what the sender and receivers will really use.
 */
function nativeChachaEngine(backend: CryptoBackend): string | null {
  const key = randomBytes(32);
  try {
    const aeadKey = backend.createKey('chacha20-poly1305', key);
    const engine = nativeKeyHandle(aeadKey)?.engine ?? null;
    aeadKey.destroy();
    return engine;
  } finally {
    key.fill(0);
  }
}

export async function doctorReport(): Promise<DoctorReport> {
  const backend = await loadBackend();
  return {
    backend: backend.name,
    suites: [...backend.suites],
    wireSuites: WIRE_SUITES.filter((suite) => backend.suites.includes(suite)),
    openSsl: backend.openSslVersion,
    nodeOpenSsl: process.versions.openssl,
    poolThreads: defaultPoolThreads(),
    nativeUnavailable: nativeUnavailableReason(),
    chachaEngine: backend.name === 'native' ? nativeChachaEngine(backend) : null,
    node: process.version,
  };
}

export function registerDoctor(program: Command, context: CommandContext): void {
  program
    .command('doctor')
    .description('print the active crypto backend, its suites, the OpenSSL version and the worker-pool size')
    .option('--json', 'print the report as one line of JSON')
    .action(async (options: { json?: boolean }) => {
      const report = await doctorReport();
      const out = context.io.stdout;
      if (options.json) {
        writeLine(out, JSON.stringify(report));
      } else {
        writeLine(out, `backend:      ${report.backend}`);
        writeLine(out, `suites:       ${report.wireSuites.join(', ')}`);
        writeLine(out, `openssl:      ${report.openSsl ?? `none (WASM backend; node links OpenSSL ${report.nodeOpenSsl})`}`);
        if (report.chachaEngine !== null) writeLine(out, `chacha20:     ${report.chachaEngine} engine`);
        writeLine(out, `pool threads: ${report.poolThreads}`);
        writeLine(out, `node:         ${report.node}`);
        if (report.nativeUnavailable !== null) {
          writeLine(out, `native:       unavailable (${report.nativeUnavailable})`);
        }
      }
      context.exitCode = 0;
    });
}
