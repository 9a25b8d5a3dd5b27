// `sealcast recv --group ADDR:PORT --key-file FILE [-o FILE]`: joins the group and writes the
// authenticated stream to stdout (or a file), exiting 0 only when END proves it complete.
// `--server HOST:PORT --id NAME --psk-file FILE` instead registers with the sender's control
// server, which supplies the group, the session and the keys.

import type { Command } from 'commander';
import type { Writable } from 'node:stream';
import { backendPreferenceFromEnv, chachaEngineFromEnv, loadBackend } from '../crypto/load.js';
import { IO_ENV, ioModeFromEnv, parseIoMode, type IoMode } from '../pipeline/batch-io.js';
import { SealcastError } from '../errors.js';
import { readKeyFile } from '../keys/key-file.js';
import { GroupKeyRing } from '../keys/packet-keys.js';
import { DEFAULT_INTERFACE, readRmemMax, SOCKET_BUFFER_BYTES_WANTED, type MulticastGroup } from '../pipeline/multicast.js';
import { DEFAULT_IDLE_TIMEOUT_MS, describeDrops, Receiver, type ReceiveResult } from '../pipeline/receiver.js';
import { openFileOutput } from '../pipeline/file-output.js';
import { EXIT_PARTIAL } from './exit-codes.js';
import { writeLine, type CommandContext } from './io.js';
import { connectReceiverControl, parseFingerprintFlag, parseHostPort, type HostPort, type ReceiverControl } from './control-options.js';
import { parseGroup, parseInterface, parseSeconds } from './options.js';
import { exitFields, formatBytes, isTerminal, megabytesPerSecond, startProgress, writeJsonSummary } from './transfer-report.js';

interface RecvFlags {
  group?: MulticastGroup;
  keyFile?: string;
  server?: HostPort;
  id?: string;
  pskFile?: string;
  serverFingerprint?: string;
  knownServers?: string;
  interface: string;
  output?: string;
  startTimeout: number;
  idleTimeout?: number;
  io?: IoMode;
  quiet?: boolean;
  json?: boolean;
}

export function registerRecv(program: Command, context: CommandContext): void {
  program
    .command('recv')
    .description('join the group and write the decrypted stream to stdout (or -o FILE)')
    .option('--group <addr:port>', 'IPv4 multicast group and port, e.g. 239.255.0.1:5000 (with --key-file)', parseGroup)
    .option('--key-file <file>', 'the 32-byte group key, mode 0600; or use --server')
    .option('--server <host:port>', "the sender's control server: register there and get group, session and keys from it", (text: string) => parseHostPort(text, '--server'))
    .option('--id <name>', 'with --server: this subscriber\'s id (sealcast subscribers add NAME)')
    .option('--psk-file <file>', 'with --server: this subscriber\'s 32-byte pre-shared key, mode 0600')
    .option('--server-fingerprint <fp>', "with --server: the server's fingerprint as printed by the sender (SHA256:...)", parseFingerprintFlag)
    .option('--known-servers <file>', 'with --server: trust-on-first-use file (default ~/.config/sealcast/known_servers)')
    .option('--interface <ip>', 'IPv4 address of the interface to join the group on', parseInterface, DEFAULT_INTERFACE)
    .option('-o, --output <file>', 'write to FILE instead of stdout')
    .option('--start-timeout <seconds>', 'give up when no stream starts within this time (0 = wait forever)', (text: string) => parseSeconds(text, '--start-timeout', true), 0)
    .option(
      '--idle-timeout <seconds>',
      `give up when no packet arrives for this long once the stream began (default ${DEFAULT_IDLE_TIMEOUT_MS / 1000})`,
      (text: string) => parseSeconds(text, '--idle-timeout', false),
    )
    .option('--io <mode>', `socket I/O: native (batched system calls through the addon), dgram (node:dgram only) or auto, the default: native when available (env ${IO_ENV})`, (text: string) => parseIoMode(text, '--io'))
    .option('-q, --quiet', 'print nothing but errors and warnings')
    .option('--json', 'print a one-line JSON summary on stderr at the end')
    .action(async (flags: RecvFlags) => {
      context.exitCode = await recvCommand(flags, context);
    });
}

async function recvCommand(flags: RecvFlags, context: CommandContext): Promise<number> {
  const { stderr } = context.io;
  const backend = await loadBackend(backendPreferenceFromEnv(context.io.env), chachaEngineFromEnv(context.io.env));
  requireOneKeyMode(flags);
  // Checked before registering or opening the output, so a bad value leaves nothing open.
  const io = flags.io ?? ioModeFromEnv(context.io.env);
  // With --server, registration comes first: a refused subscriber fails before any output exists.
  let control: ReceiverControl | null = null;
  let ring: { lookup: GroupKeyRing['lookup']; destroy(): void };
  if (flags.server !== undefined) {
    control = await connectReceiverControl(
      { server: flags.server, id: flags.id as string, pskFile: flags.pskFile as string, serverFingerprint: flags.serverFingerprint, knownServers: flags.knownServers },
      backend,
      { stderr, quiet: flags.quiet === true, signal: context.io.signal, env: context.io.env },
    );
    ring = { lookup: control.ring.lookup, destroy: () => control?.close() };
    flags.group = control.group;
  } else {
    const groupKey = await readKeyFile(flags.keyFile as string);
    ring = new GroupKeyRing(backend, groupKey);
    groupKey.fill(0);
  }
  let output: Writable;
  try {
    output = flags.output === undefined ? context.io.stdout : await openFileOutput(flags.output);
  } catch (error) {
    ring.destroy();
    throw error;
  }
  const group = flags.group as MulticastGroup;
  let receiver: Receiver;
  try {
    receiver = new Receiver({
      backend,
      keys: ring.lookup,
      sessionId: control?.client.session.sessionId,
      group,
      interfaceAddress: flags.interface,
      startTimeoutMs: flags.startTimeout,
      idleTimeoutMs: flags.idleTimeout ?? DEFAULT_IDLE_TIMEOUT_MS,
      // With a control connection, losses are asked for again instead of ending the receive.
      requestRepair: control !== null ? (ranges) => control.requestRepair(ranges) : undefined,
      subscribedFromStart: control !== null && control.client.joinedAtOffset === 0,
      requestSlowDown: control !== null ? () => void control.client.requestSlowDown() : undefined,
      reportProgress: control !== null ? (offset) => void control.client.reportProgress(offset) : undefined,
      io,
      signal: context.io.signal,
    });
  } catch (error) {
    // The control connection would keep the process alive after the error.
    ring.destroy();
    if (flags.output !== undefined) await closeOutput(output).catch(() => {});
    throw error;
  }
  control?.client.on('repairUnavailable', (ranges) => receiver.repairUnavailable(ranges));
  receiver.on('listening', ({ recvBufferBytes }: { recvBufferBytes: number }) => {
    control?.ready();
    if (!flags.quiet) {
      writeLine(stderr, `sealcast recv: listening on ${group.address}:${group.port} via ${flags.interface} (${backend.name} backend, receive buffer ${formatBytes(recvBufferBytes)})`);
    }
    // Linux reports twice the size it granted; a buffer below the wanted size loses packets at high rates.
    const rmemMax = readRmemMax();
    if (!flags.quiet && rmemMax !== undefined && rmemMax < SOCKET_BUFFER_BYTES_WANTED / 2) {
      writeLine(stderr, `sealcast recv: warning: net.core.rmem_max is ${rmemMax} bytes; raise it (sysctl -w net.core.rmem_max=8388608) or lower the sender's --rate to avoid loss`);
    }
  });
  receiver.on('start', ({ startOffset, partial, sessionId, suite }: { startOffset: number; partial: boolean; sessionId: string; suite: string }) => {
    if (partial) {
      writeLine(stderr, `sealcast recv: joined mid-stream: output begins at stream offset ${startOffset} (session ${sessionId})`);
    } else if (!flags.quiet) {
      writeLine(stderr, `sealcast recv: receiving session ${sessionId} (${suite})`);
    }
  });
  const stopProgress = startProgress(stderr, !flags.quiet && isTerminal(stderr), () => {
    const stats = receiver.stats;
    return `received ${formatBytes(stats.bytes)}, ${stats.authenticated} packets, ${megabytesPerSecond(stats.bytes, stats.durationMs)} MB/s, drops: ${describeDrops(stats.drops)}`;
  });
  let result: ReceiveResult | null = null;
  let failure: unknown = null;
  try {
    result = await receiver.receive(output);
  } catch (error) {
    failure = error;
  } finally {
    stopProgress();
    ring.destroy();
  }
  if (flags.output !== undefined) {
    try {
      await closeOutput(output);
    } catch (error) {
      failure ??= new SealcastError('E_IO', `cannot write ${flags.output}: ${(error as Error).message}`, { cause: error });
    }
  }
  const stats = result ?? receiver.stats;
  const partial = failure === null && result?.outcome === 'partial';
  if (failure === null && result !== null) {
    if (partial) {
      writeLine(
        stderr,
        `sealcast recv: partial stream: wrote ${result.bytes} bytes from stream offset ${result.startOffset} to its end (${result.totalBytes} bytes); the length is verified, the SHA-256 cannot be checked without the start of the stream`,
      );
    } else if (!flags.quiet) {
      writeLine(stderr, `sealcast recv: received ${formatBytes(result.bytes)}, verified (sha256 ${result.sha256}); drops: ${describeDrops(result.drops)}`);
    }
  }
  if (flags.json) {
    writeJsonSummary(stderr, {
      command: 'recv',
      ...exitFields(failure, partial ? EXIT_PARTIAL : 0, partial ? 'partial' : 'ok'),
      sessionId: stats.sessionId,
      suite: stats.suite,
      backend: backend.name,
      startOffset: stats.startOffset,
      totalBytes: stats.totalBytes,
      bytes: stats.bytes,
      packets: stats.authenticated,
      datagrams: stats.datagrams,
      drops: stats.drops,
      durationMs: Math.round(stats.durationMs),
      megabytesPerSecond: megabytesPerSecond(stats.bytes, stats.durationMs),
      sha256: result?.sha256 ?? null,
      recvBufferBytes: stats.recvBufferBytes,
      io: stats.io,
      gro: stats.gro,
      repairRequests: stats.repairRequests,
      repairBytesRequested: stats.repairBytesRequested,
    });
  }
  if (failure !== null) throw failure;
  return partial ? EXIT_PARTIAL : 0;
}

/** Exactly one of --key-file (with --group) and --server (with --id and --psk-file). */
function requireOneKeyMode(flags: RecvFlags): void {
  if ((flags.keyFile === undefined) === (flags.server === undefined)) {
    throw new SealcastError('E_ARG', 'give exactly one of --key-file FILE --group ADDR:PORT (group key) and --server HOST:PORT --id NAME --psk-file FILE (registration)');
  }
  if (flags.keyFile !== undefined && flags.group === undefined) throw new SealcastError('E_ARG', '--key-file needs --group ADDR:PORT');
  if (flags.server !== undefined) {
    if (flags.id === undefined || flags.pskFile === undefined) throw new SealcastError('E_ARG', '--server needs --id NAME and --psk-file FILE');
    if (flags.group !== undefined) throw new SealcastError('E_ARG', '--group does not apply with --server: the server names the group');
  } else if (flags.id !== undefined || flags.pskFile !== undefined || flags.serverFingerprint !== undefined || flags.knownServers !== undefined) {
    throw new SealcastError('E_ARG', '--id, --psk-file, --server-fingerprint and --known-servers only apply with --server');
  }
}

function closeOutput(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}
