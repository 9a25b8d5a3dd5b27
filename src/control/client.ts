// The control client: connects to a control server, checks the server's identity (pinned
// fingerprint, or trust on first use through the known-servers file), proves possession of its
// pre-shared key, and unwraps the key bundle of the current epoch. It then stays connected and
// emits 'key' for each new epoch the server pushes.
//
// Keys handed out (the bundle in the result, and each one emitted with 'key') belong to whoever
// receives them and must be zeroed by them. The client zeroes its own derived keys on close; it
// never copies or keeps the caller's PSK.

import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { SealcastError, type ErrorCode } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';
import { deriveClientKeys } from './client-keys.js';
import { fingerprintOf, parseFingerprint, verifyServerSignature } from '../keys/identity.js';
import { checkKnownServer, defaultKnownServersPath, serverAddressKey } from '../keys/known-servers.js';
import { FRAME_BYTES_MAX_DEFAULT, requireFrameBytesMax } from './frames.js';
import { attachFrameDecoder, writeMessage } from './framed-socket.js';
import { unwrapKeyBundle } from './key-wrap.js';
import {
  CLIENT_NONCE_BYTES,
  decodeServerMessage,
  isValidClientId,
  type ChallengeMessage,
  type ClientMessage,
  type ErrorMessage,
  type ServerMessage,
  type SessionParams,
  type StreamRange,
  type WrappedKey,
  REPAIR_RANGES_MAX,
  STREAM_OFFSET_MAX,
} from './messages.js';
import { clientProofMac, registrationTranscript } from './transcript.js';
import { batchRootSignatureInput, merkleLeaf, merkleRootFromPath } from './merkle.js';
import { silentLogger, type ControlLogger } from './logger.js';

export const REGISTER_TIMEOUT_MS_DEFAULT = 10_000;

export interface RegisterOptions {
  host: string;
  port: number;
  clientId: string;
  /** The client's 32-byte pre-shared key; read, never copied or kept. */
  psk: Uint8Array;
  /** Expected server fingerprint (SHA256:...). Without it, the known-servers file decides. */
  pinnedFingerprint?: string;
  /** Trust-on-first-use file; default $XDG_CONFIG_HOME/sealcast/known_servers. */
  knownServersFile?: string;
  env?: NodeJS.ProcessEnv;
  /** Deadline for connecting and completing the registration. */
  timeoutMs?: number;
  logger?: ControlLogger;
  frameBytesMax?: number;
  signal?: AbortSignal;
  /**
   * Hold back the confirmation (keyAck) of the initial key until acknowledgeKey() is called, so
   * that the server counts this client as a holder only once its data plane is listening.
   */
  deferInitialAck?: boolean;
}

export interface DeliveredKey {
  epoch: number;
  dataKey: Buffer;
  updateKey?: Buffer;
}

export type ServerTrust = 'pinned' | 'known' | 'recorded';

export interface ControlClient {
  readonly session: SessionParams;
  readonly serverFingerprint: string;
  /** How the server's key was trusted: pinned by the caller, found in, or just recorded in the known-servers file. */
  readonly serverTrust: ServerTrust;
  /** The key bundle delivered at registration; the caller owns and zeroes it. */
  readonly initialKey: DeliveredKey;
  /** How far the stream had come when this client registered (0: before sending began). */
  readonly joinedAtOffset: number;
  /** The latest epoch received. */
  readonly epoch: number;
  /** Confirms the latest epoch to the server (only needed with deferInitialAck). */
  acknowledgeKey(): void;
  /**
   * Asks the sender to multicast these bytes of the stream again (loss repair): 1 to 64
   * ascending, disjoint ranges. Returns false when the connection is no longer registered.
   */
  requestRepair(ranges: readonly StreamRange[]): boolean;
  /** Asks the sender to lower its rate (this receiver cannot keep up). False when not registered. */
  requestSlowDown(): boolean;
  /** Flow control: tells the sender how far this receiver has taken the stream in. False when not registered. */
  reportProgress(offset: number): boolean;
  close(): void;
  on(event: 'key', listener: (key: DeliveredKey) => void): this;
  /** The sender no longer holds these requested bytes: they cannot be repaired. */
  on(event: 'repairUnavailable', listener: (ranges: StreamRange[]) => void): this;
  /** Emitted once when the connection ends; `error` is set when it ended abnormally. */
  on(event: 'close', listener: (error?: SealcastError) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
}

function errorFromServer(message: ErrorMessage, clientId: string, address: string): SealcastError {
  const detail = message.text ? ` (${message.text})` : '';
  const table: Record<ErrorMessage['reason'], [ErrorCode, string]> = {
    'unknown-client': ['E_AUTH', `the control server at ${address} does not know the subscriber id "${clientId}"`],
    'removed-client': ['E_AUTH', `the subscriber "${clientId}" was removed from the control server at ${address}`],
    'bad-proof': ['E_AUTH', `the control server at ${address} rejected the registration of "${clientId}": wrong pre-shared key`],
    unsupported: ['E_PROTOCOL', `the control server at ${address} does not support this request${detail}`],
    protocol: ['E_PROTOCOL', `the control server at ${address} reported a protocol error${detail}`],
    busy: ['E_TIMEOUT', `the control server at ${address} is busy${detail}`],
    timeout: ['E_TIMEOUT', `the control server at ${address} timed out the registration${detail}`],
    replaced: ['E_CLOSED', `another registration of "${clientId}" replaced this connection`],
    shutdown: ['E_CLOSED', `the control server at ${address} shut down`],
  };
  const [code, text] = table[message.reason];
  return new SealcastError(code, text);
}

class ControlClientImpl extends EventEmitter implements ControlClient {
  session!: SessionParams;
  serverFingerprint = '';
  serverTrust: ServerTrust = 'pinned';
  initialKey!: DeliveredKey;
  joinedAtOffset = 0;
  epoch = -1;
  private state: 'connecting' | 'challenge' | 'welcome' | 'registered' | 'closed' = 'connecting';
  private wrapKey: Buffer | null = null;
  private readonly socket: Socket;
  private readonly address: string;
  private readonly frameBytesMax: number;
  private settle: { resolve(client: ControlClient): void; reject(error: Error): void } | null;
  private readonly timer: NodeJS.Timeout;
  private readonly clientNonce = randomBytes(CLIENT_NONCE_BYTES);

  constructor(
    private readonly options: RegisterOptions,
    settle: { resolve(client: ControlClient): void; reject(error: Error): void },
  ) {
    super();
    this.settle = settle;
    this.address = serverAddressKey(options.host, options.port);
    this.frameBytesMax = options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
    const timeoutMs = options.timeoutMs ?? REGISTER_TIMEOUT_MS_DEFAULT;
    this.timer = setTimeout(() => {
      this.fail(new SealcastError('E_TIMEOUT', `registration with the control server at ${this.address} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.socket = connect({ host: options.host, port: options.port, noDelay: true });
    this.socket.setKeepAlive(true, 30_000);
    this.socket.on('connect', () => {
      this.state = 'challenge';
      this.send({ type: 'hello', v: 1, clientId: options.clientId, keyKind: 'psk', clientNonce: this.clientNonce });
    });
    attachFrameDecoder(this.socket, this.frameBytesMax, {
      onFrame: (payload) => this.onFrame(payload),
      onFrameError: (error) => this.fail(new SealcastError('E_PROTOCOL', `bad frame from the control server at ${this.address}: ${error.message}`)),
    });
    this.socket.on('error', (error) => {
      this.fail(new SealcastError('E_IO', `control connection to ${this.address} failed: ${error.message}`, { cause: error }));
    });
    this.socket.on('close', () => {
      if (this.state === 'registered') this.finish();
      else this.fail(new SealcastError('E_PROTOCOL', `the control server at ${this.address} closed the connection during registration`));
    });
  }

  private readonly onAbort = () => this.fail(new SealcastError('E_CLOSED', 'registration was cancelled'));

  private send(message: ClientMessage): void {
    writeMessage(this.socket, message, this.frameBytesMax);
  }

  private onFrame(payload: Buffer): boolean {
    if (this.state === 'closed') return false;
    try {
      this.handle(decodeServerMessage(payload));
    } catch (error) {
      this.fail(
        error instanceof SealcastError
          ? error
          : new SealcastError('E_PROTOCOL', `bad message from the control server at ${this.address}: ${(error as Error).message}`),
      );
    }
    return (this.state as string) !== 'closed';
  }

  private handle(message: ServerMessage): void {
    switch (message.type) {
      case 'error':
        return this.fail(errorFromServer(message, this.options.clientId, this.address));
      case 'bye':
        return this.finish();
      case 'challenge':
        if (this.state !== 'challenge') throw this.unexpected(message.type);
        return this.onChallenge(message);
      case 'welcome':
        if (this.state !== 'welcome') throw this.unexpected(message.type);
        this.joinedAtOffset = message.streamOffset;
        return this.onKey(message.key, true);
      case 'key':
        if (this.state !== 'registered') throw this.unexpected(message.type);
        return this.onKey(message.key, false);
      case 'repair':
        if (this.state !== 'registered') throw this.unexpected(message.type);
        this.emit('repairUnavailable', message.unavailable);
        return;
    }
  }

  private unexpected(type: string): SealcastError {
    return new SealcastError('E_PROTOCOL', `unexpected "${type}" message from the control server at ${this.address} (state ${this.state})`);
  }

  private onChallenge(challenge: ChallengeMessage): void {
    const { options } = this;
    const transcript = registrationTranscript({
      clientId: options.clientId,
      keyKind: 'psk',
      clientNonce: this.clientNonce,
      serverNonce: challenge.serverNonce,
      serverPublicKey: challenge.serverPublicKey,
      session: challenge.session,
    });
    // The fingerprint is checked before the signature so that a wrong server is named as such;
    // nothing is recorded in the known-servers file until the signature also verifies.
    const fingerprint = fingerprintOf(challenge.serverPublicKey);
    if (options.pinnedFingerprint !== undefined && fingerprint !== options.pinnedFingerprint) {
      throw new SealcastError(
        'E_AUTH',
        `the control server at ${this.address} presented fingerprint ${fingerprint}, not the pinned ${options.pinnedFingerprint}`,
      );
    }
    // The server signs a batch of transcripts at once: this client's transcript is one leaf, and
    // the path from the challenge leads from it to the signed root. Any other transcript (another
    // connection, session or server) leads to another root, which the signature does not cover.
    let root: Buffer;
    try {
      root = merkleRootFromPath(merkleLeaf(transcript), challenge.leafIndex, challenge.path);
    } catch (error) {
      throw new SealcastError('E_PROTOCOL', `the control server at ${this.address} sent a malformed signature path: ${(error as Error).message}`);
    }
    if (!verifyServerSignature(challenge.serverPublicKey, batchRootSignatureInput(root, challenge.path.length), challenge.signature)) {
      throw new SealcastError('E_AUTH', `the control server at ${this.address} sent a challenge whose signature does not verify`);
    }
    if (options.pinnedFingerprint === undefined) {
      const file = options.knownServersFile ?? defaultKnownServersPath(options.env);
      const outcome = checkKnownServer(file, this.address, fingerprint);
      this.serverTrust = outcome === 'matched' ? 'known' : 'recorded';
      if (outcome === 'recorded') {
        (options.logger ?? silentLogger).warn(
          `first contact with the control server at ${this.address}: trusting its fingerprint ${fingerprint} and recording it in ${file}; ` +
            'pass --server-fingerprint (as printed by the sender) to check it instead',
        );
      }
    }
    this.serverFingerprint = fingerprint;
    this.session = challenge.session;
    const { sessionId } = challenge.session;
    const { macKey, wrapKey } = deriveClientKeys(options.psk, sessionId, options.clientId);
    const mac = clientProofMac(macKey, transcript);
    macKey.fill(0);
    this.wrapKey = wrapKey;
    this.state = 'welcome';
    this.send({ type: 'proof', v: 1, mac });
  }

  private onKey(wrapped: WrappedKey, initial: boolean): void {
    if (wrapped.epoch <= this.epoch) {
      throw new SealcastError('E_PROTOCOL', `the control server at ${this.address} sent epoch ${wrapped.epoch} after epoch ${this.epoch}`);
    }
    const bundle = unwrapKeyBundle(
      this.wrapKey as Buffer,
      { sessionId: this.session.sessionId, clientId: this.options.clientId, keyKind: 'psk' },
      wrapped,
    );
    this.epoch = bundle.epoch;
    if (!initial || !this.options.deferInitialAck) this.send({ type: 'keyAck', v: 1, epoch: bundle.epoch });
    if (initial) {
      this.initialKey = bundle;
      this.state = 'registered';
      clearTimeout(this.timer);
      this.options.signal?.removeEventListener('abort', this.onAbort);
      const settle = this.settle;
      this.settle = null;
      settle?.resolve(this);
    } else if (this.listenerCount('key') > 0) {
      this.emit('key', bundle);
    } else {
      // Nobody takes ownership of this bundle, so it is dropped here and zeroed.
      bundle.dataKey.fill(0);
      bundle.updateKey?.fill(0);
    }
  }

  private teardown(): void {
    this.state = 'closed';
    clearTimeout(this.timer);
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.wrapKey?.fill(0);
    this.wrapKey = null;
    this.clientNonce.fill(0);
  }

  private fail(error: SealcastError): void {
    if (this.state === 'closed') return;
    const wasRegistered = this.state === 'registered';
    this.teardown();
    this.socket.destroy();
    if (this.settle) {
      const settle = this.settle;
      this.settle = null;
      settle.reject(error);
    }
    if (wasRegistered) this.emit('close', error);
  }

  private finish(): void {
    if (this.state === 'closed') return;
    const wasRegistered = this.state === 'registered';
    if (!wasRegistered) {
      this.fail(new SealcastError('E_PROTOCOL', `the control server at ${this.address} ended the connection during registration`));
      return;
    }
    this.teardown();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.emit('close');
  }

  acknowledgeKey(): void {
    if (this.state === 'registered') this.send({ type: 'keyAck', v: 1, epoch: this.epoch });
  }

  requestRepair(ranges: readonly StreamRange[]): boolean {
    requireRepairRanges(ranges);
    if (this.state !== 'registered') return false;
    this.send({ type: 'nack', v: 1, ranges: ranges.map(({ from, to }) => ({ from, to })) });
    return true;
  }

  requestSlowDown(): boolean {
    if (this.state !== 'registered') return false;
    this.send({ type: 'slowDown', v: 1 });
    return true;
  }

  reportProgress(offset: number): boolean {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`offset must be a non-negative safe integer, got ${offset}`);
    if (this.state !== 'registered') return false;
    this.send({ type: 'progress', v: 1, offset });
    return true;
  }

  close(): void {
    if (this.state === 'closed') return;
    if (this.state === 'registered') this.send({ type: 'bye', v: 1 });
    this.finish();
  }
}

/** The ranges of a repair request, as the protocol allows them (TypeError/RangeError naming the value). */
function requireRepairRanges(ranges: readonly StreamRange[]): void {
  if (!Array.isArray(ranges) || ranges.length < 1 || ranges.length > REPAIR_RANGES_MAX) {
    throw new TypeError(`ranges must be an array of 1 to ${REPAIR_RANGES_MAX} { from, to } ranges`);
  }
  let previousTo = 0;
  for (const [index, range] of ranges.entries()) {
    const { from, to } = range ?? {};
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from || to > STREAM_OFFSET_MAX) {
      throw new RangeError(`ranges[${index}] must have safe integers 0 <= from < to, got ${JSON.stringify(range)}`);
    }
    if (index > 0 && from < previousTo) throw new RangeError(`ranges must be ascending and must not overlap (ranges[${index}])`);
    previousTo = to;
  }
}

/**
 * Registers with a control server and resolves with a connected client holding the current
 * epoch's key. Failures are SealcastErrors: E_AUTH for an unknown or removed id, a wrong PSK or
 * a server that is not the expected one; E_TIMEOUT, E_IO or E_PROTOCOL otherwise.
 */
export function registerWithServer(options: RegisterOptions): Promise<ControlClient> {
  if (typeof options.host !== 'string' || options.host.length === 0) throw new TypeError('host must be a non-empty string');
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) {
    throw new RangeError(`port must be between 1 and 65535, got ${options.port}`);
  }
  if (!isValidClientId(options.clientId)) {
    throw new SealcastError('E_ARG', `subscriber id must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(String(options.clientId).slice(0, 80))}`);
  }
  requireUint8Array(options.psk, 'psk');
  if (options.psk.byteLength !== 32) throw new RangeError(`psk must be 32 bytes, got ${options.psk.byteLength}`);
  if (options.frameBytesMax !== undefined) requireFrameBytesMax(options.frameBytesMax);
  const pinned = options.pinnedFingerprint === undefined ? undefined : parseFingerprint(options.pinnedFingerprint);
  return new Promise<ControlClient>((resolve, reject) => {
    new ControlClientImpl({ ...options, pinnedFingerprint: pinned }, { resolve, reject });
  });
}
