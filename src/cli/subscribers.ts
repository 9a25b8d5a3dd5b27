// `sealcast subscribers add|list|show|remove`: manages the registry of subscribers. `add` draws a
// fresh 32-byte pre-shared key and writes it to a file of mode 0600 for the subscriber; the key
// is never printed. The key file is written before the registry row so that a failure never
// leaves a registered subscriber whose key nobody has.

import { unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { SealcastError } from '../errors.js';
import { isValidClientId } from '../control/messages.js';
import { generatePsk, writePskFile } from '../keys/psk.js';
import type { Registry, SubscriberRecord } from '../store/registry.js';
import { writeLine, type CommandContext } from './io.js';

interface DbOption {
  db: string;
}

function requireName(name: string): string {
  if (!isValidClientId(name)) {
    throw new SealcastError('E_ARG', `subscriber name must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(String(name).slice(0, 80))}`);
  }
  return name;
}

async function withRegistry<T>(path: string, action: (registry: Registry) => T): Promise<T> {
  // SQLite is loaded by the commands that use it, not by every start of the CLI.
  const { Registry } = await import('../store/registry.js');
  const registry = Registry.open(path);
  try {
    return action(registry);
  } finally {
    registry.close();
  }
}

function isoTime(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

function recordJson(record: SubscriberRecord): Record<string, unknown> {
  return {
    id: record.id,
    keyKind: record.keyKind,
    status: record.status,
    createdAt: isoTime(record.createdAtMs),
    removedAt: record.removedAtMs === null ? null : isoTime(record.removedAtMs),
  };
}

export function addSubscriber(dbPath: string, name: string, pskOut: string): Promise<SubscriberRecord> {
  requireName(name);
  return withRegistry(dbPath, (registry) => {
    // Checked first only for a clearer message; the insert below checks again atomically.
    if (registry.getSubscriber(name)?.status === 'active') {
      throw new SealcastError('E_ARG', `subscriber ${name} already exists in ${dbPath}`);
    }
    const psk = generatePsk();
    try {
      writePskFile(pskOut, psk);
      try {
        return registry.addPskSubscriber(name, psk);
      } catch (error) {
        // The subscriber was not added, so the key in the new file belongs to nobody.
        unlinkSync(pskOut);
        throw error;
      }
    } finally {
      psk.fill(0);
    }
  });
}

export function registerSubscribers(program: Command, context: CommandContext): void {
  const subscribers = program.command('subscribers').description('manage the registry of subscribers and their pre-shared keys');
  const out = () => context.io.stdout;

  subscribers
    .command('add')
    .description('register a subscriber and write its new 32-byte pre-shared key to a file of mode 0600 (never printed)')
    .argument('<name>', 'subscriber id: 1 to 64 characters of A-Z a-z 0-9 . _ -')
    .requiredOption('--db <path>', 'registry database (created with mode 0600 if missing)')
    .option('--psk-out <file>', 'where to write the key (default: NAME.psk in the current directory); never overwritten')
    .action(async (name: string, options: DbOption & { pskOut?: string }) => {
      requireName(name);
      const pskOut = options.pskOut ?? resolve(process.cwd(), `${name}.psk`);
      const record = await addSubscriber(options.db, name, pskOut);
      writeLine(out(), `added subscriber ${record.id} (key kind ${record.keyKind}); pre-shared key written to ${pskOut} (mode 0600)`);
      writeLine(out(), `give ${pskOut} to the subscriber over a secure channel; it is the only copy outside ${options.db}`);
      context.exitCode = 0;
    });

  subscribers
    .command('list')
    .description('list subscribers (never their keys)')
    .requiredOption('--db <path>', 'registry database')
    .option('--json', 'one JSON object per line')
    .action(async (options: DbOption & { json?: boolean }) => {
      const records = await withRegistry(options.db, (registry) => registry.listSubscribers());
      if (options.json) {
        for (const record of records) writeLine(out(), JSON.stringify(recordJson(record)));
      } else {
        const width = Math.max(4, ...records.map((record) => record.id.length));
        writeLine(out(), `${'NAME'.padEnd(width)}  KIND    STATUS   CREATED`);
        for (const record of records) {
          writeLine(out(), `${record.id.padEnd(width)}  ${record.keyKind.padEnd(6)}  ${record.status.padEnd(7)}  ${isoTime(record.createdAtMs)}`);
        }
      }
      context.exitCode = 0;
    });

  subscribers
    .command('show')
    .description("show one subscriber's record (never its key)")
    .argument('<name>', 'subscriber id')
    .requiredOption('--db <path>', 'registry database')
    .option('--json', 'print one JSON object')
    .action(async (name: string, options: DbOption & { json?: boolean }) => {
      requireName(name);
      const record = await withRegistry(options.db, (registry) => registry.getSubscriber(name));
      if (!record) throw new SealcastError('E_ARG', `no subscriber named ${name} in ${options.db}`);
      if (options.json) {
        writeLine(out(), JSON.stringify(recordJson(record)));
      } else {
        writeLine(out(), `name:     ${record.id}`);
        writeLine(out(), `key kind: ${record.keyKind}`);
        writeLine(out(), `status:   ${record.status}`);
        writeLine(out(), `created:  ${isoTime(record.createdAtMs)}`);
        if (record.removedAtMs !== null) writeLine(out(), `removed:  ${isoTime(record.removedAtMs)}`);
      }
      context.exitCode = 0;
    });

  subscribers
    .command('remove')
    .description('remove a subscriber: its key is erased from the registry and it can no longer register')
    .argument('<name>', 'subscriber id')
    .requiredOption('--db <path>', 'registry database')
    .action(async (name: string, options: DbOption) => {
      requireName(name);
      const record = await withRegistry(options.db, (registry) => registry.removeSubscriber(name));
      writeLine(out(), `removed subscriber ${record.id}; its key is erased from ${options.db}`);
      context.exitCode = 0;
    });
}
