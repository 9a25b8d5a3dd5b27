// Batched UDP I/O through the native addon: sendmmsg for a chunk of a sealed slab and recvmmsg
// into a receive slab, on the very socket node:dgram created. node:dgram still creates, binds
// and configures the socket (multicast interface, TTL, membership); only the per-datagram
// system calls, which bound Node at about 4 CPU-s/GiB per side at 1400 bytes, are batched. A
// receiver is woken by the addon's watch on the socket (watchReadable) rather than by
// node:dgram's 'message' event, which read one datagram into a fresh 64 KiB buffer first.
//
// When the addon is missing, predates these calls, or the socket's descriptor cannot be had,
// the pipeline keeps plain node:dgram ('auto'); asking for 'native' then is an E_IO error.

import type dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import { loadNativeBinding } from '../crypto/native.js';
import { SealcastError } from '../errors.js';
import type { MulticastGroup } from './multicast.js';

export type IoMode = 'auto' | 'native' | 'dgram';
export const IO_MODES: readonly IoMode[] = ['auto', 'native', 'dgram'];
/** The environment variable that picks the I/O path when no option does. */
export const IO_ENV = 'SEALCAST_IO';

/** The largest receive slot the addon takes: 64 KiB holds any UDP datagram over IPv4. */
export const UDP_SLOT_BYTES_MAX = 65_536;

/** How a kernel or driver refuses UDP_SEGMENT: EIO (no checksum offload), EINVAL, ENOPROTOOPT, EOPNOTSUPP. */
const GSO_REFUSED_ERRNOS = new Set([5, 22, 92, 95]);

/** The addon's batched UDP calls (native/udp.h); absent from addons built before them. */
interface UdpBinding {
  readonly UDP_BATCH_SUPPORTED: boolean;
  readonly UDP_BATCH_MAX: number;
  udpCheckSocket(fd: number): void;
  udpSend(fd: number, slab: Uint8Array, layout: Uint32Array, first: number, count: number, groupAddress: number, port: number, segment?: boolean): number;
  udpReceive(fd: number, slab: Uint8Array, stride: number, lengths: Uint32Array, first: number, count: number, segments?: Uint32Array | null): number;
  /** Absent from addons built before receive-side GRO. */
  udpEnableGro?(fd: number): boolean;
  /** Absent from addons built before the receive watch (native/udp_watch.cc). */
  UdpReadWatch?: new (fd: number, onReadable: (status: number) => void) => ReadWatch;
}

/** A watch on a socket's receive queue (native/udp_watch.cc); close() it before the socket. */
export interface ReadWatch {
  close(): void;
  readonly closed: boolean;
}

/** Reads SEALCAST_IO (auto, native or dgram); unset or empty is auto. */
export function ioModeFromEnv(env: Readonly<Record<string, string | undefined>>): IoMode {
  const value = env[IO_ENV];
  if (value === undefined || value === '') return 'auto';
  return parseIoMode(value, IO_ENV);
}

/** Checks an io option given through the library (TypeError naming the value). */
export function requireIoMode(value: IoMode): IoMode {
  if (value !== 'auto' && value !== 'native' && value !== 'dgram') throw new TypeError(`io must be "auto", "native" or "dgram", got ${String(value)}`);
  return value;
}

export function parseIoMode(value: string, name: string): IoMode {
  if ((IO_MODES as readonly string[]).includes(value)) return value as IoMode;
  throw new SealcastError('E_ARG', `${name} must be one of ${IO_MODES.join(', ')}, got "${value}"`);
}

/** One borrowed socket's batched calls. The socket stays owned (and closed) by its dgram.Socket. */
export class BatchSocket {
  /** The most datagrams one call moves. */
  readonly batchMax: number;
  readonly #binding: UdpBinding;
  readonly #fd: number;
  /** Whether sends still try UDP GSO; the first refusal turns it off for this socket. */
  #segment: boolean;
  /** Whether the socket takes receive-side GRO messages whole (enableGro). */
  #gro = false;

  constructor(binding: UdpBinding, fd: number, options: { segment?: boolean } = {}) {
    this.#binding = binding;
    this.#fd = fd;
    this.batchMax = binding.UDP_BATCH_MAX;
    this.#segment = options.segment ?? true;
  }

  /** True while runs of back-to-back equal datagrams go to the kernel as one GSO send each. */
  get segmenting(): boolean {
    return this.#segment;
  }

  /** True once enableGro() turned receive-side UDP GRO on. */
  get gro(): boolean {
    return this.#gro;
  }

  /**
   * Turns on receive-side UDP GRO: a GSO send that stayed whole on its way (loopback, veth, a
   * bridge) is then queued as one message of up to 64 datagrams instead of one per datagram, and
   * receive() reports each message's segment size. Returns false, changing nothing, when the
   * addon or the kernel lacks it. From then on node:dgram's own reads of this socket may also
   * return such a message, without its segment size.
   */
  enableGro(): boolean {
    if (this.#gro) return true;
    if (typeof this.#binding.udpEnableGro !== 'function') return false;
    try {
      this.#gro = this.#binding.udpEnableGro(this.#fd);
    } catch (error) {
      throw ioError('turning on UDP GRO failed', error);
    }
    return this.#gro;
  }

  /** Whether watchReadable is available (the addon has the receive watch). */
  get canWatch(): boolean {
    return typeof this.#binding.UdpReadWatch === 'function';
  }

  /**
   * Takes over the wake-ups for `socket`'s datagrams, which must be this BatchSocket's socket:
   * node:dgram stops reading it, and `onReadable` is called (status 0) whenever datagrams are
   * queued, for as long as any are, to read them with receive(); a failed poll calls it once
   * with a negative errno and stops. The watch must be closed before the socket is.
   */
  watchReadable(socket: dgram.Socket, onReadable: (status: number) => void): ReadWatch {
    if (typeof onReadable !== 'function') throw new TypeError('onReadable must be a function');
    const Watch = this.#binding.UdpReadWatch;
    if (typeof Watch !== 'function') throw new SealcastError('E_IO', 'the addon was built without the receive watch (run `npm run build:native`)');
    const handle = socketHandle(socket);
    if (handle?.fd !== this.#fd || typeof handle.recvStop !== 'function') {
      throw new SealcastError('E_IO', "cannot take over the socket's reads: its handle is not the one this BatchSocket uses");
    }
    let watch: ReadWatch;
    try {
      watch = new Watch(this.#fd, onReadable);
    } catch (error) {
      throw ioError('watching the socket failed', error);
    }
    // From here on every datagram is left queued for receive(): two readers would split the
    // stream between them, and node:dgram's reads are the cost the watch exists to avoid.
    const stopped = handle.recvStop();
    if (stopped !== 0) {
      watch.close();
      throw new SealcastError('E_IO', `cannot stop node:dgram's reads of the socket (libuv error ${stopped})`);
    }
    return watch;
  }

  /**
   * Sends slots [first, first + count) of a sealed slab to the group with one call and returns
   * how many went out: fewer (maybe 0) when the socket buffer is full, never more than batchMax.
   */
  send(slab: Uint8Array, layout: Uint32Array, first: number, count: number, target: GroupTarget): number {
    if (!(slab instanceof Uint8Array)) throw new TypeError('slab must be a Uint8Array');
    if (!(layout instanceof Uint32Array)) throw new TypeError('layout must be a Uint32Array');
    requireIndex(first, 'first');
    requireIndex(count, 'count');
    if (count > this.batchMax) throw new RangeError(`count must be at most ${this.batchMax}, got ${count}`);
    if ((first + count) * 3 > layout.length) throw new RangeError(`first + count (${first + count}) exceeds the layout's ${Math.floor(layout.length / 3)} slots`);
    try {
      return this.#binding.udpSend(this.#fd, slab, layout, first, count, target.addressNumber, target.port, this.#segment);
    } catch (error) {
      if (!this.#segment || !GSO_REFUSED_ERRNOS.has((error as { errno?: unknown }).errno as number)) throw ioError('sending to the group failed', error);
    }
    // The kernel or the interface's driver does not do UDP GSO: send plain datagrams from now on.
    this.#segment = false;
    try {
      return this.#binding.udpSend(this.#fd, slab, layout, first, count, target.addressNumber, target.port, false);
    } catch (error) {
      throw ioError('sending to the group failed', error);
    }
  }

  /**
   * Moves queued messages into slots [first, first + count) of `slab` (slot i at i * stride) with
   * one call, without waiting, and returns how many; lengths[i] gets each length, stride + 1 for a
   * truncated message. With `segments`, segments[i] gets a GRO message's datagram size (0: the
   * message is one datagram).
   */
  receive(slab: Uint8Array, stride: number, lengths: Uint32Array, first: number, count: number, segments: Uint32Array | null = null): number {
    if (!(slab instanceof Uint8Array)) throw new TypeError('slab must be a Uint8Array');
    if (!(lengths instanceof Uint32Array)) throw new TypeError('lengths must be a Uint32Array');
    if (!Number.isInteger(stride) || stride < 1 || stride > UDP_SLOT_BYTES_MAX) throw new RangeError(`stride must be an integer between 1 and ${UDP_SLOT_BYTES_MAX}, got ${stride}`);
    requireIndex(first, 'first');
    requireIndex(count, 'count');
    if (count > this.batchMax) throw new RangeError(`count must be at most ${this.batchMax}, got ${count}`);
    const slots = Math.min(Math.floor(slab.byteLength / stride), lengths.length);
    if (first + count > slots) throw new RangeError(`first + count (${first + count}) exceeds the slab's ${slots} slots`);
    if (segments !== null && (!(segments instanceof Uint32Array) || first + count > segments.length)) {
      throw new RangeError(`segments must be a Uint32Array of at least first + count (${first + count}) numbers`);
    }
    try {
      return this.#binding.udpReceive(this.#fd, slab, stride, lengths, first, count, segments);
    } catch (error) {
      throw ioError('receiving from the group failed', error);
    }
  }
}

/** A group as the native send takes it: the IPv4 address as an unsigned 32-bit number. */
export interface GroupTarget {
  readonly addressNumber: number;
  readonly port: number;
}

export function groupTarget(group: MulticastGroup): GroupTarget {
  if (!isIPv4(group.address)) throw new TypeError(`group address must be an IPv4 address, got "${group.address}"`);
  const addressNumber = group.address.split('.').reduce((value, part) => value * 256 + Number(part), 0);
  return { addressNumber, port: group.port };
}

/**
 * The batched calls for `socket` (which must be bound), or null when mode is 'dgram', or when
 * mode is 'auto' and they are unavailable. Mode 'native' without them is an E_IO error saying why.
 * `purpose` 'receive' also needs the addon's receive watch (BatchSocket.watchReadable).
 */
export function openBatchSocket(socket: dgram.Socket, mode: IoMode, purpose: 'send' | 'receive' = 'send'): BatchSocket | null {
  if (mode === 'dgram') return null;
  const unavailable = (why: string): null => {
    if (mode === 'native') throw new SealcastError('E_IO', `native batched UDP I/O is unavailable: ${why} (use SEALCAST_IO=dgram or --io dgram)`);
    return null;
  };
  let binding: UdpBinding;
  try {
    binding = loadNativeBinding() as unknown as UdpBinding;
  } catch (error) {
    return unavailable((error as Error).message);
  }
  if (typeof binding.udpSend !== 'function' || typeof binding.udpReceive !== 'function' || typeof binding.udpCheckSocket !== 'function') {
    return unavailable('the addon was built without it (run `npm run build:native`)');
  }
  if (!binding.UDP_BATCH_SUPPORTED) return unavailable(`it needs Linux, this is ${process.platform}`);
  if (purpose === 'receive' && typeof binding.UdpReadWatch !== 'function') return unavailable('the addon was built without the receive watch (run `npm run build:native`)');
  const fd = socketFd(socket);
  if (fd === undefined) return unavailable("the socket's file descriptor is not available");
  try {
    binding.udpCheckSocket(fd);
  } catch (error) {
    return unavailable(`descriptor ${fd} is not a usable UDP socket: ${(error as Error).message}`);
  }
  return new BatchSocket(binding, fd);
}

/**
 * The descriptor of a bound dgram socket, from Node's internal handle (its `fd` on Linux), or
 * undefined when this Node keeps it elsewhere. The handle is read through the socket's internal
 * state rather than the deprecated `_handle` accessor, which would print a warning.
 */
export function socketFd(socket: dgram.Socket): number | undefined {
  const fd = socketHandle(socket)?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/** What batched I/O uses of node:dgram's internal UDP handle. */
interface UdpHandle {
  readonly fd?: unknown;
  recvStop?(): number;
}

function socketHandle(socket: dgram.Socket): UdpHandle | undefined {
  const state = Object.getOwnPropertySymbols(socket)
    .filter((symbol) => symbol.description === 'state symbol')
    .map((symbol) => (socket as unknown as Record<symbol, unknown>)[symbol])[0] as { handle?: UdpHandle | null } | undefined;
  const handle = typeof state === 'object' && state !== null ? state.handle : undefined;
  return typeof handle === 'object' && handle !== null ? handle : undefined;
}

function requireIndex(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}

function ioError(what: string, error: unknown): Error {
  // Argument errors the addon found are bugs in the caller: pass them on unchanged.
  if (error instanceof TypeError || error instanceof RangeError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new SealcastError('E_IO', `${what}: ${message}`, { cause: error });
}
