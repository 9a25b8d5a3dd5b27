// The Receiver's options, what it reports, and the defaults and checks that turn the options a
// caller gives into the complete set the receiver runs with. Kept apart from receiver.ts so the
// receive logic reads without the option plumbing.

import type { CryptoBackend } from '../crypto/backend.js';
import type { PacketKeyLookup } from '../keys/packet-keys.js';
import { DATAGRAM_BYTES_MAX, SESSION_ID_BYTES } from '../packet/format.js';
import { requireIoMode, type IoMode } from './batch-io.js';
import { DEFAULT_INTERFACE, type MulticastGroup } from './multicast.js';
import { DEFAULT_OUTPUT_QUEUE_BYTES_MAX } from './output.js';
import type { ByteRange } from './reorder.js';

export const DEFAULT_IDLE_TIMEOUT_MS = 5_000;
export const DEFAULT_END_GRACE_MS = 1_000;
export const DEFAULT_START_SETTLE_MS = 200;
export const DEFAULT_WRONG_KEY_PACKETS = 64;
export const DEFAULT_REORDER_PACKETS = 8_192;
/**
 * With repair the window also holds what arrives while a hole waits for its repair (a round
 * trip, or several when a repair is lost too): at 375 MB/s, 65 536 datagrams of 1400 bytes are a
 * quarter of a second. Its bytes are bounded too (REORDER_HELD_BYTES_MAX_WITH_REPAIR).
 */
export const DEFAULT_REORDER_PACKETS_WITH_REPAIR = 65_536;
export const REORDER_HELD_BYTES_MAX = 64 * 1024 * 1024;
export const REORDER_HELD_BYTES_MAX_WITH_REPAIR = 128 * 1024 * 1024;
export const DEFAULT_RECEIVE_SLAB_BYTES = 1024 * 1024;
export const DEFAULT_RECEIVE_SLAB_SLOTS = 512;
export const DEFAULT_REPAIR_TIMEOUT_MS = 5_000;
export interface ReceiverOptions {
  backend: CryptoBackend;
  /** Finds the packet key for (session, epoch, suite); replace it live with setKeyLookup(). */
  keys: PacketKeyLookup;
  group: MulticastGroup;
  interfaceAddress?: string;
  /** Accept only this session; by default the first session whose packet authenticates. */
  sessionId?: Uint8Array;
  recvBufferBytes?: number;
  /** Give up when no packet authenticates this long after listening began; 0 waits forever. */
  startTimeoutMs?: number;
  /** Give up when no packet authenticates this long once the stream began. */
  idleTimeoutMs?: number;
  /** After END, how long missing packets may still arrive (late, reordered) before it is a gap. */
  endGraceMs?: number;
  /**
   * A receiver whose first packet is not at offset 0 waits this long for earlier packets (they
   * may merely be reordered) before it starts mid-stream at the lowest offset it holds.
   */
  startSettleMs?: number;
  /** Failed packets, with none authenticated, after which the key is declared wrong. */
  wrongKeyPackets?: number;
  /**
   * Out-of-order packets the reorder window holds. Without repair, more is a gap (E_GAP); with
   * repair, packets beyond it are dropped (counted as beyondWindow) and asked for again later.
   */
  reorderPacketsMax?: number;
  /**
   * Loss repair: called with the byte ranges this receiver is missing (ascending, at most 64; a
   * range ending at Number.MAX_SAFE_INTEGER asks for everything after a point, END included).
   * The repaired packets are expected on the group. Without it, a hole is an E_GAP at once.
   */
  requestRepair?: (ranges: ByteRange[]) => void;
  /**
   * With requestRepair: called (at most every 100 ms) while the output is far behind and new
   * packets are being dropped, to ask the sender to lower its rate.
   */
  requestSlowDown?: () => void;
  /**
   * Flow control: called (at most every 5 ms while packets arrive, and every 100 ms regardless)
   * with one past the furthest stream byte this receiver has accepted, less what its output has
   * waiting beyond a quarter of its queue, so the sender can keep new data within reach of it.
   */
  reportProgress?: (offset: number) => void;
  /** With requestRepair: how long the output may stay stuck at a hole before it is E_GAP. */
  repairTimeoutMs?: number;
  /**
   * With requestRepair: this receiver was subscribed before the stream began, so bytes before
   * its first packet were lost and are asked for. Otherwise (the default) a first packet past
   * offset 0 means it joined mid-stream, and it starts there.
   */
  subscribedFromStart?: boolean;
  slabBytes?: number;
  slabSlots?: number;
  outputQueueBytesMax?: number;
  /**
   * 'native' drains the socket with recvmmsg through the addon each time node:dgram reports a
   * datagram; 'dgram' takes one 'message' event per datagram; 'auto' (the default) is native
   * when the addon offers it.
   */
  io?: IoMode;
  /**
   * With native I/O, take a GSO send that arrives whole (loopback, veth, a bridge) as one message
   * of up to 64 datagrams (receive-side UDP GRO, Linux 5.0) instead of one datagram at a time;
   * default true. Without kernel support it is off whatever this says.
   */
  gro?: boolean;
  signal?: AbortSignal;
}

export interface DropCounts {
  /** Not a well-formed sealcast packet (short, truncated, garbage, bad fields). */
  malformed: number;
  /** The tag did not verify: wrong key, flipped bits, forgery. */
  authFailed: number;
  /** A well-formed packet of another session than the one being received. */
  otherSession: number;
  /** No key for the packet's session/epoch. */
  noKey: number;
  /** Already delivered or held: duplicates and replays. */
  duplicate: number;
  /** A type this version does not process yet (reserved types). */
  unsupported: number;
  /** With repair: authenticated, but further ahead of a hole than the reorder window holds (asked for again). */
  beyondWindow: number;
  /** With repair: authenticated while the output was far behind (asked for again once it caught up). */
  outputBehind: number;
}

export interface ReceiveStats {
  sessionId: string | null;
  suite: string | null;
  /** Stream offset of the first byte written (0 unless this receiver joined mid-stream). */
  startOffset: number | null;
  bytes: number;
  datagrams: number;
  authenticated: number;
  drops: DropCounts;
  recvBufferBytes: number;
  totalBytes: number | null;
  durationMs: number;
  /** Repair requests sent and the stream bytes they named (0 without repair). */
  repairRequests: number;
  repairBytesRequested: number;
  /** The I/O path in use: 'native' (batched system calls) or 'dgram'; null before listening. */
  io: 'native' | 'dgram' | null;
  /** Whether receive-side UDP GRO is on (native I/O only). */
  gro: boolean;
}

export type ReceiveOutcome = 'complete' | 'partial';

export interface ReceiveResult extends ReceiveStats {
  outcome: ReceiveOutcome;
  sha256: string;
}

/** Every option with its default applied and checked. */
type OptionalCallbacks = 'requestRepair' | 'requestSlowDown' | 'reportProgress';
export type NormalizedReceiverOptions = Required<Omit<ReceiverOptions, 'sessionId' | 'signal' | 'recvBufferBytes' | OptionalCallbacks>> &
  Pick<ReceiverOptions, 'sessionId' | 'signal' | 'recvBufferBytes' | OptionalCallbacks>;

/** Applies the defaults and checks every option (TypeError/RangeError naming the option). */
export function normalizeReceiverOptions(options: ReceiverOptions): NormalizedReceiverOptions {
  if (typeof options.keys !== 'function') throw new TypeError('keys must be a PacketKeyLookup function');
  if (options.sessionId !== undefined && (!(options.sessionId instanceof Uint8Array) || options.sessionId.byteLength !== SESSION_ID_BYTES)) {
    throw new RangeError(`sessionId must be ${SESSION_ID_BYTES} bytes`);
  }
  if (options.requestRepair !== undefined && typeof options.requestRepair !== 'function') throw new TypeError('requestRepair must be a function');
  if (options.requestSlowDown !== undefined && typeof options.requestSlowDown !== 'function') throw new TypeError('requestSlowDown must be a function');
  if (options.reportProgress !== undefined && typeof options.reportProgress !== 'function') throw new TypeError('reportProgress must be a function');
  return {
    backend: options.backend,
    keys: options.keys,
    group: options.group,
    interfaceAddress: options.interfaceAddress ?? DEFAULT_INTERFACE,
    sessionId: options.sessionId,
    recvBufferBytes: options.recvBufferBytes,
    startTimeoutMs: requireMs(options.startTimeoutMs ?? 0, 'startTimeoutMs'),
    idleTimeoutMs: requireMs(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, 'idleTimeoutMs', 1),
    startSettleMs: requireMs(options.startSettleMs ?? DEFAULT_START_SETTLE_MS, 'startSettleMs'),
    endGraceMs: requireMs(options.endGraceMs ?? DEFAULT_END_GRACE_MS, 'endGraceMs'),
    wrongKeyPackets: requireCountOption(options.wrongKeyPackets ?? DEFAULT_WRONG_KEY_PACKETS, 'wrongKeyPackets'),
    reorderPacketsMax: requireCountOption(
      options.reorderPacketsMax ?? (options.requestRepair !== undefined ? DEFAULT_REORDER_PACKETS_WITH_REPAIR : DEFAULT_REORDER_PACKETS),
      'reorderPacketsMax',
    ),
    slabBytes: Math.max(options.slabBytes ?? DEFAULT_RECEIVE_SLAB_BYTES, DATAGRAM_BYTES_MAX),
    slabSlots: requireCountOption(options.slabSlots ?? DEFAULT_RECEIVE_SLAB_SLOTS, 'slabSlots'),
    outputQueueBytesMax: options.outputQueueBytesMax ?? DEFAULT_OUTPUT_QUEUE_BYTES_MAX,
    io: requireIoMode(options.io ?? 'auto'),
    gro: requireBooleanOption(options.gro ?? true, 'gro'),
    requestRepair: options.requestRepair,
    requestSlowDown: options.requestSlowDown,
    reportProgress: options.reportProgress,
    repairTimeoutMs: requireMs(options.repairTimeoutMs ?? DEFAULT_REPAIR_TIMEOUT_MS, 'repairTimeoutMs', 1),
    subscribedFromStart: options.subscribedFromStart ?? false,
    signal: options.signal,
  };
}

export function describeDrops(drops: DropCounts): string {
  const parts = Object.entries(drops)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${count}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}


function requireMs(value: number, name: string, min = 0): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`${name} must be a number of milliseconds >= ${min}, got ${value}`);
  return value;
}

function requireBooleanOption(value: boolean, name: string): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${typeof value}`);
  return value;
}

function requireCountOption(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
