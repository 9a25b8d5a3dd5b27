// `sealcast keygen FILE`: a fresh random 32-byte group key, mode 0600, never overwriting.

import type { Command } from 'commander';
import { writeNewKeyFile } from '../keys/key-file.js';
import { writeLine, type CommandContext } from './io.js';

export function registerKeygen(program: Command, context: CommandContext): void {
  program
    .command('keygen')
    .description('write a fresh random 32-byte group key to FILE (mode 0600); refuses to overwrite')
    .argument('<file>', 'where to write the key')
    .action(async (file: string) => {
      await writeNewKeyFile(file);
      writeLine(context.io.stderr, `sealcast keygen: wrote a 32-byte key to ${file} (mode 0600)`);
      context.exitCode = 0;
    });
}
