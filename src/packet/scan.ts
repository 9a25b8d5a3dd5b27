// The receive path's header scan: one native call checks the headers of a whole drain of receive
// slots (native/packet_scan.h) and writes, per slot, a status and the numbers the receiver needs,
// plus the AEAD batch layout and nonce. It replaces decodeHeader() per datagram on the batched
// path, where building a header object for every datagram cost more than opening it.
//
// The scan decides nothing about trust: the header is the AEAD's AAD, so what it reports only
// picks a key and nonce to try, or drops a datagram early. Its verdicts equal decodeHeader()'s
// for every input, which test/packet/scan.test.ts checks on random and mutated datagrams.

import type { AeadKey, BackendConstants, PacketBatch } from '../crypto/backend.js';
import { loadNativeBackend, loadNativeBinding, nativeKeyHandle } from '../crypto/native.js';
import { validateBatch, viewsOverlap } from '../crypto/validate.js';
import { SealcastError } from '../errors.js';
import { HEADER_BYTES, KNOWN_TYPE_VALUES, PACKET_MAGIC, PACKET_VERSION, PacketType, SUITE_IDS, type DecodeFailure } from './format.js';

/** Scan statuses: 0 is ok; the rest are DecodeFailure reasons, another session, or truncated. */
export interface ScanStatusCodes {
  readonly ok: number;
  readonly short: number;
  readonly magic: number;
  readonly version: number;
  readonly type: number;
  readonly suite: number;
  readonly flags: number;
  readonly length: number;
  readonly range: number;
  readonly otherSession: number;
  readonly truncated: number;
}

/** Where each number sits in a slot's run of `fieldCount` doubles. */
export const ScanField = {
  status: 0,
  type: 1,
  suite: 2,
  epoch: 3,
  sequence: 4,
  streamOffset: 5,
  payloadBytes: 6,
} as const;

interface ScanBinding {
  readonly PACKET_HEADER_BYTES: number;
  readonly PACKET_MAGIC: number;
  readonly PACKET_VERSION: number;
  readonly SCAN_FIELDS: number;
  readonly SCAN_STATUS: ScanStatusCodes;
  readonly LAYOUT_WORDS: number;
  readonly NONCE_BYTES: number;
  scanPackets(
    slab: Uint8Array,
    stride: number,
    lengths: Uint32Array,
    first: number,
    count: number,
    session: Uint8Array | null,
    knownTypes: number,
    knownSuites: number,
    fields: Float64Array,
    layout: Uint32Array,
    nonces: Uint8Array,
    segments?: Uint32Array | null,
    countsOut?: Float64Array | null,
  ): number;
  /** Why an in-order open ended; absent from addons without it. */
  readonly IN_ORDER_STOP?: InOrderStopCodes;
  /** Present in addons whose scan takes GRO messages (segments); absent from older builds. */
  udpEnableGro?: unknown;
  gatherInOrder(
    slab: Uint8Array,
    layout: Uint32Array,
    status: Uint8Array,
    first: number,
    count: number,
    statusOk: number,
    dataType: number,
    nextOffset: number,
    target: Uint8Array,
    targetStart: number,
    targetEnd: number,
    bytesOut: Float64Array,
  ): number;
}

/** What one scan of GRO messages found. */
export interface ScanCounts {
  /** Entries written (one per datagram), from `first` on. */
  entries: number;
  /** Entries whose header passed. */
  accepted: number;
  /** Datagrams that found no entry (the target was full); the caller counts them as dropped. */
  overflow: number;
}

/** What one in-order gather copied. */
export interface GatherResult {
  /** Packets copied, from `first` on. */
  packets: number;
  /** Payload bytes copied to the target from `targetStart` on. */
  bytes: number;
}

/** Why an in-order open ended (native/open_in_order.h, InOrderStop). */
export interface InOrderStopCodes {
  /** Every packet from `first` on went to the target. */
  readonly batchEnd: number;
  /** The next packet needs the receiver's judgement (not DATA, empty, or not next); it is untouched. */
  readonly judgement: number;
  /** The next packet continues the stream but does not fit; it is untouched. */
  readonly targetFull: number;
  /** The next packet continued the stream but did not authenticate; its status says so. */
  readonly authFailed: number;
}

/** What one in-order open did. */
export interface InOrderOpenResult extends GatherResult {
  /** Why it ended: one of HeaderScanner.inOrderStop's codes. */
  stop: number;
  /** With stop === targetFull: the room the packet that did not fit needs. */
  needBytes: number;
}

/** One receive slab's scan outputs, sized for `slots` slots. */
export interface ScanTarget {
  readonly fields: Float64Array;
  readonly layout: Uint32Array;
  readonly nonces: Uint8Array;
}

const SLOT_STRIDE_BYTES_MAX = 65_536;

const KNOWN_TYPES_MASK = KNOWN_TYPE_VALUES.reduce((mask, type) => mask | (1 << type), 0);
const KNOWN_SUITES_MASK = Object.values(SUITE_IDS).reduce((mask, id) => mask | (1 << id), 0);

export class HeaderScanner {
  /** Doubles per slot in `fields`. */
  readonly fieldCount: number;
  readonly status: ScanStatusCodes;
  readonly #binding: ScanBinding;
  readonly #layoutWords: number;
  readonly #nonceBytes: number;
  /** The status code of each DecodeFailure, for callers that count drops by reason. */
  readonly #failureByStatus: Map<number, DecodeFailure | 'otherSession' | 'truncated'>;
  readonly #gatheredBytes = new Float64Array(1);
  /** Whether this addon has the in-order gather (an older build may lack it). */
  readonly canGather: boolean;
  /** Whether this addon's scan takes GRO messages (scanMessages); an older build may lack it. */
  readonly canSegment: boolean;
  readonly #counts = new Float64Array(3);
  /** Why an in-order open ended, or null when this addon cannot open in order. */
  readonly inOrderStop: InOrderStopCodes | null;
  readonly #inOrderOut = new Float64Array(4);
  #backendConstants: BackendConstants | null = null;

  constructor(binding: ScanBinding) {
    this.#binding = binding;
    this.fieldCount = binding.SCAN_FIELDS;
    this.status = Object.freeze({ ...binding.SCAN_STATUS });
    this.#layoutWords = binding.LAYOUT_WORDS;
    this.#nonceBytes = binding.NONCE_BYTES;
    this.canGather = typeof binding.gatherInOrder === 'function';
    this.canSegment = typeof binding.udpEnableGro === 'function';
    this.inOrderStop = binding.IN_ORDER_STOP === undefined ? null : Object.freeze({ ...binding.IN_ORDER_STOP });
    this.#failureByStatus = new Map(
      (Object.entries(this.status) as Array<[keyof ScanStatusCodes, number]>)
        .filter(([name]) => name !== 'ok')
        .map(([name, code]) => [code, name as DecodeFailure | 'otherSession' | 'truncated']),
    );
  }

  /** Allocates outputs for `slots` slots. */
  createTarget(slots: number): ScanTarget {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer, got ${slots}`);
    return {
      fields: new Float64Array(slots * this.fieldCount),
      layout: new Uint32Array(slots * this.#layoutWords),
      nonces: new Uint8Array(slots * this.#nonceBytes),
    };
  }

  /** The reason a non-ok status stands for. */
  failure(status: number): DecodeFailure | 'otherSession' | 'truncated' | undefined {
    return this.#failureByStatus.get(status);
  }

  /**
   * Scans slots [first, first + count) of `slab` (slot i at i * stride, lengths[i] bytes; a
   * length above stride means truncated) and returns how many passed. A `session` of null lets
   * any session pass.
   */
  scan(slab: Uint8Array, stride: number, lengths: Uint32Array, first: number, count: number, session: Uint8Array | null, target: ScanTarget): number {
    const end = checkSlots(slab, stride, lengths, first, count, session);
    if (end > lengths.length) throw new RangeError(`first + count (${end}) exceeds lengths (${lengths.length})`);
    if (end * this.fieldCount > target.fields.length || end * this.#layoutWords > target.layout.length || end * this.#nonceBytes > target.nonces.byteLength) {
      throw new RangeError(`first + count (${end}) exceeds the scan target`);
    }
    return this.#binding.scanPackets(slab, stride, lengths, first, count, session, KNOWN_TYPES_MASK, KNOWN_SUITES_MASK, target.fields, target.layout, target.nonces);
  }

  /**
   * Like scan(), for receive slots that may each hold a GRO message: slot i holds lengths[i]
   * bytes of datagrams of segments[i] bytes back to back (0: one datagram). Every datagram gets
   * an entry of its own in `target`, from entry `first` on, with its slab offset in its layout;
   * datagrams beyond the target's capacity get none. Returns the entries written and fills
   * `counts`.
   */
  scanMessages(
    slab: Uint8Array,
    stride: number,
    lengths: Uint32Array,
    segments: Uint32Array,
    first: number,
    count: number,
    session: Uint8Array | null,
    target: ScanTarget,
    counts: ScanCounts,
  ): number {
    if (!this.canSegment) throw new SealcastError('E_BACKEND', 'this build of the addon cannot scan GRO messages; rebuild it (npm run build:native)');
    if (!(segments instanceof Uint32Array)) throw new TypeError('segments must be a Uint32Array');
    const end = checkSlots(slab, stride, lengths, first, count, session);
    if (end > lengths.length || end > segments.length) throw new RangeError(`first + count (${end}) exceeds lengths (${lengths.length}) or segments (${segments.length})`);
    if (first * this.fieldCount > target.fields.length || first * this.#layoutWords > target.layout.length || first * this.#nonceBytes > target.nonces.byteLength) {
      throw new RangeError(`first (${first}) exceeds the scan target`);
    }
    const countsOut = this.#counts;
    this.#binding.scanPackets(slab, stride, lengths, first, count, session, KNOWN_TYPES_MASK, KNOWN_SUITES_MASK, target.fields, target.layout, target.nonces, segments, countsOut);
    counts.accepted = countsOut[0];
    counts.entries = countsOut[1];
    counts.overflow = countsOut[2];
    return counts.entries;
  }

  /**
   * After a batch was opened (`layout` and `status` as the open left them): copies the payloads
   * of packets `first`, `first + 1`, ... into `target[targetStart, targetEnd)` for as long as
   * each opened, is a non-empty DATA packet starting at the next stream offset (the first at
   * `nextOffset`), and fits. Fills `result` with the packets and bytes copied. What it stops at
   * is left to the caller. The headers it reads were authenticated by the open.
   */
  gatherInOrder(
    slab: Uint8Array,
    layout: Uint32Array,
    status: Uint8Array,
    first: number,
    count: number,
    statusOk: number,
    nextOffset: number,
    target: Uint8Array,
    targetStart: number,
    targetEnd: number,
    result: GatherResult,
  ): void {
    if (!(slab instanceof Uint8Array)) throw new TypeError('slab must be a Uint8Array');
    if (!(layout instanceof Uint32Array)) throw new TypeError('layout must be a Uint32Array');
    if (!(status instanceof Uint8Array)) throw new TypeError('status must be a Uint8Array');
    if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
    if (!Number.isInteger(first) || first < 0) throw new RangeError(`first must be a non-negative integer, got ${first}`);
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
    if (first + count > status.length || (first + count) * this.#layoutWords > layout.length) {
      throw new RangeError(`first + count (${first + count}) exceeds the batch (${Math.min(status.length, Math.floor(layout.length / this.#layoutWords))} packets)`);
    }
    if (!Number.isSafeInteger(nextOffset) || nextOffset < 0) throw new RangeError(`nextOffset must be a non-negative safe integer, got ${nextOffset}`);
    if (!Number.isInteger(targetStart) || !Number.isInteger(targetEnd) || targetStart < 0 || targetStart > targetEnd || targetEnd > target.byteLength) {
      throw new RangeError(`targetStart (${targetStart}) and targetEnd (${targetEnd}) must lie within target (${target.byteLength} bytes)`);
    }
    result.packets = this.#binding.gatherInOrder(slab, layout, status, first, count, statusOk, PacketType.DATA, nextOffset, target, targetStart, targetEnd, this.#gatheredBytes);
    result.bytes = this.#gatheredBytes[0];
  }

  /** Whether openInOrder() can use `key`: a native backend key, and an addon that has it. */
  canOpenInOrder(key: AeadKey): boolean {
    return this.inOrderStop !== null && typeof nativeKeyHandle(key)?.openInOrder === 'function';
  }

  /**
   * Before a batch is opened: opens packets `first`, `first + 1`, ... with `key` straight into
   * `target[targetStart, targetEnd)`, for as long as each is a non-empty DATA packet starting at
   * the next stream offset (the first at `nextOffset`), fits, and authenticates; writes each one's
   * status. A packet is written only once its tag verified, so the header fields that chose it
   * are authenticated too. Fills `result`, whose `stop` says what the run ended at; packets from
   * there on are left to the caller, except one that failed (its status says so). Native keys
   * only (canOpenInOrder).
   */
  openInOrder(
    key: AeadKey,
    batch: PacketBatch,
    status: Uint8Array,
    first: number,
    nextOffset: number,
    target: Uint8Array,
    targetStart: number,
    targetEnd: number,
    result: InOrderOpenResult,
  ): void {
    const handle = nativeKeyHandle(key);
    if (handle === null || typeof handle.openInOrder !== 'function' || this.inOrderStop === null) {
      throw new TypeError('openInOrder needs a key of the native backend and an addon that opens in order (see canOpenInOrder)');
    }
    if (key.destroyed) throw new SealcastError('E_CLOSED', 'this AEAD key was destroyed');
    this.#backendConstants ??= loadNativeBackend().constants;
    validateBatch(batch, this.#backendConstants, status);
    if (!(target instanceof Uint8Array)) throw new TypeError('target must be a Uint8Array');
    if (viewsOverlap(target, batch.slab) || viewsOverlap(target, batch.layout) || viewsOverlap(target, batch.nonces) || viewsOverlap(target, status)) {
      throw new RangeError('target must not overlap the batch or its status');
    }
    if (!Number.isInteger(first) || first < 0 || first > batch.count) throw new RangeError(`first must be an integer from 0 to batch.count (${batch.count}), got ${first}`);
    if (!Number.isSafeInteger(nextOffset) || nextOffset < 0) throw new RangeError(`nextOffset must be a non-negative safe integer, got ${nextOffset}`);
    if (!Number.isInteger(targetStart) || !Number.isInteger(targetEnd) || targetStart < 0 || targetStart > targetEnd || targetEnd > target.byteLength) {
      throw new RangeError(`targetStart (${targetStart}) and targetEnd (${targetEnd}) must lie within target (${target.byteLength} bytes)`);
    }
    const out = this.#inOrderOut;
    handle.openInOrder(batch.slab, batch.layout, batch.nonces, batch.count, status, first, PacketType.DATA, nextOffset, target, targetStart, targetEnd, out);
    result.packets = out[0];
    result.bytes = out[1];
    result.stop = out[2];
    result.needBytes = out[3];
  }
}

/** The checks scan() and scanMessages() share; returns first + count. */
function checkSlots(slab: Uint8Array, stride: number, lengths: Uint32Array, first: number, count: number, session: Uint8Array | null): number {
  if (!(slab instanceof Uint8Array)) throw new TypeError('slab must be a Uint8Array');
  if (!(lengths instanceof Uint32Array)) throw new TypeError('lengths must be a Uint32Array');
  if (!Number.isInteger(stride) || stride < 1 || stride > SLOT_STRIDE_BYTES_MAX) {
    throw new RangeError(`stride must be an integer between 1 and ${SLOT_STRIDE_BYTES_MAX}, got ${stride}`);
  }
  if (!Number.isInteger(first) || first < 0) throw new RangeError(`first must be a non-negative integer, got ${first}`);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const end = first + count;
  if (end > Math.floor(slab.byteLength / stride)) throw new RangeError(`first + count (${end}) exceeds the slab's ${Math.floor(slab.byteLength / stride)} slots`);
  if (session !== null && (!(session instanceof Uint8Array) || session.byteLength !== 8)) throw new TypeError('session must be an 8-byte Uint8Array or null');
  return end;
}

let cached: HeaderScanner | null | undefined;

/**
 * The native header scan, or null when the addon is missing or was built without it (the
 * receiver then decodes headers in TypeScript). An addon whose wire constants differ from
 * format.ts is a build error, not a fallback.
 */
export function loadHeaderScanner(): HeaderScanner | null {
  if (cached !== undefined) return cached;
  let binding: ScanBinding;
  try {
    binding = loadNativeBinding() as unknown as ScanBinding;
  } catch {
    cached = null;
    return cached;
  }
  if (typeof binding.scanPackets !== 'function') {
    cached = null;
    return cached;
  }
  if (binding.PACKET_HEADER_BYTES !== HEADER_BYTES || binding.PACKET_MAGIC !== PACKET_MAGIC || binding.PACKET_VERSION !== PACKET_VERSION) {
    throw new SealcastError(
      'E_BACKEND',
      `the addon's wire format (header ${binding.PACKET_HEADER_BYTES} bytes, magic ${binding.PACKET_MAGIC}, version ${binding.PACKET_VERSION}) differs from this library's; rebuild it (npm run build:native)`,
    );
  }
  cached = new HeaderScanner(binding);
  return cached;
}
