// The control server: accepts TCP connections from receivers, runs the registration protocol
// (docs/control-protocol.md), and delivers each registered client the current epoch's key
// bundle wrapped under that client's own key. It never lets one connection hurt another: every
// frame and message is checked before use, a bad one closes only that connection with a logged
// reason, a connection that does not finish its registration within the handshake deadline is
// closed, and the number of connections is bounded. Each connection's state machine is in
// server-connection.ts; this file holds the transport, the per-wake-up batches (lookups, key
// derivation, proof checks, key wraps) and the server's API.

import { EventEmitter } from 'node:events';
import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';
import { isWireSuiteName } from '../crypto/backend.js';
import { SESSION_ID_BYTES } from '../keys/kdf.js';
import { deriveClientKeysBatch } from './client-keys.js';
import type { ServerIdentity } from '../keys/identity.js';
import { Registry, type RegistrationLookup } from '../store/registry.js';
import { FRAME_BYTES_MAX_DEFAULT, requireFrameBytesMax } from './frames.js';
import { messageJsonText } from './messages.js';
import { ServerConnection } from './server-connection.js';
import { silentLogger, type ControlLogger } from './logger.js';
import { CONTROL_TRANSPORT_MODES, type ControlLink, type ControlTransport, type ControlTransportMode, type LinkEvents, type TransportOptions } from './link.js';
import { startNetTransport } from './net-transport.js';
import { startNativeTransport } from './native-transport.js';
import { wrapKeyBundles, type EpochKeyBundle, type WrapTarget } from './key-wrap.js';
import type { SessionParams, StreamRange } from './messages.js';
import { verifyClientProofs } from './transcript.js';
import {
  BatchSigner,
  SIGN_BATCH_LEAVES_MAX_DEFAULT,
  SIGN_BATCH_WINDOW_MS_DEFAULT,
  type BatchSignerStats,
} from './batch-signer.js';

export const HANDSHAKE_TIMEOUT_MS_DEFAULT = 10_000;
export const CONNECTIONS_MAX_DEFAULT = 4096;
/** A client whose unread output grows past this is not reading: it is disconnected. */
export const PENDING_OUTPUT_BYTES_MAX = 256 * 1024;
/**
 * Refused connections that may be draining their 'busy' message at once: the transport holds at
 * most connectionsMax + this many, and closes any connection past that unheard.
 */
const REFUSED_DRAINING_MAX = 64;
const LISTEN_BACKLOG = 4096;
/** The most hellos (and, apart, proofs) handled in one batch; more wait for the next one. */
const REGISTRATION_BATCH_MAX = 1024;
export const POLL_COALESCE_MS_DEFAULT = 2;
const POLL_COALESCE_MS_MAX = 100;
/**
 * Handshake deadlines are checked by one shared sweep rather than a timer per connection (a
 * timer per connection costs two timer-list operations per registration). A connection is closed
 * between its deadline and its deadline plus one sweep interval.
 */
const HANDSHAKE_SWEEP_MS_MIN = 10;
const HANDSHAKE_SWEEP_MS_MAX = 1000;


export type { ControlLogger } from './logger.js';
export { CONTROL_TRANSPORT_MODES, type ControlTransportMode } from './link.js';

export { silentLogger } from './logger.js';

export interface ControlSessionOptions {
  sessionId: Uint8Array;
  group: string;
  port: number;
  suite: string;
  packetBytes: number;
}

export interface ControlServerOptions {
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** An open registry; or `dbPath` to open (and on close, close) one. */
  registry?: Registry;
  dbPath?: string;
  identity: ServerIdentity;
  session: ControlSessionOptions;
  /**
   * The key bundle of the current epoch. Called at every registration and by pushEpoch(). The
   * keys stay the caller's: the server only reads them to wrap.
   */
  currentEpoch(): EpochKeyBundle;
  logger?: ControlLogger;
  handshakeTimeoutMs?: number;
  connectionsMax?: number;
  frameBytesMax?: number;
  /**
   * How connections are carried: 'native' (the addon's epoll listener, Linux, numeric address),
   * 'net' (node:net), or 'auto' (the default: native when it can be used, else net).
   */
  transport?: ControlTransportMode;
  /**
   * Native transport: after a wake-up that found messages, how long to wait before looking again
   * (ms, 0 to 100; default POLL_COALESCE_MS_DEFAULT). Under load one wake-up then carries many
   * connections' messages, at the price of up to this much added latency per message.
   */
  pollCoalesceMs?: number;
  /**
   * Most registration transcripts signed under one Ed25519 signature (a Merkle batch,
   * batch-signer.ts); default 256, at most 4096. 1 signs every registration on its own.
   */
  signBatchLeavesMax?: number;
  /**
   * While registrations keep arriving, how long transcripts are collected before they are signed
   * together (ms, 0 to 100; default 2). An idle server signs a lone registration at once.
   */
  signBatchWindowMs?: number;
  /**
   * Loss repair: a registered client is missing these bytes of the stream (validated: ascending,
   * disjoint). Returns the bytes that can no longer be repaired; the client is told so in a
   * `repair` message. Without it every requested range is answered as unavailable.
   */
  onRepairRequest?(clientId: string, ranges: StreamRange[]): StreamRange[];
  /** How far the stream has come (bytes sent), told to each client as it registers; default 0. */
  streamOffset?(): number;
  /** A registered client cannot keep up and asks the sender to lower its rate (`slowDown`). */
  onSlowDown?(clientId: string): void;
  /** A registered client has taken the stream in up to `offset` (`progress`, flow control). */
  onProgress?(clientId: string, offset: number): void;
  /** A registered client's connection ended: it no longer takes part in flow control. */
  onClientGone?(clientId: string): void;
}

export interface KeyHolder {
  clientId: string;
  /** The latest epoch whose key the client confirmed (keyAck). */
  epoch: number;
  remoteAddress: string;
}

export interface ControlServer {
  /** Where the server listens (the port is the real one when 0 was asked for). */
  readonly address: { host: string; port: number };
  readonly fingerprint: string;
  /** Which transport carries the connections ('native' or 'net'). */
  readonly transport: 'native' | 'net';
  /** Registered clients that have confirmed holding a key. */
  holders(): KeyHolder[];
  /** Resolves once at least `count` clients hold a key; E_TIMEOUT after `timeoutMs`. */
  waitForHolders(count: number, timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /**
   * Wraps the bundle (default: currentEpoch()) for every registered client and sends it: the
   * rotation path. Each client's registry entry is checked first: one removed since it
   * registered gets no new key and is disconnected. Returns the number of clients it was sent to.
   */
  pushEpoch(bundle?: EpochKeyBundle): number;
  connectionCount(): number;
  /** Signatures made and transcripts they covered, for benchmarks and monitoring. */
  signatureStats(): BatchSignerStats;
  close(): Promise<void>;
  on(event: 'holder', listener: (holder: KeyHolder) => void): this;
  on(event: 'registered', listener: (clientId: string) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
}



interface Waiter {
  count: number;
  resolve(): void;
  reject(error: Error): void;
}

function validateSession(session: ControlSessionOptions): SessionParams {
  requireUint8Array(session.sessionId, 'session.sessionId');
  if (session.sessionId.byteLength !== SESSION_ID_BYTES) {
    throw new RangeError(`session.sessionId must be ${SESSION_ID_BYTES} bytes, got ${session.sessionId.byteLength}`);
  }
  if (!isWireSuiteName(session.suite)) throw new TypeError(`session.suite must be a wire suite, got ${String(session.suite)}`);
  if (!Number.isInteger(session.port) || session.port < 1 || session.port > 65535) {
    throw new RangeError(`session.port must be between 1 and 65535, got ${session.port}`);
  }
  if (!Number.isInteger(session.packetBytes) || session.packetBytes < 64 || session.packetBytes > 65507) {
    throw new RangeError(`session.packetBytes must be between 64 and 65507, got ${session.packetBytes}`);
  }
  if (typeof session.group !== 'string' || session.group.length === 0) throw new TypeError('session.group must be an address string');
  // Frozen: the session is sent in every challenge, and messages.ts keeps the JSON text of a
  // frozen session instead of stringifying it each time.
  return Object.freeze({
    sessionId: Buffer.from(session.sessionId),
    group: session.group,
    port: session.port,
    suite: session.suite,
    packetBytes: session.packetBytes,
  });
}

function requireTransportMode(value: ControlTransportMode): ControlTransportMode {
  if (!CONTROL_TRANSPORT_MODES.includes(value)) {
    throw new RangeError(`transport must be one of ${CONTROL_TRANSPORT_MODES.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function requirePositiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

class ControlServerImpl extends EventEmitter implements ControlServer {
  address = { host: '', port: 0 };
  readonly fingerprint: string;
  private carrier: ControlTransport | null = null;
  readonly registry: Registry;
  readonly ownsRegistry: boolean;
  readonly identity: ServerIdentity;
  readonly session: SessionParams;
  readonly currentEpoch: () => EpochKeyBundle;
  readonly onRepairRequest: (clientId: string, ranges: StreamRange[]) => StreamRange[];
  readonly streamOffset: () => number;
  readonly onSlowDown: (clientId: string) => void;
  readonly onProgress: (clientId: string, offset: number) => void;
  readonly onClientGone: (clientId: string) => void;
  readonly logger: ControlLogger;
  readonly handshakeTimeoutMs: number;
  readonly connectionsMax: number;
  readonly frameBytesMax: number;
  readonly transportMode: ControlTransportMode;
  readonly pollCoalesceMs: number;
  readonly connections = new Set<ServerConnection>();
  readonly signer: BatchSigner;
  /** Connections still registering, oldest first, with their deadlines (performance.now() ms). */
  private readonly handshakes = new Map<ServerConnection, number>();
  private handshakeSweep: NodeJS.Timeout | null = null;
  private readonly handshakeSweepMs: number;
  /**
   * False when info lines go nowhere: the per-registration info lines are then not even built,
   * because naming the peer costs a getpeername system call per connection.
   */
  readonly logsInfo: boolean;
  readonly registered = new Map<string, ServerConnection>();
  /** Registered connections that confirmed a key (ackedEpoch >= 0), kept as a count for waitForHolders. */
  heldCount = 0;
  private waiters = new Set<Waiter>();
  private readonly helloQueue: ServerConnection[] = [];
  private readonly proofQueue: ServerConnection[] = [];
  private batchesScheduled = false;
  private closing: Promise<void> | null = null;

  constructor(options: ControlServerOptions) {
    super();
    this.identity = options.identity;
    this.fingerprint = options.identity.fingerprint;
    this.session = validateSession(options.session);
    if (typeof options.currentEpoch !== 'function') throw new TypeError('currentEpoch must be a function');
    this.currentEpoch = options.currentEpoch;
    if (options.onRepairRequest !== undefined && typeof options.onRepairRequest !== 'function') throw new TypeError('onRepairRequest must be a function');
    this.onRepairRequest = options.onRepairRequest ?? ((_clientId, ranges) => ranges);
    if (options.streamOffset !== undefined && typeof options.streamOffset !== 'function') throw new TypeError('streamOffset must be a function');
    this.streamOffset = options.streamOffset ?? (() => 0);
    if (options.onSlowDown !== undefined && typeof options.onSlowDown !== 'function') throw new TypeError('onSlowDown must be a function');
    this.onSlowDown = options.onSlowDown ?? (() => {});
    for (const name of ['onProgress', 'onClientGone'] as const) {
      if (options[name] !== undefined && typeof options[name] !== 'function') throw new TypeError(`${name} must be a function`);
    }
    this.onProgress = options.onProgress ?? (() => {});
    this.onClientGone = options.onClientGone ?? (() => {});
    this.logger = options.logger ?? silentLogger;
    this.logsInfo = this.logger.info !== silentLogger.info;
    this.handshakeTimeoutMs = requirePositiveInteger(options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS_DEFAULT, 'handshakeTimeoutMs');
    this.handshakeSweepMs = Math.min(HANDSHAKE_SWEEP_MS_MAX, Math.max(HANDSHAKE_SWEEP_MS_MIN, Math.ceil(this.handshakeTimeoutMs / 10)));
    this.connectionsMax = requirePositiveInteger(options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT, 'connectionsMax');
    this.frameBytesMax = requireFrameBytesMax(options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT);
    this.transportMode = requireTransportMode(options.transport ?? 'auto');
    this.pollCoalesceMs = options.pollCoalesceMs ?? POLL_COALESCE_MS_DEFAULT;
    if (!Number.isInteger(this.pollCoalesceMs) || this.pollCoalesceMs < 0 || this.pollCoalesceMs > POLL_COALESCE_MS_MAX) {
      throw new RangeError(`pollCoalesceMs must be an integer between 0 and ${POLL_COALESCE_MS_MAX}, got ${this.pollCoalesceMs}`);
    }
    // Before the registry is opened, so that a bad bound leaves nothing open.
    this.signer = new BatchSigner(
      (data) => this.identity.sign(data),
      options.signBatchLeavesMax ?? SIGN_BATCH_LEAVES_MAX_DEFAULT,
      options.signBatchWindowMs ?? SIGN_BATCH_WINDOW_MS_DEFAULT,
    );
    if (options.registry) {
      this.registry = options.registry;
      this.ownsRegistry = false;
    } else if (options.dbPath) {
      this.registry = Registry.open(options.dbPath);
      this.ownsRegistry = true;
    } else {
      throw new TypeError('startControlServer needs a registry or a dbPath');
    }
  }

  get transport(): 'native' | 'net' {
    return this.carrier?.name ?? 'net';
  }

  async listen(host: string, port: number): Promise<void> {
    const options: TransportOptions = {
      host,
      port,
      backlog: LISTEN_BACKLOG,
      linksMax: this.connectionsMax + REFUSED_DRAINING_MAX,
      frameBytesMax: this.frameBytesMax,
      pendingBytesMax: PENDING_OUTPUT_BYTES_MAX,
      coalesceMs: this.pollCoalesceMs,
      warn: (message) => this.logger.warn(message),
    };
    const accept = (link: ControlLink) => this.accept(link);
    if (this.transportMode !== 'net') {
      const native = startNativeTransport(options, accept);
      if (typeof native !== 'string') this.carrier = native;
      else if (this.transportMode === 'native') {
        throw new SealcastError('E_IO', `the native control transport is unavailable: ${native} (use transport 'net', or --control-transport net on the command line)`);
      }
    }
    this.carrier ??= await startNetTransport(options, accept);
    this.address = { ...this.carrier.address };
  }

  private accept(link: ControlLink): LinkEvents | null {
    if (this.closing) {
      link.destroy();
      return null;
    }
    if (this.connections.size >= this.connectionsMax) {
      // A refused connection is told why and closed within the transport's flush bound; the
      // transport bounds how many may drain that message at once and drops the rest unheard.
      this.logger.warn(`control: refused ${link.remote}: ${this.connectionsMax} connections already open`);
      link.sendText(messageJsonText({ type: 'error', v: 1, reason: 'busy', text: 'the control server has too many connections; try again later' }));
      link.end();
      return null;
    }
    const connection = new ServerConnection(this, link);
    this.connections.add(connection);
    return connection;
  }

  holders(): KeyHolder[] {
    const holders: KeyHolder[] = [];
    for (const connection of this.registered.values()) {
      if (connection.ackedEpoch >= 0) holders.push({ clientId: connection.clientId, epoch: connection.ackedEpoch, remoteAddress: connection.remote });
    }
    return holders;
  }

  holderCount(): number {
    return this.heldCount;
  }

  waitForHolders(count: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    requirePositiveInteger(count, 'count');
    requirePositiveInteger(timeoutMs, 'timeoutMs');
    if (this.holderCount() >= count) return Promise.resolve();
    if (this.closing) return Promise.reject(new SealcastError('E_CLOSED', 'the control server is closed'));
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiters.delete(waiter);
        if (error) reject(error);
        else resolve();
      };
      const waiter: Waiter = { count, resolve: () => finish(), reject: (error) => finish(error) };
      const timer = setTimeout(() => {
        finish(new SealcastError('E_TIMEOUT', `only ${this.holderCount()} of ${count} subscribers held the key after ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const onAbort = () => finish(new SealcastError('E_CLOSED', 'stopped while waiting for subscribers'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
      if (signal?.aborted) onAbort();
    });
  }

  notifyHolder(connection: ServerConnection): void {
    // The peer's address costs a system call: it is looked up only for someone who listens.
    if (this.listenerCount('holder') > 0) {
      this.emit('holder', { clientId: connection.clientId, epoch: connection.ackedEpoch, remoteAddress: connection.remote });
    }
    if (this.waiters.size === 0) return;
    const count = this.holderCount();
    for (const waiter of [...this.waiters]) if (count >= waiter.count) waiter.resolve();
  }

  pushEpoch(bundle: EpochKeyBundle = this.currentEpoch()): number {
    const active: ServerConnection[] = [];
    for (const connection of [...this.registered.values()]) {
      const status = this.registry.statusOf(connection.clientId);
      if (status !== 'active') {
        connection.close('removed-client', `subscriber "${connection.clientId}" was removed; no key for epoch ${bundle.epoch}`, 'info');
        continue;
      }
      active.push(connection);
    }
    return this.deliverAll(active, bundle, 'key');
  }

  /** Wraps `bundle` for each connection that still lacks it, in one batch, and sends it. */
  deliverAll(connections: readonly ServerConnection[], bundle: EpochKeyBundle, type: 'welcome' | 'key'): number {
    const receivers: ServerConnection[] = [];
    const targets: WrapTarget[] = [];
    for (const connection of connections) {
      const target = connection.wrapTarget(bundle.epoch);
      if (target === null) continue;
      receivers.push(connection);
      targets.push(target);
    }
    const keys = wrapKeyBundles(targets, bundle);
    for (let index = 0; index < receivers.length; index++) receivers[index].delivered(keys[index], type);
    return receivers.length;
  }

  /** Hellos wait here for one batch that looks them up and derives their keys together. */
  queueHello(connection: ServerConnection): void {
    this.helloQueue.push(connection);
    this.scheduleBatches();
  }

  /** Proofs wait here for one batch check. */
  queueProof(connection: ServerConnection): void {
    this.proofQueue.push(connection);
    this.scheduleBatches();
  }

  private scheduleBatches(): void {
    if (this.batchesScheduled) return;
    this.batchesScheduled = true;
    // After the current event batch (everything one wake-up brought) has been read.
    queueMicrotask(() => this.runBatches());
  }

  private runBatches(): void {
    this.batchesScheduled = false;
    const hellos = this.helloQueue.splice(0, REGISTRATION_BATCH_MAX);
    const proofs = this.proofQueue.splice(0, REGISTRATION_BATCH_MAX);
    if (this.helloQueue.length > 0 || this.proofQueue.length > 0) this.scheduleBatches();
    this.runHelloBatch(hellos);
    this.runProofBatch(proofs);
  }

  private runHelloBatch(queued: readonly ServerConnection[]): void {
    const waiting = queued.filter((connection) => connection.state === 'keying');
    let found: RegistrationLookup[];
    try {
      found = this.registry.lookupManyForRegistration(waiting.map((connection) => connection.clientId));
    } catch (error) {
      for (const connection of waiting) connection.close('protocol', `internal error: ${(error as Error).message}`, 'warn');
      return;
    }
    const connections: ServerConnection[] = [];
    const inputs: Array<{ psk: Buffer; clientId: string }> = [];
    for (let index = 0; index < waiting.length; index++) {
      const psk = waiting[index].lookedUp(found[index]);
      if (psk === null) continue;
      connections.push(waiting[index]);
      inputs.push({ psk, clientId: waiting[index].clientId });
    }
    if (connections.length === 0) return;
    let derived: Array<{ macKey: Buffer; wrapKey: Buffer }>;
    try {
      derived = deriveClientKeysBatch(inputs, this.session.sessionId);
    } catch (error) {
      for (const connection of connections) connection.close('protocol', `internal error: ${(error as Error).message}`, 'warn');
      return;
    } finally {
      for (const input of inputs) input.psk.fill(0);
    }
    for (let index = 0; index < connections.length; index++) {
      const connection = connections[index];
      if (connection.state !== 'keying') {
        derived[index].macKey.fill(0);
        derived[index].wrapKey.fill(0);
        continue;
      }
      try {
        connection.keyed(derived[index]);
      } catch (error) {
        connection.close('protocol', `internal error: ${(error as Error).message}`, 'warn');
      }
    }
  }

  private runProofBatch(queued: readonly ServerConnection[]): void {
    const connections = queued.filter((connection) => connection.state === 'checking');
    if (connections.length === 0) return;
    const welcomed: ServerConnection[] = [];
    try {
      const verdicts = verifyClientProofs(connections.map((connection) => connection.proofToCheck()));
      for (let index = 0; index < connections.length; index++) {
        if (connections[index].proofChecked(verdicts[index])) welcomed.push(connections[index]);
      }
      this.deliverAll(welcomed, this.currentEpoch(), 'welcome');
    } catch (error) {
      // A failure here (a bad epoch bundle, a registry error) is the server's, not a client's; it
      // ends only the connections of this batch.
      for (const connection of connections) connection.close('protocol', `internal error: ${(error as Error).message}`, 'warn');
      return;
    }
    for (const connection of welcomed) if (connection.state === 'registered') this.emit('registered', connection.clientId);
  }

  connectionCount(): number {
    return this.connections.size;
  }

  /** Starts the handshake deadline of a new connection. */
  startHandshake(connection: ServerConnection): void {
    this.handshakes.set(connection, performance.now() + this.handshakeTimeoutMs);
    if (this.handshakeSweep === null) {
      this.handshakeSweep = setInterval(() => this.sweepHandshakes(), this.handshakeSweepMs);
      this.handshakeSweep.unref();
    }
  }

  endHandshake(connection: ServerConnection): void {
    this.handshakes.delete(connection);
  }

  private sweepHandshakes(): void {
    const now = performance.now();
    // Every connection gets the same timeout, so insertion order is deadline order: the sweep
    // stops at the first connection whose deadline has not passed.
    for (const [connection, deadline] of this.handshakes) {
      if (deadline > now) break;
      this.handshakes.delete(connection);
      connection.close('timeout', `registration not completed within ${this.handshakeTimeoutMs} ms`, 'warn');
    }
    if (this.handshakes.size === 0 && this.handshakeSweep !== null) {
      clearInterval(this.handshakeSweep);
      this.handshakeSweep = null;
    }
  }

  signatureStats(): BatchSignerStats {
    return { ...this.signer.stats };
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      for (const connection of [...this.connections]) connection.close('shutdown', 'the control server is shutting down', 'info', true);
      if (this.carrier === null) resolve();
      else void this.carrier.close().then(resolve);
      this.signer.close();
      if (this.handshakeSweep !== null) clearInterval(this.handshakeSweep);
      this.handshakeSweep = null;
      for (const waiter of [...this.waiters]) waiter.reject(new SealcastError('E_CLOSED', 'the control server closed while waiting for subscribers'));
    }).then(() => {
      if (this.ownsRegistry) this.registry.close();
    });
    return this.closing;
  }
}

/** Starts a control server and resolves once it listens. */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const server = new ControlServerImpl(options);
  try {
    await server.listen(options.host ?? '127.0.0.1', options.port ?? 0);
  } catch (error) {
    if (server.ownsRegistry) server.registry.close();
    throw error;
  }
  return server;
}
