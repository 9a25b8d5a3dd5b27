// The native control transport: the addon's epoll listener (native/control_listener.h) accepts,
// reads and cuts frames for every connection, and hands all that is ready to JS as one batch of
// event records per wake-up; everything the server sends or closes in answer goes back as one
// batch of send records per flush. No Node socket, stream or per-connection event handler is
// made, which is most of what a connection costs in node:net.

import { isIPv4, isIPv6 } from 'node:net';
import { constants as osConstants } from 'node:os';
import { SealcastError } from '../errors.js';
import { loadNativeBinding } from '../crypto/native.js';
import { FRAME_HEADER_BYTES } from './frames.js';
import { textFrameBytes } from './messages.js';
import type { ControlLink, ControlTransport, LinkAcceptor, LinkEvents, LinkLevel, TransportOptions } from './link.js';

interface NativeListenerHandle {
  flush(slab: Uint8Array, count: number, dropped: Uint32Array): number;
  remoteAddress(id: number): string | undefined;
  close(): void;
  readonly port: number;
  readonly connectionsInUse: number;
  readonly refused: number;
}

interface ListenerConstants {
  readonly SUPPORTED: number;
  readonly EVENT_HEADER_BYTES: number;
  readonly EVENT_OPEN: number;
  readonly EVENT_FRAME: number;
  readonly EVENT_END: number;
  readonly EVENT_ERROR: number;
  readonly EVENT_FRAME_ERROR: number;
  readonly SEND_HEADER_BYTES: number;
  readonly SEND_END: number;
  readonly SEND_DESTROY: number;
  readonly DROP_NOT_READING: number;
  readonly DROP_WRITE_ERROR: number;
  readonly CLOSE_FLUSH_MS: number;
  readonly CONNECTIONS_MAX: number;
  readonly FRAME_BYTES_LIMIT: number;
}

export interface ControlListenerBinding {
  readonly CONTROL_LISTENER: ListenerConstants;
  readonly ControlListener: {
    /** The smallest event slab for a frame limit (every frame must fit an empty slab). */
    minimumSlabBytes(frameBytesMax: number): number;
  } & (new (
    family: number,
    address: Uint8Array,
    port: number,
    backlog: number,
    connectionsMax: number,
    frameBytesMax: number,
    pendingBytesMax: number,
    eventSlab: Uint8Array,
    onEvents: (count: number, bytes: number) => void,
    coalesceMs: number,
  ) => NativeListenerHandle);
}

/** The event slab is at least this large, so that one wake-up can carry many small frames. */
const EVENT_SLAB_BYTES_MIN = 1024 * 1024;
const SEND_SLAB_BYTES_INITIAL = 256 * 1024;
/** While closing, how often the transport looks whether ending connections have finished. */
const CLOSE_POLL_MS = 10;

/** The binding, or why the native transport cannot be used here. */
export function controlListenerBinding(): ControlListenerBinding | string {
  let binding: ControlListenerBinding;
  try {
    binding = loadNativeBinding() as unknown as ControlListenerBinding;
  } catch (error) {
    return (error as Error).message;
  }
  if (typeof binding.ControlListener !== 'function' || typeof binding.CONTROL_LISTENER !== 'object') {
    return 'the addon was built without it (run `npm run build:native`)';
  }
  if (binding.CONTROL_LISTENER.SUPPORTED !== 1) return `it needs Linux, this is ${process.platform}`;
  return binding;
}

/** The bytes of a numeric IPv4 or IPv6 address (network order), or null for anything else. */
export function addressBytes(host: string): { family: 4 | 6; bytes: Uint8Array } | null {
  if (isIPv4(host)) return { family: 4, bytes: Uint8Array.from(host.split('.').map(Number)) };
  if (!isIPv6(host) || host.includes('%')) return null;
  let text = host;
  // An embedded IPv4 tail (::ffff:1.2.3.4) is written as its two 16-bit words.
  const tail = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const parts = tail[1].split('.').map(Number);
    text = `${text.slice(0, tail.index + 1)}${((parts[0] << 8) | parts[1]).toString(16)}:${((parts[2] << 8) | parts[3]).toString(16)}`;
  }
  const halves = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((word) => parseInt(word, 16)));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  const fill = 8 - head.length - rest.length;
  if (halves.length > 2 || fill < 0 || (halves.length === 1 && fill !== 0)) return null;
  const words = [...head, ...new Array<number>(fill).fill(0), ...rest];
  if (words.some((word) => !Number.isInteger(word) || word < 0 || word > 0xffff)) return null;
  const bytes = new Uint8Array(16);
  words.forEach((word, index) => {
    bytes[2 * index] = word >> 8;
    bytes[2 * index + 1] = word & 0xff;
  });
  return { family: 6, bytes };
}

let errnoNames: Map<number, string> | null = null;
function errnoName(errno: number): string {
  errnoNames ??= new Map(Object.entries(osConstants.errno).map(([name, number]) => [number, name]));
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

class NativeLink implements ControlLink {
  finished = false;
  events: LinkEvents | null = null;
  private remoteText: string | null = null;

  constructor(
    private readonly transport: NativeTransport,
    readonly id: number,
  ) {}

  get remote(): string {
    if (this.remoteText === null) {
      const text = this.transport.remoteAddress(this.id);
      if (text === undefined) return 'a disconnected peer';
      this.remoteText = text;
    }
    return this.remoteText;
  }

  send(frame: Buffer): void {
    if (!this.finished) this.transport.queue(this.id, 0, frame);
  }

  sendText(text: string): void {
    if (!this.finished) this.transport.queueText(this.id, text);
  }

  keepAlive(): void {
    // Every native connection has keepalive from the listening socket already.
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.transport.forget(this.id);
    this.transport.queue(this.id, this.transport.constants.SEND_END, null);
  }

  destroy(): void {
    if (this.finished) return;
    this.finished = true;
    this.transport.forget(this.id);
    this.transport.queue(this.id, this.transport.constants.SEND_DESTROY, null);
  }

  /** The link failed on its own. `closedByNative`: the descriptor is already closed. */
  lost(text: string, level: LinkLevel, closedByNative: boolean): void {
    if (this.finished) return;
    if (closedByNative) {
      this.finished = true;
      this.transport.forget(this.id);
    } else {
      this.destroy();
    }
    this.events?.onLost(text, level);
  }
}

class NativeTransport implements ControlTransport {
  readonly name = 'native' as const;
  readonly address: { host: string; port: number };
  readonly constants: ListenerConstants;
  private readonly listener: NativeListenerHandle;
  private readonly eventSlab: Buffer;
  private sendSlab = Buffer.allocUnsafe(SEND_SLAB_BYTES_INITIAL);
  private sendBytes = 0;
  private sendCount = 0;
  private flushScheduled = false;
  private dropped = new Uint32Array(2 * 256);
  private readonly links = new Map<number, NativeLink>();
  private closing: Promise<void> | null = null;
  private listenerClosed = false;

  constructor(
    binding: ControlListenerBinding,
    private readonly options: TransportOptions,
    private readonly accept: LinkAcceptor,
    family: 4 | 6,
    bytes: Uint8Array,
  ) {
    this.constants = binding.CONTROL_LISTENER;
    const slabBytes = Math.max(EVENT_SLAB_BYTES_MIN, binding.ControlListener.minimumSlabBytes(options.frameBytesMax));
    this.eventSlab = Buffer.alloc(slabBytes);
    try {
      this.listener = new binding.ControlListener(
        family,
        bytes,
        options.port,
        options.backlog,
        options.linksMax,
        options.frameBytesMax,
        options.pendingBytesMax,
        this.eventSlab,
        (count, total) => this.onEvents(count, total),
        options.coalesceMs,
      );
    } catch (error) {
      if (error instanceof TypeError || error instanceof RangeError) throw error;
      throw new SealcastError('E_IO', `cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error });
    }
    this.address = { host: options.host, port: this.listener.port };
  }

  remoteAddress(id: number): string | undefined {
    return this.listener.remoteAddress(id);
  }

  forget(id: number): void {
    this.links.delete(id);
  }

  /** Adds one send record; the batch goes out at the end of the current event batch or task. */
  queue(id: number, flags: number, frame: Buffer | null): void {
    const length = frame === null ? 0 : frame.byteLength;
    const at = this.reserve(id, flags, length);
    if (at >= 0 && frame !== null) frame.copy(this.sendSlab, at);
  }

  /** Adds one send record of a frame whose payload is `text`, written in place. */
  queueText(id: number, text: string): void {
    const payloadBytes = textFrameBytes(text, this.options.frameBytesMax);
    const at = this.reserve(id, 0, FRAME_HEADER_BYTES + payloadBytes);
    if (at < 0) return;
    this.sendSlab.writeUInt32BE(payloadBytes, at);
    this.sendSlab.write(text, at + FRAME_HEADER_BYTES, payloadBytes, 'utf8');
  }

  /** Writes a record header for `length` bytes; returns where those bytes go, or -1 after close. */
  private reserve(id: number, flags: number, length: number): number {
    if (this.listenerClosed) return -1;
    const { SEND_HEADER_BYTES } = this.constants;
    if (this.sendBytes + SEND_HEADER_BYTES + length > this.sendSlab.byteLength) {
      this.flush();
      if (SEND_HEADER_BYTES + length > this.sendSlab.byteLength) {
        // Only a frame larger than the slab gets here, and frames are bounded by frameBytesMax.
        this.sendSlab = Buffer.allocUnsafe(SEND_HEADER_BYTES + length);
      }
    }
    const at = this.sendBytes;
    this.sendSlab.writeUInt32LE(id, at);
    this.sendSlab.writeUInt32LE(flags, at + 4);
    this.sendSlab.writeUInt32LE(length, at + 8);
    this.sendBytes = at + SEND_HEADER_BYTES + length;
    this.sendCount++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return at + SEND_HEADER_BYTES;
  }

  /** Hands every queued record to the listener in one call. */
  flush(): void {
    this.flushScheduled = false;
    if (this.sendCount === 0 || this.listenerClosed) return;
    if (this.dropped.length < 2 * this.sendCount) this.dropped = new Uint32Array(2 * this.sendCount);
    let droppedCount = 0;
    try {
      droppedCount = this.listener.flush(this.sendSlab.subarray(0, this.sendBytes), this.sendCount, this.dropped);
    } catch (error) {
      // A refused batch is a bug here, not a peer's doing; it is reported and not retried.
      this.options.warn(`control transport: a send batch failed: ${(error as Error).message}`);
    } finally {
      this.sendBytes = 0;
      this.sendCount = 0;
    }
    for (let index = 0; index < droppedCount; index++) {
      const link = this.links.get(this.dropped[2 * index]);
      const code = this.dropped[2 * index + 1];
      if (link === undefined) continue;
      if (code === this.constants.DROP_NOT_READING) {
        link.lost(`client is not reading (more than ${this.options.pendingBytesMax} bytes pending)`, 'warn', true);
      } else {
        link.lost(`socket error: ${errnoName(code >>> 8)}`, 'info', true);
      }
    }
  }

  private onEvents(count: number, total: number): void {
    if (count < 0) {
      this.options.warn('control transport: the native listener failed and stopped; no new connections are heard');
      return;
    }
    const slab = this.eventSlab;
    const { EVENT_HEADER_BYTES, EVENT_OPEN, EVENT_FRAME, EVENT_END, EVENT_ERROR } = this.constants;
    // A link whose owner returned false from onFrame hears nothing more of this batch.
    let stopped: Set<number> | null = null;
    let at = 0;
    for (let index = 0; index < count && at + EVENT_HEADER_BYTES <= total; index++) {
      const kind = slab[at];
      const id = slab.readUInt32LE(at + 4);
      const length = slab.readUInt32LE(at + 8);
      const payloadAt = at + EVENT_HEADER_BYTES;
      at = kind === EVENT_FRAME ? payloadAt + length : payloadAt;
      if (kind === EVENT_OPEN) {
        this.open(id);
        continue;
      }
      const link = this.links.get(id);
      if (link === undefined || link.events === null) continue;
      if (kind === EVENT_FRAME) {
        if (stopped?.has(id)) continue;
        if (!link.events.onFrame(slab.subarray(payloadAt, payloadAt + length))) (stopped ??= new Set()).add(id);
      } else if (kind === EVENT_END) {
        link.lost('peer closed the connection', 'info', false);
      } else if (kind === EVENT_ERROR) {
        link.lost(`socket error: ${errnoName(length)}`, 'info', false);
      } else {
        link.events.onFrameError(
          length === 0 ? 'empty frame (length 0)' : `frame of ${length} bytes exceeds the maximum of ${this.options.frameBytesMax} bytes`,
        );
      }
    }
    this.flush();
  }

  private open(id: number): void {
    const link = new NativeLink(this, id);
    if (this.closing) {
      link.destroy();
      return;
    }
    this.links.set(id, link);
    const events = this.accept(link);
    if (events === null || link.finished) {
      this.links.delete(id);
      return;
    }
    link.events = events;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.flush();
    const started = performance.now();
    this.closing = new Promise<void>((resolve) => {
      // Ending connections finish their last message first, as node:net's close waits for its
      // sockets; none takes longer than the listener's close bound.
      const check = () => {
        if (this.listener.connectionsInUse === 0 || performance.now() - started > this.constants.CLOSE_FLUSH_MS + 100) {
          this.listenerClosed = true;
          this.listener.close();
          this.links.clear();
          resolve();
          return;
        }
        setTimeout(check, CLOSE_POLL_MS);
      };
      check();
    });
    return this.closing;
  }
}

/** Starts the native transport; E_IO when it cannot listen, or a string saying why it is unavailable. */
export function startNativeTransport(options: TransportOptions, accept: LinkAcceptor): ControlTransport | string {
  const binding = controlListenerBinding();
  if (typeof binding === 'string') return binding;
  const address = addressBytes(options.host);
  if (address === null) return `it listens on numeric IP addresses only, not "${options.host}"`;
  if (options.linksMax > binding.CONTROL_LISTENER.CONNECTIONS_MAX) {
    return `it holds at most ${binding.CONTROL_LISTENER.CONNECTIONS_MAX} connections`;
  }
  return new NativeTransport(binding, options, accept, address.family, address.bytes);
}
