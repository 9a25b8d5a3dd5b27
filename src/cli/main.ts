// The sealcast command line: a thin shell over the library. run() parses argv, runs one command
// and returns its exit code; it never calls process.exit.

import { Command, CommanderError } from 'commander';
import { isSealcastError } from '../errors.js';
import { registerDoctor } from './doctor.js';
import { registerKeygen } from './keygen.js';
import { registerRecv } from './recv.js';
import { registerSend } from './send.js';
import { registerSubscribers } from './subscribers.js';
import { EXIT_CODE_BY_ERROR, EXIT_INTERRUPTED } from './exit-codes.js';
import { processIo, writeLine, type CliIo, type CommandContext } from './io.js';
import { VERSION } from '../version.js';

type Register = (program: Command, context: CommandContext) => void;

/** Command modules; each adds its subcommand to the program. */
const COMMANDS: Register[] = [registerDoctor, registerSubscribers, registerKeygen, registerSend, registerRecv];

export function buildProgram(context: CommandContext): Command {
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
  for (const register of COMMANDS) register(program, context);
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
  const program = buildProgram(context);
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
