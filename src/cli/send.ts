// `sealcast send [FILE|-] --group ADDR:PORT --key-file FILE ...`: one session from a file or
// stdin to the group, sealed with the group key's packet key for a fresh session id.
// `--control HOST:PORT --db PATH` instead runs the control server beside the data plane: a fresh
// data key is delivered to each registered subscriber, wrapped under its own key.

import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { close, createReadStream, fstatSync, open } from 'node:fs';
import type { Readable } from 'node:stream';
import { DEFAULT_SUITE, type WireSuiteName } from '../crypto/backend.js';
import { IO_ENV, ioModeFromEnv, parseIoMode, type IoMode } from '../pipeline/batch-io.js';
import { backendPreferenceFromEnv, chachaEngineFromEnv, loadBackend } from '../crypto/load.js';
import { SealcastError } from '../errors.js';
import { readKeyFile } from '../keys/key-file.js';
import { derivePacketKeyBytes, EpochKeySource } from '../keys/packet-keys.js';
import { AeadPool } from '../pool/pool.js';
import { SESSION_ID_BYTES } from '../keys/kdf.js';
import { DEFAULT_DATAGRAM_BYTES } from '../packet/format.js';
import { defaultTtl, DEFAULT_INTERFACE, type MulticastGroup } from '../pipeline/multicast.js';
import { FileSource } from '../pipeline/file-source.js';
import { DEFAULT_PLAIN_RATE_BITS_PER_SECOND, DEFAULT_RATE_BITS_PER_SECOND, Sender, type SendStats } from '../pipeline/sender.js';
import { writeLine, type CommandContext } from './io.js';
import { CONTROL_TRANSPORT_ENV, parseControlTransport, parseHostPort, parseWaitFor, startSenderControl, type HostPort, type SenderControl } from './control-options.js';
import type { ControlTransportMode } from '../control/link.js';
import { formatRate, parseGroup, parseInteger, parseInterface, parsePacketSize, parseRate, parseRepairWindow, parseSeconds, parseSuite, parseTtl } from './options.js';
import { exitFields, formatBytes, isTerminal, megabytesPerSecond, startProgress, writeJsonSummary } from './transfer-report.js';

interface SendFlags {
  group: MulticastGroup;
  keyFile?: string;
  control?: HostPort;
  db?: string;
  waitFor?: number;
  waitTimeout?: number;
  serverKey?: string;
  controlTransport?: ControlTransportMode;
  interface: string;
  ttl?: number;
  rate?: number;
  packetSize: number;
  suite: WireSuiteName;
  sealThreads: number;
  repairWindow?: number;
  io?: IoMode;
  quiet?: boolean;
  json?: boolean;
}

const INPUT_READ_BYTES = 1024 * 1024;
const WAIT_TIMEOUT_MS_DEFAULT = 60_000;
/** With --control: sent ciphertext kept for repair requests (--repair-window). */
export const REPAIR_WINDOW_BYTES_DEFAULT = 128 * 1024 * 1024;
/** After END, how often the sender checks whether every subscriber has finished. */
const SUBSCRIBERS_DONE_POLL_MS = 50;
/**
 * After END, how long the sender waits for repair requests once they stop, when subscribers
 * are still connected: one whose output is behind asks only once it caught up. It ends sooner
 * when every subscriber has closed its connection (each does when its output is complete).
 */
const REPAIR_LINGER_MS_WITH_SUBSCRIBERS = 10_000;
/**
 * With --control: new data runs at most this far ahead of the slowest subscriber's reported
 * progress. Receivers ask for an 8 MiB socket buffer, which holds about 5 MB of 1400-byte
 * datagrams' payload: 4 MiB keeps a subscriber that reports in time from overflowing it.
 */
const FLOW_WINDOW_BYTES = 4 * 1024 * 1024;

export function registerSend(program: Command, context: CommandContext): void {
  program
    .command('send')
    .description('multicast a file or stdin to the group, encrypted with the group key (--key-file) or a data key delivered to each subscriber (--control)')
    .argument('[file]', 'the file to send; - or nothing reads stdin')
    .requiredOption('--group <addr:port>', 'IPv4 multicast group and port, e.g. 239.255.0.1:5000', parseGroup)
    .option('--key-file <file>', 'the 32-byte group key (sealcast keygen FILE), mode 0600; or use --control')
    .option('--control <host:port>', 'run the control server here: subscribers register and get the key by unicast (needs --db)', (text: string) => parseHostPort(text, '--control', true))
    .option('--db <path>', 'the subscriber registry (sealcast subscribers add), with --control')
    .option('--wait-for <n>', 'with --control: start sending once N subscribers hold the key', parseWaitFor)
    .option('--wait-timeout <seconds>', 'with --wait-for: fail (E_TIMEOUT) after this long (default 60)', (text: string) => parseSeconds(text, '--wait-timeout', false))
    .option('--server-key <file>', "with --control: the server's Ed25519 signing key, created on first use (default ~/.config/sealcast/server_ed25519.pem)")
    .option('--control-transport <mode>', `with --control: how control connections are carried: native (the addon's epoll listener, Linux), net (node:net) or auto, the default: native when available (env ${CONTROL_TRANSPORT_ENV})`, (text: string) => parseControlTransport(text, '--control-transport'))
    .option('--interface <ip>', 'IPv4 address of the interface to multicast on', parseInterface, DEFAULT_INTERFACE)
    .option('--ttl <n>', 'multicast TTL (default 0 on loopback, 1 on any other interface)', parseTtl)
    .option('--rate <bits>', `sending rate in bits per second, e.g. 400M, 1G, 800k (default ${formatRate(DEFAULT_RATE_BITS_PER_SECOND)} with native I/O and the native backend, else ${formatRate(DEFAULT_PLAIN_RATE_BITS_PER_SECOND)})`, parseRate)
    .option('--packet-size <bytes>', 'datagram size: header + payload + tag, up to 65507', parsePacketSize, DEFAULT_DATAGRAM_BYTES)
    .option('--suite <name>', 'AEAD suite: chacha20-poly1305 or aes-256-gcm (native backend only)', parseSuite, DEFAULT_SUITE)
    .option('--repair-window <bytes>', `with --control: sent data kept to repair subscribers' losses, e.g. 64M; 0 turns repair off (default ${REPAIR_WINDOW_BYTES_DEFAULT / 1024 / 1024}M)`, parseRepairWindow)
    .option('--seal-threads <n>', 'seal on N worker threads; 0 (the default) seals on the main thread', (text: string) => parseInteger(text, '--seal-threads', 0, 64), 0)
    .option('--io <mode>', `socket I/O: native (batched system calls through the addon), dgram (node:dgram only) or auto, the default: native when available (env ${IO_ENV})`, (text: string) => parseIoMode(text, '--io'))
    .option('-q, --quiet', 'print nothing but errors')
    .option('--json', 'print a one-line JSON summary on stderr at the end')
    .action(async (file: string | undefined, flags: SendFlags) => {
      context.exitCode = await sendCommand(file, flags, context);
    });
}

async function sendCommand(file: string | undefined, flags: SendFlags, context: CommandContext): Promise<number> {
  const { stderr } = context.io;
  const backend = await loadBackend(backendPreferenceFromEnv(context.io.env), chachaEngineFromEnv(context.io.env));
  if (!backend.suites.includes(flags.suite)) {
    throw new SealcastError('E_BACKEND', `suite ${flags.suite} is not available on the ${backend.name} backend (it offers ${backend.suites.join(', ')}); build the native addon or use --suite chacha20-poly1305`);
  }
  requireOneKeyMode(flags);
  // Checked before any key, socket, pool or server exists, so a bad value leaves nothing open.
  const io = flags.io ?? ioModeFromEnv(context.io.env);
  const groupKey = flags.keyFile !== undefined ? await readKeyFile(flags.keyFile) : null;
  let input: InputSource;
  try {
    input = await openInput(file, context.io.stdin);
  } catch (error) {
    groupKey?.fill(0);
    throw error;
  }
  const sessionId = randomBytes(SESSION_ID_BYTES);
  let control: SenderControl | null = null;
  if (flags.control !== undefined) {
    try {
      control = await startSenderControl(
        { control: flags.control, db: flags.db as string, serverKey: flags.serverKey, waitFor: flags.waitFor, waitTimeout: flags.waitTimeout ?? WAIT_TIMEOUT_MS_DEFAULT, controlTransport: flags.controlTransport },
        { sessionId, group: flags.group, suite: flags.suite, packetBytes: flags.packetSize },
        { stderr, quiet: flags.quiet === true, signal: context.io.signal, env: context.io.env },
      );
    } catch (error) {
      input.destroy();
      throw error;
    }
  }
  let pool: AeadPool | undefined;
  let packetKey;
  let poolKey;
  const packetKeyBytes = derivePacketKeyBytes(flags.suite, (groupKey ?? control?.dataKey) as Buffer, sessionId, 0);
  try {
    packetKey = backend.createKey(flags.suite, packetKeyBytes);
    if (flags.sealThreads > 0) {
      pool = await AeadPool.create({ threads: flags.sealThreads, backend: backend.name });
      poolKey = await pool.addKey(flags.suite, packetKeyBytes);
    }
  } catch (error) {
    packetKey?.destroy();
    await pool?.close();
    input.destroy();
    await control?.close();
    throw error;
  } finally {
    packetKeyBytes.fill(0);
    groupKey?.fill(0);
  }
  const ttl = flags.ttl ?? defaultTtl(flags.interface);
  let sender: Sender;
  try {
    sender = new Sender({
      backend,
      suite: flags.suite,
      keys: new EpochKeySource(0, packetKey, poolKey),
      pool,
      sessionId,
      group: flags.group,
      interfaceAddress: flags.interface,
      ttl,
      datagramBytes: flags.packetSize,
      rateBitsPerSecond: flags.rate,
      // Repair needs a way back from the receivers: the control connection.
      repairWindowBytes: control !== null ? (flags.repairWindow ?? REPAIR_WINDOW_BYTES_DEFAULT) : 0,
      repairLingerMs: REPAIR_LINGER_MS_WITH_SUBSCRIBERS,
      flowWindowBytes: control !== null ? FLOW_WINDOW_BYTES : 0,
      io,
      signal: context.io.signal,
    });
  } catch (error) {
    // An open pool or control server would keep the process alive after the error.
    packetKey.destroy();
    await pool?.close();
    input.destroy();
    await control?.close();
    throw error;
  }
  // Said once the socket is open, when the I/O path and with it the default rate are known.
  sender.once('start', () => {
    if (flags.quiet) return;
    const { rateBitsPerSecond, io } = sender.stats;
    writeLine(
      stderr,
      `sealcast send: session ${sessionId.toString('hex')} to ${flags.group.address}:${flags.group.port} via ${flags.interface} (ttl ${ttl}), ${flags.suite} on the ${backend.name} backend, ${flags.packetSize}-byte datagrams, rate ${formatRate(rateBitsPerSecond)}bit/s, ${io} I/O`,
    );
  });
  const stopProgress = startProgress(stderr, !flags.quiet && isTerminal(stderr), () => progressLine(sender.stats));
  // After END the sender waits for repair requests; once no subscriber is connected any more
  // (each closes its control connection when its output is complete) there is nobody to wait for.
  let subscribersDone: NodeJS.Timeout | null = null;
  if (control !== null) {
    const server = control.server;
    control.attachSender(sender);
    subscribersDone = setInterval(() => {
      if (sender.stats.sha256 !== null && server.connectionCount() === 0) sender.finishRepairs();
    }, SUBSCRIBERS_DONE_POLL_MS);
  }
  let stats: SendStats | null = null;
  let failure: unknown = null;
  // A sender blocked on a quiet stdin would never see the signal, so stopping ends the input.
  const stopInput = () => input.destroy(new SealcastError('E_CLOSED', 'sending was stopped'));
  context.io.signal.addEventListener('abort', stopInput, { once: true });
  try {
    stats = await sender.send(input);
  } catch (error) {
    failure = error;
  } finally {
    context.io.signal.removeEventListener('abort', stopInput);
    if (subscribersDone !== null) clearInterval(subscribersDone);
    stopProgress();
    packetKey.destroy();
    await pool?.close();
    input.destroy();
    await control?.close();
  }
  const final = stats ?? sender.stats;
  if (!flags.quiet && failure === null) {
    writeLine(stderr, `sealcast send: sent ${formatBytes(final.bytes)} in ${final.dataPackets} packets (${(final.durationMs / 1000).toFixed(2)} s, ${megabytesPerSecond(final.bytes, final.durationMs)} MB/s), sha256 ${final.sha256}`);
  }
  if (flags.json) {
    writeJsonSummary(stderr, {
      command: 'send',
      ...exitFields(failure, 0, 'ok'),
      sessionId: final.sessionId,
      suite: final.suite,
      backend: final.backend,
      bytes: final.bytes,
      packets: final.dataPackets,
      datagrams: final.datagramsSent,
      datagramBytes: final.datagramBytes,
      rateBitsPerSecond: final.rateBitsPerSecond,
      durationMs: Math.round(final.durationMs),
      megabytesPerSecond: megabytesPerSecond(final.bytes, final.durationMs),
      sha256: final.sha256,
      io: final.io,
      repairRequests: final.repairRequests,
      repairDatagrams: final.repairDatagramsSent,
      repairUnavailableBytes: final.repairUnavailableBytes,
      slowDownReports: final.slowDownReports,
      flowWaitMs: Math.round(final.flowWaitMs),
      rateBitsPerSecondLowest: final.rateBitsPerSecondLowest,
    });
  }
  if (failure !== null) throw failure;
  return 0;
}

/** Exactly one of --key-file and --control; the control options only with --control. */
function requireOneKeyMode(flags: SendFlags): void {
  if ((flags.keyFile === undefined) === (flags.control === undefined)) {
    throw new SealcastError('E_ARG', 'give exactly one of --key-file FILE (group key) and --control HOST:PORT --db PATH (per-subscriber keys)');
  }
  if (flags.control !== undefined && flags.db === undefined) throw new SealcastError('E_ARG', '--control needs --db PATH (the subscriber registry)');
  if (flags.control === undefined && (flags.db !== undefined || flags.waitFor !== undefined || flags.waitTimeout !== undefined || flags.serverKey !== undefined || flags.repairWindow !== undefined || flags.controlTransport !== undefined)) {
    throw new SealcastError('E_ARG', '--db, --wait-for, --wait-timeout, --server-key, --repair-window and --control-transport only apply with --control');
  }
}

/** What the sender reads: a file, a FIFO or stdin, stopped with destroy(). */
type InputSource = AsyncIterable<Uint8Array> & { destroy(error?: Error): void };

/**
 * Opens the input before anything is sent, so an unreadable file fails with E_IO up front. A
 * regular file is read into two reused buffers (FileSource); a FIFO or device, whose reads may
 * wait for a writer, through a ReadStream.
 */
async function openInput(file: string | undefined, stdin: Readable): Promise<InputSource> {
  if (file === undefined || file === '-') return stdin;
  let fd: number | undefined;
  let regular: boolean;
  try {
    fd = await new Promise<number>((resolve, reject) => open(file, 'r', (error, opened) => (error ? reject(error) : resolve(opened))));
    const info = fstatSync(fd);
    if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    regular = info.isFile();
  } catch (error) {
    if (fd !== undefined) close(fd, () => {});
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new SealcastError('E_IO', `cannot read ${file}: ${code}`, { cause: error });
  }
  return regular ? new FileSource(fd) : createReadStream(file, { fd, highWaterMark: INPUT_READ_BYTES, autoClose: true });
}

function progressLine(stats: SendStats): string {
  return `sent ${formatBytes(stats.bytes)}, ${stats.dataPackets} packets, ${megabytesPerSecond(stats.bytes, stats.durationMs)} MB/s`;
}
