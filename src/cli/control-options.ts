// The control-plane half of `send` and `recv`: flag parsing and the glue that runs a control
// server beside the sender, or registers a receiver and feeds its key ring. send.ts and recv.ts
// call these so that they stay about the data plane.

import type { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { CryptoBackend, WireSuiteName } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { ControlClient } from '../control/client.js';
import type { ControlKeyRing } from '../control/key-ring.js';
import { DATA_KEY_BYTES } from '../control/messages.js';
import type { ControlLogger } from '../control/logger.js';
import type { ControlServer } from '../control/server.js';
import { CONTROL_TRANSPORT_MODES, type ControlTransportMode } from '../control/link.js';
import type { ByteRange } from '../pipeline/reorder.js';
import { defaultServerKeyPath, loadOrCreateIdentity, parseFingerprint } from '../keys/identity.js';
import { readPskFile } from '../keys/psk.js';
import type { MulticastGroup } from '../pipeline/multicast.js';
import { writeLine } from './io.js';
import { parseInteger } from './options.js';

export interface HostPort {
  host: string;
  port: number;
}

/** "HOST:PORT" or "[v6]:PORT" for --control and --server; port 0 (any free port) only to listen. */
export function parseHostPort(text: string, flag: string, allowAnyPort = false): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (match === null || port < (allowAnyPort ? 0 : 1) || port > 65535) {
    throw new SealcastError('E_ARG', `${flag} must be HOST:PORT like 127.0.0.1:7000, got "${text}"`);
  }
  return { host: match[1] ?? match[2], port };
}

export function parseWaitFor(text: string): number {
  return parseInteger(text, '--wait-for', 1, 1_000_000);
}

export function parseFingerprintFlag(text: string): string {
  return parseFingerprint(text);
}

function stderrLogger(stderr: Writable, prefix: string, quiet: boolean): ControlLogger {
  return {
    info: (message) => {
      if (!quiet) writeLine(stderr, `${prefix}: ${message}`);
    },
    warn: (message) => writeLine(stderr, `${prefix}: warning: ${message}`),
  };
}

export interface SenderControlFlags {
  control: HostPort;
  db: string;
  serverKey?: string;
  waitFor?: number;
  /** Milliseconds. */
  waitTimeout: number;
  controlTransport?: ControlTransportMode;
}

/** What the control server needs of the Sender (src/pipeline/sender.ts). */
export interface SenderDataPlane {
  requestRepair(ranges: ByteRange[]): ByteRange[];
  reportSlowReceiver(): void;
  reportProgress(receiver: string, offset: number): void;
  forgetReceiver(receiver: string): void;
  readonly stats: { readonly bytes: number };
}

export interface SenderControl {
  server: ControlServer;
  /** The epoch-0 data key the packet key is derived from; zeroed by close(). */
  dataKey: Buffer;
  /**
   * Connects the subscribers' repair requests and slow-down reports, and the stream offset told
   * to each as it registers, to the Sender once it exists. Until then nothing was sent: requests
   * are ignored and the offset is 0.
   */
  attachSender(sender: SenderDataPlane): void;
  close(): Promise<void>;
}

/**
 * Starts the control server for a send: a fresh data key for epoch 0, the server's long-term key
 * (created on first use; its fingerprint printed for the receivers), and, with --wait-for, a wait
 * until that many subscribers hold the key.
 */
export const CONTROL_TRANSPORT_ENV = 'SEALCAST_CONTROL_TRANSPORT';

/** --control-transport (or SEALCAST_CONTROL_TRANSPORT): auto, native or net. */
export function parseControlTransport(value: string, name: string): ControlTransportMode {
  if ((CONTROL_TRANSPORT_MODES as readonly string[]).includes(value)) return value as ControlTransportMode;
  throw new SealcastError('E_ARG', `${name} must be one of ${CONTROL_TRANSPORT_MODES.join(', ')}, got "${value}"`);
}

export async function startSenderControl(
  flags: SenderControlFlags,
  session: { sessionId: Uint8Array; group: MulticastGroup; suite: WireSuiteName; packetBytes: number },
  io: { stderr: Writable; quiet: boolean; signal: AbortSignal; env: NodeJS.ProcessEnv },
): Promise<SenderControl> {
  const keyPath = flags.serverKey ?? defaultServerKeyPath(io.env);
  const identity = loadOrCreateIdentity(keyPath);
  if (identity.created) writeLine(io.stderr, `sealcast send: created the server key ${keyPath} (mode 0600)`);
  const dataKey = randomBytes(DATA_KEY_BYTES);
  let sender: SenderDataPlane | null = null;
  let server: ControlServer;
  try {
    // Loaded here, not at start-up: the control plane (and SQLite) cost every command's start,
    // also the group-key runs that never use them.
    const { startControlServer } = await import('../control/server.js');
    server = await startControlServer({
      host: flags.control.host,
      port: flags.control.port,
      transport: flags.controlTransport ?? (io.env[CONTROL_TRANSPORT_ENV] ? parseControlTransport(io.env[CONTROL_TRANSPORT_ENV], CONTROL_TRANSPORT_ENV) : 'auto'),
      dbPath: flags.db,
      identity,
      session: { sessionId: session.sessionId, group: session.group.address, port: session.group.port, suite: session.suite, packetBytes: session.packetBytes },
      currentEpoch: () => ({ epoch: 0, dataKey }),
      onRepairRequest: (_clientId, ranges) => sender?.requestRepair(ranges) ?? [],
      onSlowDown: () => sender?.reportSlowReceiver(),
      onProgress: (clientId, offset) => sender?.reportProgress(clientId, offset),
      onClientGone: (clientId) => sender?.forgetReceiver(clientId),
      streamOffset: () => sender?.stats.bytes ?? 0,
      logger: stderrLogger(io.stderr, 'sealcast send', io.quiet),
    });
  } catch (error) {
    dataKey.fill(0);
    throw error;
  }
  // The fingerprint is printed even with --quiet: receivers need it to pin the server.
  writeLine(io.stderr, `sealcast send: control server on ${server.address.host}:${server.address.port}, fingerprint ${server.fingerprint}`);
  const close = async () => {
    await server.close();
    dataKey.fill(0);
  };
  if (flags.waitFor !== undefined) {
    if (!io.quiet) writeLine(io.stderr, `sealcast send: waiting for ${flags.waitFor} subscriber(s) to hold the key (up to ${flags.waitTimeout / 1000} s)`);
    try {
      await server.waitForHolders(flags.waitFor, flags.waitTimeout, io.signal);
    } catch (error) {
      await close();
      throw error;
    }
  }
  return {
    server,
    dataKey,
    attachSender: (dataPlane) => {
      sender = dataPlane;
    },
    close,
  };
}

export interface ReceiverControlFlags {
  server: HostPort;
  id: string;
  pskFile: string;
  serverFingerprint?: string;
  knownServers?: string;
}

export interface ReceiverControl {
  client: ControlClient;
  ring: ControlKeyRing;
  group: MulticastGroup;
  /** Asks the sender for missing stream bytes (ignored once the connection has ended). */
  requestRepair(ranges: ByteRange[]): void;
  /** Tells the server this receiver holds the key and listens (what the sender's --wait-for counts). */
  ready(): void;
  close(): void;
}

/**
 * Registers with the sender's control server and returns the session's group and a key ring
 * that follows the epochs the server delivers. Fails with E_AUTH before anything is written
 * when the id is unknown or removed, the PSK is wrong, or the server is not the expected one.
 */
export async function connectReceiverControl(
  flags: ReceiverControlFlags,
  backend: CryptoBackend,
  io: { stderr: Writable; quiet: boolean; signal: AbortSignal; env: NodeJS.ProcessEnv },
): Promise<ReceiverControl> {
  // Loaded here, not at start-up (group-key runs never need them), and before registering, so
  // that nothing the server sends can arrive while a module is still loading.
  const [{ registerWithServer }, { ControlKeyRing }] = await Promise.all([import('../control/client.js'), import('../control/key-ring.js')]);
  const psk = readPskFile(flags.pskFile);
  let client: ControlClient;
  try {
    client = await registerWithServer({
      host: flags.server.host,
      port: flags.server.port,
      clientId: flags.id,
      psk,
      pinnedFingerprint: flags.serverFingerprint,
      knownServersFile: flags.knownServers,
      env: io.env,
      logger: stderrLogger(io.stderr, 'sealcast recv', io.quiet),
      signal: io.signal,
      deferInitialAck: true,
    });
  } finally {
    psk.fill(0);
  }
  const { session } = client;
  if (!backend.suites.includes(session.suite)) {
    client.close();
    client.initialKey.dataKey.fill(0);
    client.initialKey.updateKey?.fill(0);
    throw new SealcastError('E_BACKEND', `the session uses ${session.suite}, which the ${backend.name} backend lacks; build the native addon`);
  }
  const ring = new ControlKeyRing(backend, session.sessionId);
  ring.add(client.initialKey);
  client.on('key', (key) => ring.add(key));
  let finished = false;
  client.on('close', (error) => {
    // The data plane does not need the control connection to finish a stream it holds keys for.
    if (error && !finished) writeLine(io.stderr, `sealcast recv: warning: control connection ended: ${error.message}`);
  });
  if (!io.quiet) {
    writeLine(io.stderr, `sealcast recv: registered as ${flags.id} with ${flags.server.host}:${flags.server.port} (${client.serverFingerprint}, ${client.serverTrust}); epoch ${client.initialKey.epoch}`);
  }
  return {
    client,
    ring,
    group: { address: session.group, port: session.port },
    requestRepair: (ranges) => {
      client.requestRepair(ranges);
    },
    ready: () => client.acknowledgeKey(),
    close() {
      finished = true;
      client.close();
      ring.destroy();
    },
  };
}
