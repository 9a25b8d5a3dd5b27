// The Sender's options: what a caller may set, the defaults, and the checks at the library
// boundary (TypeError/RangeError/SealcastError naming the option), so that sender.ts holds only
// the sending itself.

import { randomBytes } from 'node:crypto';
import type { AeadKey, CryptoBackend, PacketBatch, WireSuiteName } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { PacketKeySource } from '../keys/packet-keys.js';
import type { AeadPool } from '../pool/pool.js';
import { requireDatagramBytes, SESSION_ID_BYTES } from '../packet/format.js';
import { requireIoMode, type IoMode } from './batch-io.js';
import { defaultTtl, DEFAULT_INTERFACE, type MulticastGroup } from './multicast.js';

/** Seals one batch with one key. The default seals on the calling thread; a pool may do it elsewhere. */
export type BatchSealer = (key: AeadKey, batch: PacketBatch) => void | Promise<void>;

export const directSealer: BatchSealer = (key, batch) => key.sealBatch(batch);

/**
 * The default rate with batched I/O and the native backend (README, "Rate and buffers":
 * measured clean to two receivers on a busy 2-core machine). Plain node:dgram costs a receiver
 * about twice the CPU per datagram and the WASM backend opens packets more slowly, so on either
 * the default stays at the rate measured for plain node:dgram.
 */
export const DEFAULT_RATE_BITS_PER_SECOND = 300_000_000;
export const DEFAULT_PLAIN_RATE_BITS_PER_SECOND = 150_000_000;
export const DEFAULT_SLAB_SLOTS = 512;
/** Slabs of about 2 MiB: 512 slots of 1400 bytes, fewer of jumbo datagrams, so memory stays small. */
const SLAB_BYTES_TARGET = 2 * 1024 * 1024;

export function defaultSlabSlots(datagramBytes: number): number {
  return Math.max(16, Math.min(DEFAULT_SLAB_SLOTS, Math.floor(SLAB_BYTES_TARGET / datagramBytes)));
}
export const DEFAULT_SLAB_COUNT = 4;
export const DEFAULT_END_REPEATS = 5;
export const DEFAULT_END_SPACING_MS = 5;
/** After END, how long the sender keeps answering repair requests once they stop coming. */
export const DEFAULT_REPAIR_LINGER_MS = 1_000;

export interface SenderOptions {
  backend: CryptoBackend;
  suite: WireSuiteName;
  /**
   * Read once per slab: a change of epoch and key takes effect at the next slab. Give either
   * `keys` (with the `sessionId` they were derived for) or `dataKey`.
   */
  keys?: PacketKeySource;
  /**
   * The data key of epoch 0 (at least 16 bytes; the Sender keeps a copy until send() ends and
   * zeroes it). The Sender derives its packet key for its session id itself.
   */
  dataKey?: Uint8Array;
  /**
   * 8 bytes the packet keys are bound to. Required with `keys`. With `dataKey` leave it out: the
   * Sender then draws a random one, so two Senders with one data key never share a packet key.
   * Either way, a packet key (same key bytes and epoch) already sealing in, or having sealed
   * for, another Sender of this process is refused with E_KEY when send() starts.
   */
  sessionId?: Uint8Array;
  group: MulticastGroup;
  interfaceAddress?: string;
  /** Default: 0 on loopback, 1 elsewhere. */
  ttl?: number;
  /** Datagram size: header + payload + tag. */
  datagramBytes?: number;
  /** Default: DEFAULT_RATE_BITS_PER_SECOND with batched I/O and the native backend, else DEFAULT_PLAIN_RATE_BITS_PER_SECOND. */
  rateBitsPerSecond?: number;
  slabSlots?: number;
  slabCount?: number;
  endRepeats?: number;
  endSpacingMs?: number;
  sealer?: BatchSealer;
  /**
   * Loss repair: datagram bytes of sent ciphertext kept to answer requestRepair(). The default, 0,
   * keeps nothing, and every request is answered "unavailable".
   */
  repairWindowBytes?: number;
  /**
   * After END, how long send() keeps answering repair requests once they stop coming (default
   * DEFAULT_REPAIR_LINGER_MS; finishRepairs() ends it sooner). Only with a repair window.
   */
  repairLingerMs?: number;
  /**
   * Flow control: new data may run at most this many bytes ahead of the slowest receiver that
   * reports its progress (reportProgress). 0, the default, turns it off.
   */
  flowWindowBytes?: number;
  /**
   * 'native' sends each chunk of a slab with one sendmmsg through the addon; 'dgram' one
   * socket.send per datagram; 'auto' (the default) is native when the addon offers it.
   */
  io?: IoMode;
  /**
   * Seal on these worker threads instead of the main thread, with the key source's poolKey.
   * Slabs then live in SharedArrayBuffers so the workers seal them in place.
   */
  pool?: AeadPool;
  signal?: AbortSignal;
}

export interface SendStats {
  sessionId: string;
  suite: WireSuiteName;
  backend: string;
  bytes: number;
  dataPackets: number;
  datagramsSent: number;
  datagramBytes: number;
  rateBitsPerSecond: number;
  startedAtMs: number;
  durationMs: number;
  sha256: string | null;
  /** The I/O path in use: 'native' (batched system calls) or 'dgram'; null before sending. */
  io: 'native' | 'dgram' | null;
  /** Repair requests received, datagrams sent again for them, and requested bytes no longer held. */
  repairRequests: number;
  repairDatagramsSent: number;
  repairUnavailableBytes: number;
  /** Reports from receivers that could not keep up (reportSlowReceiver). */
  slowDownReports: number;
  /** Milliseconds new data waited for the slowest receiver (flow control). */
  flowWaitMs: number;
  /** The lowest pacing rate that rate adaptation went down to (the configured rate if never). */
  rateBitsPerSecondLowest: number;
}

/** The options with every default applied and every value checked. */
export type NormalizedSenderOptions = Required<Omit<SenderOptions, 'signal' | 'ttl' | 'interfaceAddress' | 'pool' | 'rateBitsPerSecond' | 'keys' | 'dataKey' | 'sessionId'>> & {
  signal?: AbortSignal;
  ttl: number;
  interfaceAddress: string;
  pool?: AeadPool;
  sessionId: Uint8Array;
  /** Null until send() derived them, when the caller gave a data key. */
  keys: PacketKeySource | null;
};

/**
 * Applies the defaults and checks every option. The rate is returned apart: when the caller gave
 * none, the Sender fixes it once it knows its I/O path. The caller's data key is not copied here.
 */
export function normalizeSenderOptions(options: SenderOptions): { normalized: NormalizedSenderOptions; rateBitsPerSecond: number; rateGiven: boolean } {
  const datagramBytes = options.datagramBytes ?? 1400;
  requireDatagramBytes(datagramBytes);
  if ((options.keys === undefined) === (options.dataKey === undefined)) {
    throw new TypeError('give the Sender exactly one of keys (a PacketKeySource) and dataKey');
  }
  if (options.dataKey !== undefined && (!(options.dataKey instanceof Uint8Array) || options.dataKey.byteLength < 16)) {
    throw new RangeError(`dataKey must be a Uint8Array of at least 16 bytes, got ${options.dataKey instanceof Uint8Array ? `${options.dataKey.byteLength} bytes` : typeof options.dataKey}`);
  }
  if (options.keys !== undefined && options.sessionId === undefined) {
    throw new TypeError('a Sender given keys needs the sessionId they were derived for; or give dataKey and let the Sender draw the session id');
  }
  const sessionId = options.sessionId ?? randomBytes(SESSION_ID_BYTES);
  if (!(sessionId instanceof Uint8Array) || sessionId.byteLength !== SESSION_ID_BYTES) {
    throw new RangeError(`sessionId must be ${SESSION_ID_BYTES} bytes`);
  }
  if (!options.backend.suites.includes(options.suite)) {
    throw new SealcastError('E_BACKEND', `suite ${options.suite} is not available on the ${options.backend.name} backend (it offers ${options.backend.suites.join(', ')})`);
  }
  const rate = options.rateBitsPerSecond ?? DEFAULT_RATE_BITS_PER_SECOND;
  if (!(rate > 0) || !Number.isFinite(rate)) throw new SealcastError('E_ARG', `rate must be a positive number of bits per second, got ${rate}`);
  const interfaceAddress = options.interfaceAddress ?? DEFAULT_INTERFACE;
  const normalized: NormalizedSenderOptions = {
    backend: options.backend,
    suite: options.suite,
    keys: options.keys ?? null,
    sessionId: new Uint8Array(sessionId),
    group: options.group,
    interfaceAddress,
    ttl: options.ttl ?? defaultTtl(interfaceAddress),
    datagramBytes,
    slabSlots: requirePositive(options.slabSlots ?? defaultSlabSlots(datagramBytes), 'slabSlots', 65_536),
    slabCount: requirePositive(options.slabCount ?? DEFAULT_SLAB_COUNT, 'slabCount', 64),
    endRepeats: requirePositive(options.endRepeats ?? DEFAULT_END_REPEATS, 'endRepeats', 100),
    repairWindowBytes: requireNonNegative(options.repairWindowBytes ?? 0, 'repairWindowBytes', 4 * 1024 * 1024 * 1024),
    repairLingerMs: requireNonNegative(options.repairLingerMs ?? DEFAULT_REPAIR_LINGER_MS, 'repairLingerMs', 600_000),
    flowWindowBytes: requireNonNegative(options.flowWindowBytes ?? 0, 'flowWindowBytes', 4 * 1024 * 1024 * 1024),
    endSpacingMs: options.endSpacingMs ?? DEFAULT_END_SPACING_MS,
    sealer: options.sealer ?? directSealer,
    io: requireIoMode(options.io ?? 'auto'),
    pool: options.pool,
    signal: options.signal,
  };
  return { normalized, rateBitsPerSecond: rate, rateGiven: options.rateBitsPerSecond !== undefined };
}

function requireNonNegative(value: number, name: string, max: number): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) throw new RangeError(`${name} must be an integer between 0 and ${max}, got ${value}`);
  return value;
}

function requirePositive(value: number, name: string, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new RangeError(`${name} must be an integer between 1 and ${max}, got ${value}`);
  return value;
}
