// One control connection on the server: the registration state machine (hello, challenge,
// proof, welcome), the data-plane reports of a registered client, and the one way it ends. The
// work that is cheaper per batch (registry lookups, key derivation, signing, proof checks, key
// wraps) is queued with the owner (server.ts), which calls back into the connection per step.

import type { EventEmitter } from 'node:events';
import { SealcastError } from '../errors.js';
import type { ServerIdentity } from '../keys/identity.js';
import type { Registry, RegistrationLookup } from '../store/registry.js';
import type { BatchSignature, BatchSigner } from './batch-signer.js';
import type { WrapTarget } from './key-wrap.js';
import type { ControlLink, LinkEvents } from './link.js';
import {
  REPAIR_RANGES_MAX,
  SERVER_NONCE_BYTES,
  decodeClientMessage,
  messageJsonText,
  type ClientMessage,
  type ErrorReason,
  type HelloMessage,
  type KeyKind,
  type ServerMessage,
  type SessionParams,
  type StreamRange,
  type WrappedKey,
} from './messages.js';
import type { ControlLogger } from './logger.js';
import { nonces } from './random-pool.js';
import { registrationTranscript } from './transcript.js';

/**
 * Data-plane reports (`nack`, `slowDown`, `progress`) one connection may send: a receiver sends
 * at most one of each per 5 ms, so this leaves room for bursts while a flood from one client
 * cannot keep the sender busy.
 */
const NACKS_PER_SECOND_MAX = 1000;
const NACK_BURST_MAX = 200;

/**
 * 'keying': its hello waits for the batch that looks up and derives keys; 'signing': its
 * challenge waits for the batch signature; 'checking': its proof waits for the batch check.
 */
export type ConnectionState = 'hello' | 'keying' | 'signing' | 'proof' | 'checking' | 'registered' | 'closed';

/** What a connection needs of the server that owns it. */
export interface ConnectionOwner extends Pick<EventEmitter, 'emit'> {
  readonly registry: Registry;
  readonly session: SessionParams;
  readonly identity: ServerIdentity;
  readonly signer: BatchSigner;
  readonly logger: ControlLogger;
  /** False when info lines go nowhere: they are then not even built. */
  readonly logsInfo: boolean;
  readonly connections: Set<ServerConnection>;
  readonly registered: Map<string, ServerConnection>;
  heldCount: number;
  startHandshake(connection: ServerConnection): void;
  endHandshake(connection: ServerConnection): void;
  queueHello(connection: ServerConnection): void;
  queueProof(connection: ServerConnection): void;
  notifyHolder(connection: ServerConnection): void;
  streamOffset(): number;
  onRepairRequest(clientId: string, ranges: StreamRange[]): StreamRange[];
  onSlowDown(clientId: string): void;
  onProgress(clientId: string, offset: number): void;
  onClientGone(clientId: string): void;
}

export class ServerConnection implements LinkEvents {
  state: ConnectionState = 'hello';
  clientId = '';
  keyKind: KeyKind = 'psk';
  deliveredEpoch = -1;
  ackedEpoch = -1;
  private clientNonce: Buffer | null = null;
  private proofMac: Buffer | null = null;
  private serverNonce: Buffer | null = null;
  private transcript: Buffer | null = null;
  private macKey: Buffer | null = null;
  private wrapKey: Buffer | null = null;
  /** Token bucket for `nack` messages (NACKS_PER_SECOND_MAX). */
  private nackTokens = NACK_BURST_MAX;
  private nackRefilledAtMs = 0;
  private nacksRefused = 0;

  constructor(
    private readonly owner: ConnectionOwner,
    private readonly link: ControlLink,
  ) {
    owner.startHandshake(this);
  }

  onFrameError(message: string): void {
    this.close('protocol', message, 'warn');
  }

  onLost(text: string, level: 'info' | 'warn'): void {
    this.close(null, text, level);
  }

  /** The peer's address, looked up only when a log line or holder list needs it. */
  get remote(): string {
    return this.link.remote;
  }

  private label(): string {
    return this.clientId ? `${this.remote} (${this.clientId})` : this.remote;
  }

  private send(message: ServerMessage): void {
    this.link.sendText(messageJsonText(message));
  }

  onFrame(payload: Buffer): boolean {
    if (this.state === 'closed') return false;
    let message: ClientMessage;
    try {
      message = decodeClientMessage(payload);
    } catch (error) {
      const reserved = error instanceof SealcastError && error.message.includes('is reserved');
      this.close(reserved ? 'unsupported' : 'protocol', (error as Error).message, 'warn');
      return false;
    }
    try {
      this.handle(message);
    } catch (error) {
      // A failure while handling a valid message (a registry error, a bad epoch bundle) is the
      // server's problem, not the client's; it still ends only this connection.
      this.close('protocol', `internal error: ${(error as Error).message}`, 'warn');
      return false;
    }
    return (this.state as ConnectionState) !== 'closed';
  }

  private handle(message: ClientMessage): void {
    switch (message.type) {
      case 'hello':
        if (this.state !== 'hello') return this.unexpected(message.type);
        return this.onHello(message);
      case 'proof':
        if (this.state !== 'proof') return this.unexpected(message.type);
        return this.onProof(message.mac);
      case 'keyAck':
        if (this.state !== 'registered') return this.unexpected(message.type);
        if (message.epoch > this.deliveredEpoch) {
          return this.close('protocol', `keyAck for epoch ${message.epoch}, which was never delivered`, 'warn');
        }
        if (message.epoch > this.ackedEpoch) {
          if (this.ackedEpoch < 0) this.owner.heldCount++;
          this.ackedEpoch = message.epoch;
          this.owner.notifyHolder(this);
        }
        return;
      case 'nack':
        if (this.state !== 'registered') return this.unexpected(message.type);
        if (this.takeRequestToken()) this.onNack(message.ranges);
        return;
      case 'slowDown':
        if (this.state !== 'registered') return this.unexpected(message.type);
        if (this.takeRequestToken()) this.owner.onSlowDown(this.clientId);
        return;
      case 'progress':
        if (this.state !== 'registered') return this.unexpected(message.type);
        if (this.takeRequestToken()) this.owner.onProgress(this.clientId, message.offset);
        return;
      case 'bye':
        return this.close(null, 'client said bye', 'info', true);
    }
  }

  /**
   * Repair requests and slow-down reports share one rate per connection. Beyond it they are
   * dropped, not fatal: the client asks again for what is still missing.
   */
  private takeRequestToken(): boolean {
    const now = performance.now();
    this.nackTokens = Math.min(NACK_BURST_MAX, this.nackTokens + ((now - this.nackRefilledAtMs) * NACKS_PER_SECOND_MAX) / 1000);
    this.nackRefilledAtMs = now;
    if (this.nackTokens < 1) {
      if (this.nacksRefused++ === 0) this.owner.logger.warn(`control: ${this.label()} sends repair requests faster than ${NACKS_PER_SECOND_MAX}/s; the excess is ignored`);
      return false;
    }
    this.nackTokens--;
    return true;
  }

  /** A repair request: passed to the data plane; what it no longer holds is said back. */
  private onNack(ranges: StreamRange[]): void {
    const unavailable = this.owner.onRepairRequest(this.clientId, ranges);
    if (unavailable.length > 0) this.send({ type: 'repair', v: 1, unavailable: unavailable.slice(0, REPAIR_RANGES_MAX) });
  }

  private unexpected(type: string): void {
    const where =
      this.state === 'registered'
        ? 'registered'
        : this.state === 'keying' || this.state === 'signing'
          ? 'its challenge is being made'
          : this.state === 'checking'
            ? 'its proof is being checked'
            : `awaiting ${this.state}`;
    this.close('protocol', `unexpected "${type}" message while ${where}`, 'warn');
  }

  private onHello(hello: HelloMessage): void {
    this.clientId = hello.clientId;
    if (hello.keyKind !== 'psk') {
      return this.close('unsupported', `key kind ${hello.keyKind} is not served by this server yet (only psk)`, 'warn');
    }
    this.keyKind = hello.keyKind;
    this.clientNonce = hello.clientNonce;
    this.state = 'keying';
    this.owner.queueHello(this);
  }

  /**
   * Takes the registry's answer for this hello: the client's PSK (the caller derives keys from it
   * and zeroes it), or null when the connection was closed with the reason.
   */
  lookedUp(found: RegistrationLookup): Buffer | null {
    if (found.status === 'unknown') {
      this.close('unknown-client', `unknown subscriber id "${this.clientId}"`, 'warn');
      return null;
    }
    if (found.status === 'removed') {
      this.close('removed-client', `subscriber "${this.clientId}" was removed`, 'warn');
      return null;
    }
    if (found.keyKind !== this.keyKind || found.psk === null) {
      // The registry handed over a copy of the key even though it is not used here.
      found.psk?.fill(0);
      this.close('unsupported', `subscriber "${this.clientId}" is registered with key kind ${found.keyKind}, not ${this.keyKind}`, 'warn');
      return null;
    }
    return found.psk;
  }

  /** Keys derived (in a batch): make the transcript and queue it for the batch signature. */
  keyed(keys: { macKey: Buffer; wrapKey: Buffer }): void {
    this.macKey = keys.macKey;
    this.wrapKey = keys.wrapKey;
    const serverNonce = nonces.take(SERVER_NONCE_BYTES);
    this.transcript = registrationTranscript({
      clientId: this.clientId,
      keyKind: this.keyKind,
      clientNonce: this.clientNonce as Buffer,
      serverNonce,
      serverPublicKey: this.owner.identity.publicKey,
      session: this.owner.session,
    });
    this.serverNonce = serverNonce;
    this.state = 'signing';
    this.owner.signer.submit(this.transcript, this.onSigned);
  }

  /** The batch signer's answer: send the challenge with this transcript's share of the signature. */
  private readonly onSigned = (result: BatchSignature | Error): void => {
    if (this.state !== 'signing') return;
    if (result instanceof Error) {
      this.close('protocol', `internal error: cannot sign the challenge: ${result.message}`, 'warn');
      return;
    }
    this.state = 'proof';
    try {
      this.send({
        type: 'challenge',
        v: 1,
        serverNonce: this.serverNonce as Buffer,
        serverPublicKey: this.owner.identity.publicKey,
        session: this.owner.session,
        signature: result.signature,
        leafIndex: result.leafIndex,
        path: result.path,
      });
    } catch (error) {
      // Called from the signer for a whole batch: a failure here must end only this connection.
      this.close('protocol', `internal error: ${(error as Error).message}`, 'warn');
    }
  };

  private onProof(mac: Buffer): void {
    this.proofMac = mac;
    this.state = 'checking';
    this.owner.queueProof(this);
  }

  /** What the batch proof check needs; valid while the state is 'checking'. */
  proofToCheck(): { macKey: Buffer; transcript: Buffer; mac: Buffer } {
    return { macKey: this.macKey as Buffer, transcript: this.transcript as Buffer, mac: this.proofMac as Buffer };
  }

  /** The batch check's verdict. True when the client is now registered (and needs its welcome). */
  proofChecked(ok: boolean): boolean {
    this.dropHandshakeState();
    if (!ok) {
      this.close('bad-proof', `registration proof of "${this.clientId}" did not verify (wrong pre-shared key)`, 'warn');
      return false;
    }
    this.owner.endHandshake(this);
    const previous = this.owner.registered.get(this.clientId);
    if (previous && previous !== this) previous.close('replaced', 'a newer registration of the same subscriber replaced this connection', 'info', true);
    this.state = 'registered';
    // Registered clients stay connected for key pushes; keepalive notices the ones that vanish.
    this.link.keepAlive();
    this.owner.registered.set(this.clientId, this);
    if (this.owner.logsInfo) this.owner.logger.info(`control: ${this.label()} registered`);
    return true;
  }

  /** Zeroes the registration MAC key and lets go of what only the handshake needed. */
  private dropHandshakeState(): void {
    this.macKey?.fill(0);
    this.macKey = null;
    this.transcript = null;
    this.clientNonce = null;
    this.serverNonce = null;
    this.proofMac = null;
  }

  /** This client's wrap key and context, when a bundle of `epoch` is still to be delivered to it. */
  wrapTarget(epoch: number): WrapTarget | null {
    if (this.state !== 'registered' || this.wrapKey === null || epoch <= this.deliveredEpoch) return null;
    return { wrapKey: this.wrapKey, context: { sessionId: this.owner.session.sessionId, clientId: this.clientId, keyKind: this.keyKind } };
  }

  /** Sends a bundle wrapped for this client (by the owner's batch wrap). */
  delivered(key: WrappedKey, type: 'welcome' | 'key'): void {
    this.deliveredEpoch = key.epoch;
    this.send(type === 'welcome' ? { type, v: 1, key, streamOffset: this.owner.streamOffset() } : { type, v: 1, key });
  }

  /**
   * Ends the connection once. `reason` non-null sends an error message first (so the peer gets a
   * clear cause); `graceful` sends a bye instead of an error when there is nothing wrong.
   */
  close(reason: ErrorReason | null, text: string, level: 'info' | 'warn', graceful = false): void {
    if (this.state === 'closed') return;
    const wasRegistered = this.state === 'registered';
    this.state = 'closed';
    this.owner.endHandshake(this);
    this.dropHandshakeState();
    this.wrapKey?.fill(0);
    this.wrapKey = null;
    this.owner.connections.delete(this);
    if (wasRegistered && this.owner.registered.get(this.clientId) === this) {
      this.owner.registered.delete(this.clientId);
      if (this.ackedEpoch >= 0) this.owner.heldCount--;
      this.owner.onClientGone(this.clientId);
    }
    if (level === 'warn' || this.owner.logsInfo) this.owner.logger[level](`control: closed ${this.label()}: ${text}`);
    if (graceful && reason === 'shutdown') this.send({ type: 'bye', v: 1 });
    else if (reason !== null) this.send({ type: 'error', v: 1, reason, text });
    else {
      // Nothing more to say (the peer ended, said bye, failed or stopped reading): closing the
      // descriptor at once still sends what the kernel holds, without a shutdown call and a
      // flush timer per connection.
      this.link.destroy();
      return;
    }
    this.link.end();
  }
}
