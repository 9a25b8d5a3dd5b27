// `sealcast doctor`: what this installation will use, so a user can see at a glance whether the
// native core loaded and which suites they can choose.

import type { Command } from 'commander';
import { WIRE_SUITES } from '../crypto/backend.js';
import { loadBackend, nativeUnavailableReason } from '../crypto/load.js';
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
  node: string;
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
        writeLine(out, `pool threads: ${report.poolThreads}`);
        writeLine(out, `node:         ${report.node}`);
        if (report.nativeUnavailable !== null) {
          writeLine(out, `native:       unavailable (${report.nativeUnavailable})`);
        }
      }
      context.exitCode = 0;
    });
}
