// The sealcast command line: a thin shell over the library. run() parses argv, runs one command
// and returns its exit code; it never calls process.exit.

import { Command, CommanderError } from 'commander';
import { isSealcastError } from '../errors.js';
import { EXIT_CODE_BY_ERROR, EXIT_INTERRUPTED } from './exit-codes.js';
import { processIo, writeLine, type CliIo, type CommandContext } from './io.js';
import { VERSION } from '../version.js';

type Register = (program: Command, context: CommandContext) => void;

/**
 * Command modules by name, in the order help lists them; each adds its subcommand to the
 * program. They are loaded on demand: a command run by name loads only its own module, so a
 * receiver does not pay for loading the sender, the registry and the doctor at every start.
 */
const COMMAND_MODULES: ReadonlyArray<readonly [string, () => Promise<Register>]> = [
  ['doctor', async () => (await import('./doctor.js')).registerDoctor],
  ['subscribers', async () => (await import('./subscribers.js')).registerSubscribers],
  ['keygen', async () => (await import('./keygen.js')).registerKeygen],
  ['send', async () => (await import('./send.js')).registerSend],
  ['recv', async () => (await import('./recv.js')).registerRecv],
];

/**
 * The registrations `argv` needs: the named command's alone when the first argument names one,
 * every command otherwise (help, version, an unknown command, which commander then rejects
 * with the list it knows).
 */
export async function loadCommands(argv: readonly string[]): Promise<Register[]> {
  const named = COMMAND_MODULES.find(([name]) => name === argv[0]);
  const wanted = named === undefined ? COMMAND_MODULES : [named];
  return Promise.all(wanted.map(([, load]) => load()));
}

export function buildProgram(context: CommandContext, commands: readonly Register[]): Command {
  const program = new Command('sealcast');
  program
    .description('Encrypted IP multicast of one stream to many subscribers.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run sealcast --help for usage)')
    .configureOutput({
      writeOut: (text) => context.io.stdout.write(text),
      writeErr: (text) => context.io.stderr.write(text),
    });
  for (const register of commands) register(program, context);
  for (const command of program.commands) {
    command.exitOverride();
    command.configureOutput({
      writeOut: (text) => context.io.stdout.write(text),
      writeErr: (text) => context.io.stderr.write(text),
    });
  }
  return program;
}

export async function run(argv: readonly string[], io?: Partial<CliIo>): Promise<number> {
  const controller = new AbortController();
  const fullIo: CliIo = { ...processIo(controller.signal), ...io };
  const context: CommandContext = { io: fullIo, exitCode: 0 };
  const program = buildProgram(context, await loadCommands(argv));
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT_CODE_BY_ERROR.E_ARG;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successful exits; everything else commander rejects is usage.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
        return 0;
      }
      return EXIT_CODE_BY_ERROR.E_ARG;
    }
    if (fullIo.signal.aborted) {
      // The user asked the command to stop; what it reports while stopping is not a failure of its own.
      const reason = fullIo.signal.reason instanceof Error ? fullIo.signal.reason.message : 'interrupted';
      writeLine(fullIo.stderr, `sealcast: stopped: ${reason}`);
      return EXIT_INTERRUPTED;
    }
    if (isSealcastError(error)) {
      writeLine(fullIo.stderr, `sealcast: ${error.code}: ${error.message}`);
      return EXIT_CODE_BY_ERROR[error.code];
    }
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    writeLine(fullIo.stderr, `sealcast: E_INTERNAL: unexpected error: ${message}`);
    return EXIT_CODE_BY_ERROR.E_INTERNAL;
  }
}
