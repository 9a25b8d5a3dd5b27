// The receiving half of the data plane: multicast socket -> PacketIntake (receive slab, header
// checks, one openBatch per slab) -> reorder window -> DeliveredStream (chunked output and its
// SHA-256) -> END check. This module decides what authenticated packets mean for the stream:
// where it starts, what is in order, what is missing (and, with loss repair, asks for it
// through repair-requests.ts), when it is complete. Options and results are in
// receiver-options.ts.
//
// Nothing reaches the output before its tag verified, and nothing is written past a hole: the
// output is always an authenticated, contiguous prefix of the stream (from the offset this
// receiver started at).

import type dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { WriteStream } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { SealcastError } from '../errors.js';
import type { PacketKeyLookup } from '../keys/packet-keys.js';
import { decodeEnd, type EndRecord } from '../packet/end.js';
import { DATAGRAM_BYTES_MAX, HEADER_BYTES, HeaderField, PacketType, readU64, SESSION_ID_BYTES, suiteFromId } from '../packet/format.js';
import { openBatchSocket, type BatchSocket } from './batch-io.js';
import { openReceiverSocket } from './multicast.js';
import { DeliveredStream } from './delivered-stream.js';
import { PacketIntake, sameBytes, type InOrderGather, type IntakeHost } from './packet-intake.js';
import { describeDrops, normalizeReceiverOptions, REORDER_HELD_BYTES_MAX, REORDER_HELD_BYTES_MAX_WITH_REPAIR, type NormalizedReceiverOptions, type ReceiveResult, type ReceiveStats, type ReceiverOptions, type DropCounts } from './receiver-options.js';
import { FileOutput } from './file-output.js';
import { OutputWriter } from './output.js';
import { describeRanges, ReorderWindow, type ByteRange } from './reorder.js';
import { NACK_RETRY_MS, RepairRequester } from './repair-requests.js';

const TICK_MS = 100;
/** After a failure, how long the output may take to write what was delivered before it. */
const FAIL_OUTPUT_DRAIN_MS_MAX = 10_000;
/** Bounds the payloads held while the start offset is not yet known (jumbo datagrams are large). */
const BEFORE_START_BYTES_MAX = 16 * 1024 * 1024;
/** With repair the holding area also waits for the start of the stream to be sent again. */
const BEFORE_START_BYTES_MAX_WITH_REPAIR = 64 * 1024 * 1024;
/** While the output is far behind, how often the sender is asked to slow down. */
const SLOW_DOWN_EVERY_MS = 100;
/** Flow control: how often progress is reported while packets arrive (the tick reports it too). */
const PROGRESS_EVERY_MS = 5;
/**
 * Flow control: output waiting beyond a quarter of the output queue is subtracted from the
 * progress reported, so a slow output holds the sender back gradually, before half the queue
 * fills and packets are dropped. (An eighth, capped at 4 MiB, was tried first: writes to a file
 * routinely queue more than that at high rates, and it held jumbo datagrams to 194 MB/s on
 * loopback where a quarter allows about 300.)
 */
const PROGRESS_OUTPUT_SLACK_FRACTION = 0.25;
/** With repair, how long the output may stay far behind (new packets dropped meanwhile) before it is E_IO. */
const OUTPUT_BEHIND_MS_MAX = 10_000;
/** With repair, how long a receiver whose first packet is not at offset 0 waits for the start to be repaired. */
const START_REPAIR_WAIT_MS = 1_000;
const WRONG_KEY_SLOW_PACKETS = 8;
const WRONG_KEY_SLOW_MS = 3_000;
// The options, results and defaults live in receiver-options.ts; importers of this module keep
// finding them here.
export * from './receiver-options.js';

export class Receiver extends EventEmitter {
  readonly #options: NormalizedReceiverOptions;
  #keys: PacketKeyLookup;
  readonly #drops: DropCounts = { malformed: 0, authFailed: 0, otherSession: 0, noKey: 0, duplicate: 0, unsupported: 0, beyondWindow: 0, outputBehind: 0 };
  #authenticated = 0;
  #recvBufferBytes = 0;

  #ioPath: 'native' | 'dgram' | null = null;
  #intake: PacketIntake | null = null;

  #session: Uint8Array | null;
  #suite: string | null = null;
  #window: ReorderWindow | null = null;
  #startOffset: number | null = null;
  #end: EndRecord | null = null;
  readonly #beforeStart = new Map<number, Uint8Array>();
  #beforeStartSinceMs = 0;
  #beforeStartBytes = 0;
  #endAtMs = 0;

  #output: OutputWriter | null = null;
  #stream: DeliveredStream | null = null;
  /** Loss repair (null: a hole is an E_GAP at once). */
  readonly #repair: RepairRequester | null;
  /** When the output last moved forward (or the stream began). */
  #progressAtMs = 0;
  /** One past the furthest stream byte an authenticated DATA packet carried. */
  #seenEnd = 0;
  /** Flow control: one past the furthest byte accepted (not dropped), and when it was last reported. */
  #acceptedEnd = 0;
  #progressReportedAtMs = -Infinity;
  /** With repair: since when the output has been far behind (0: it is not), and when the sender was last asked to slow down. */
  #outputBehindSinceMs = 0;
  #slowDownAskedAtMs = -Infinity;
  /** With repair: whether (and when last) the bytes before the first packet were asked for. */
  #startRequested = false;
  #startRequestedAtMs = 0;

  #socket: dgram.Socket | null = null;
  #ticker: NodeJS.Timeout | null = null;
  #listeningAtMs = 0;
  #lastAuthenticatedAtMs = 0;
  #firstAuthenticatedAtMs = 0;
  #stoppedAtMs = 0;
  #finished = false;
  #settle: { resolve: (result: ReceiveResult) => void; reject: (error: unknown) => void } | null = null;
  #used = false;

  constructor(options: ReceiverOptions) {
    super();
    this.#options = normalizeReceiverOptions(options);
    this.#keys = options.keys;
    this.#session = options.sessionId ? new Uint8Array(options.sessionId) : null;
    const requestRepair = this.#options.requestRepair;
    this.#repair = requestRepair !== undefined ? new RepairRequester(requestRepair) : null;
  }

  /**
   * The sender answered a repair request: it no longer holds these bytes. If any of them is
   * still missing here, the stream cannot be completed: E_GAP naming them.
   */
  repairUnavailable(ranges: readonly ByteRange[]): void {
    if (this.#finished) return;
    if (this.#window === null) {
      // The answer to the request for the stream's beginning: it is gone, so this receiver
      // joined mid-stream and starts at the first byte it holds.
      this.#startFromHeld();
      return;
    }
    const window = this.#window;
    const missing = ranges.filter((range) => range.to > window.nextOffset);
    if (missing.length === 0) return;
    this.#fail(
      new SealcastError(
        'E_GAP',
        `missing ${describeRanges(missing.slice(0, 4))}: the sender no longer holds them (they left its repair window); output stops at byte ${window.nextOffset}, nothing after the gap was written`,
      ),
    );
  }

  /** Replaces the key lookup, e.g. when the control plane delivers a new epoch's key. */
  setKeyLookup(keys: PacketKeyLookup): void {
    if (typeof keys !== 'function') throw new TypeError('keys must be a PacketKeyLookup function');
    this.#keys = keys;
    this.#intake?.setKeyLookup(keys);
  }

  get stats(): ReceiveStats {
    return {
      sessionId: this.#session ? Buffer.from(this.#session).toString('hex') : null,
      suite: this.#suite,
      startOffset: this.#startOffset,
      bytes: this.#stream?.bytes ?? 0,
      datagrams: this.#intake?.datagrams ?? 0,
      authenticated: this.#authenticated,
      drops: { ...this.#drops },
      recvBufferBytes: this.#recvBufferBytes,
      totalBytes: this.#end?.totalBytes ?? null,
      io: this.#ioPath,
      gro: this.#intake?.gro ?? false,
      repairRequests: this.#repair?.stats.requests ?? 0,
      repairBytesRequested: this.#repair?.stats.bytesRequested ?? 0,
      durationMs: this.#firstAuthenticatedAtMs > 0 ? (this.#stoppedAtMs || performance.now()) - this.#firstAuthenticatedAtMs : 0,
    };
  }

  /**
   * Joins the group and writes the stream to `output` until END proves it complete. Resolves
   * with outcome 'complete' (whole stream, digest verified) or 'partial' (joined mid-stream,
   * length verified from the start offset). Rejects with a SealcastError: E_AUTH (wrong key),
   * E_GAP (a hole, naming it), E_VERIFY, E_TIMEOUT, E_IO. Does not end `output`.
   */
  async receive(output: Writable): Promise<ReceiveResult> {
    if (this.#used) throw new SealcastError('E_CLOSED', 'a Receiver receives one session; create a new one');
    this.#used = true;
    const { socket, recvBufferBytes } = await openReceiverSocket({
      group: this.#options.group,
      interfaceAddress: this.#options.interfaceAddress,
      recvBufferBytes: this.#options.recvBufferBytes,
    });
    let batchSocket: BatchSocket | null;
    try {
      batchSocket = openBatchSocket(socket, this.#options.io, 'receive');
    } catch (error) {
      socket.close();
      throw error;
    }
    this.#intake = new PacketIntake(this.#intakeHost, this.#options, this.#drops, this.#keys, batchSocket);
    // Datagrams are taken from here on, but handled only once this method awaits, after the
    // output and the rest are set up below.
    try {
      this.#intake.attach(socket);
    } catch (error) {
      this.#intake.detach(socket);
      socket.close();
      throw error;
    }
    this.#ioPath = batchSocket !== null ? 'native' : 'dgram';
    this.#socket = socket;
    this.#recvBufferBytes = recvBufferBytes;
    this.#output = new OutputWriter(output, this.#options.outputQueueBytesMax);
    this.#stream = new DeliveredStream(this.#output, { reuseChunks: releasesChunksOnCallback(output) });
    const done = new Promise<ReceiveResult>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#listeningAtMs = performance.now();
    socket.on('error', (error) => this.#fail(new SealcastError('E_IO', `the multicast socket failed: ${error.message}`, { cause: error })));
    this.#ticker = setInterval(this.#onTick, TICK_MS);
    const signal = this.#options.signal;
    const onAbort = (): void => this.#fail(new SealcastError('E_CLOSED', 'receiving was stopped'));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    this.#emitSafely('listening', { recvBufferBytes });
    try {
      return await done;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** What the intake sees of this receiver. */
  readonly #intakeHost: IntakeHost = (() => {
    const receiver = this;
    return {
      get finished(): boolean {
        return receiver.#finished;
      },
      get session(): Uint8Array | null {
        return receiver.#session;
      },
      get authenticated(): number {
        return receiver.#authenticated;
      },
      dropBeforeOpen: (type, streamOffset) => this.#dropBeforeOpen(type, streamOffset),
      onAuthenticated: (slab, slotOffset, payloadBytes, sessionChecked) => this.#onAuthenticated(slab, slotOffset, payloadBytes, sessionChecked),
      takeInOrder: (gather, roomBytes) => this.#takeInOrder(gather, roomBytes),
      afterOpen: () => this.#afterOpen(),
      fail: (error) => this.#fail(error),
    };
  })();

  /**
   * The check the intake makes before spending an AEAD open: a DATA packet whose offset was
   * delivered or is held, or a second END, is a duplicate (this covers replays); with repair,
   * new data while the output is far behind is dropped now rather than after opening, and asked
   * for again later. It only drops: an unauthenticated header can never make anything be written
   * (nor move what is asked for: only authenticated packets do that).
   */
  #dropBeforeOpen(type: number, streamOffset: number): boolean {
    if (this.#window === null) return false;
    if (type === PacketType.DATA) {
      const placement = this.#window.place(streamOffset);
      if (placement === 'old' || placement === 'buffered') {
        this.#drops.duplicate++;
        return true;
      }
      if (this.#repair !== null && this.#outputIsBehind() && streamOffset >= this.#window.heldEndOffset) {
        this.#dropForOutput();
        return true;
      }
      return false;
    }
    if (this.#end === null) return false;
    this.#drops.duplicate++;
    return true;
  }

  /** After the intake opened a slab and handed its packets over. */
  #afterOpen(): void {
    this.#deliverHeld();
    // Small writes cost a system call each: output goes out a chunk at a time, or after a short
    // wait (the ticker and completion flush the rest).
    this.#flushOutput(true);
    if (this.#authenticated === 0 && this.#drops.authFailed >= this.#options.wrongKeyPackets) {
      this.#failWrongKey();
      return;
    }
    this.#checkComplete();
    const now = performance.now();
    this.#requestRepairs(now);
    this.#reportProgress(now, PROGRESS_EVERY_MS);
  }

  /** Flow control: reports progress if the last report is at least `everyMs` old. */
  #reportProgress(nowMs: number, everyMs: number): void {
    const report = this.#options.reportProgress;
    if (report === undefined || this.#finished || nowMs - this.#progressReportedAtMs < everyMs) return;
    this.#progressReportedAtMs = nowMs;
    const output = this.#output;
    const outputBacklog = output === null ? 0 : Math.max(0, output.queuedBytes - output.queueBytesMax * PROGRESS_OUTPUT_SLACK_FRACTION);
    try {
      report(Math.max(0, this.#acceptedEnd - outputBacklog));
    } catch (error) {
      this.#failRepairRequest(error);
    }
  }

  /** Asks for missing bytes when a request is due (repair-requests.ts decides). */
  #requestRepairs(nowMs: number): void {
    const repair = this.#repair;
    const window = this.#window;
    if (repair === null || window === null || this.#finished) return;
    // While the output is far behind only the holes among the held packets are asked for: new
    // data after them would only be dropped again.
    const behind = this.#outputIsBehind();
    try {
      if (behind) repair.maybeRequest(nowMs, window, undefined, window.heldEndOffset, 0);
      else repair.maybeRequest(nowMs, window, this.#end?.totalBytes, Math.max(this.#seenEnd, window.nextOffset), nowMs - this.#lastAuthenticatedAtMs);
    } catch (error) {
      this.#failRepairRequest(error);
    }
  }

  /** Asks for the bytes before the lowest offset held while the start is not settled. */
  #askForStart(nowMs: number): void {
    let lowest = Infinity;
    for (const offset of this.#beforeStart.keys()) lowest = Math.min(lowest, offset);
    if (!(lowest > 0) || lowest === Infinity) return;
    this.#startRequested = true;
    this.#startRequestedAtMs = nowMs;
    this.#askForRepair([{ from: 0, to: lowest }]);
  }

  #askForRepair(ranges: ByteRange[]): void {
    try {
      this.#options.requestRepair?.(ranges);
    } catch (error) {
      this.#failRepairRequest(error);
    }
  }

  #failRepairRequest(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#fail(error instanceof SealcastError ? error : new SealcastError('E_INTERNAL', `asking for repair failed: ${message}`, { cause: error }));
  }

  #failWrongKey(): void {
    this.#fail(
      new SealcastError(
        'E_AUTH',
        `no packet authenticated with this key: wrong key? (${this.#drops.authFailed} packets failed authentication, none succeeded; nothing was written)`,
      ),
    );
  }

  /**
   * The common case in one native call: the packets that continue the stream go straight into
   * the output's chunk, with none held and the output keeping up. The same bookkeeping as
   * #onAuthenticated and #acceptData do per packet, once for the run. Returns the packets taken.
   */
  #takeInOrder(gather: InOrderGather, roomBytes: number): number {
    const window = this.#window;
    const stream = this.#stream;
    if (window === null || stream === null || this.#session === null || this.#finished || window.heldPackets > 0) return 0;
    if (this.#repair !== null && this.#outputIsBehind()) return 0;
    const startOffset = window.nextOffset;
    let packets = 0;
    let bytes = 0;
    try {
      stream.deliverWith((target, start, end) => {
        const gathered = gather(startOffset, target, start, end);
        packets = gathered.packets;
        bytes = gathered.bytes;
        return bytes;
      }, roomBytes);
    } catch (error) {
      // The output failed or fell too far behind (E_IO) while a full chunk was handed over.
      this.#fail(error);
      return 0;
    }
    if (packets === 0) return 0;
    window.advance(bytes);
    const endOffset = window.nextOffset;
    this.#authenticated += packets;
    this.#lastAuthenticatedAtMs = performance.now();
    this.#progressAtMs = this.#lastAuthenticatedAtMs;
    this.#acceptedEnd = Math.max(this.#acceptedEnd, endOffset);
    if (this.#repair !== null) this.#seenEnd = Math.max(this.#seenEnd, endOffset);
    this.#failIfPastEnd(endOffset);
    return packets;
  }

  /** Authenticated data beyond the length END announced is a protocol error, never more output. */
  #failIfPastEnd(deliveredEnd: number): void {
    if (this.#end !== null && deliveredEnd > this.#end.totalBytes) {
      this.#fail(new SealcastError('E_PROTOCOL', `the stream ran past the length its END announced (${this.#end.totalBytes} bytes)`));
    }
  }

  /** `sessionChecked`: the header scan already matched the packet's session to this.#session. */
  #onAuthenticated(slab: Buffer, slotOffset: number, payloadBytes: number, sessionChecked: boolean): void {
    const type = slab[slotOffset + HeaderField.type];
    const streamOffset = readU64(slab, slotOffset + HeaderField.streamOffset);
    const payload = slab.subarray(slotOffset + HEADER_BYTES, slotOffset + HEADER_BYTES + payloadBytes);
    if (sessionChecked) {
      // Matched before opening, and the open authenticated the header, session id included.
    } else if (this.#session === null) {
      // A copy: the slab is reused by the next drain (Buffer#slice would only be a view).
      this.#session = new Uint8Array(slab.subarray(slotOffset + HeaderField.sessionId, slotOffset + HeaderField.sessionId + SESSION_ID_BYTES));
    } else if (!sameBytes(slab.subarray(slotOffset + HeaderField.sessionId, slotOffset + HeaderField.sessionId + SESSION_ID_BYTES), this.#session)) {
      // Another genuine session (a second sender with the same key) opened in the same batch
      // before this receiver settled on the first one.
      this.#drops.otherSession++;
      return;
    }
    this.#authenticated++;
    this.#lastAuthenticatedAtMs = performance.now();
    if (this.#firstAuthenticatedAtMs === 0) this.#firstAuthenticatedAtMs = this.#lastAuthenticatedAtMs;
    this.#suite ??= suiteFromId(slab[slotOffset + HeaderField.suite]) ?? null;
    if (type === PacketType.END) {
      this.#onEnd(streamOffset, payload);
      return;
    }
    if (payloadBytes === 0) {
      // An authenticated DATA packet is never empty; treat one as malformed rather than trust it.
      this.#drops.malformed++;
      return;
    }
    if (this.#window === null) {
      this.#holdBeforeStart(streamOffset, payload);
      return;
    }
    this.#acceptData(streamOffset, payload);
  }

  /**
   * Before the stream start is known, authenticated payloads wait here briefly: offset 0 starts
   * the stream at once; otherwise the receiver joined mid-stream (or packets came reordered) and
   * it starts at the lowest offset seen once the settle time passed or the holding area filled.
   */
  #holdBeforeStart(streamOffset: number, payload: Uint8Array): void {
    if (this.#beforeStart.size === 0) {
      this.#beforeStartSinceMs = performance.now();
      this.#beforeStartBytes = 0;
    }
    if (!this.#beforeStart.has(streamOffset)) {
      this.#beforeStart.set(streamOffset, Uint8Array.prototype.slice.call(payload));
      this.#beforeStartBytes += payload.byteLength;
    } else {
      this.#drops.duplicate++;
    }
    const bytesMax = this.#repair !== null ? BEFORE_START_BYTES_MAX_WITH_REPAIR : BEFORE_START_BYTES_MAX;
    if (streamOffset === 0 || this.#beforeStart.size >= this.#options.reorderPacketsMax || this.#beforeStartBytes >= bytesMax) {
      this.#startFromHeld();
      return;
    }
    if (this.#repair !== null && this.#options.subscribedFromStart && !this.#startRequested) {
      // Subscribed before the stream began, yet the first packet is not the stream's first: the
      // beginning was lost. The sender sends it again, or answers that it no longer holds it
      // (repairUnavailable), and then this receiver starts where it can.
      this.#askForStart(performance.now());
    }
  }

  #startFromHeld(): void {
    if (this.#window !== null || this.#beforeStart.size === 0) return;
    const held = [...this.#beforeStart.entries()].sort((a, b) => a[0] - b[0]);
    this.#beforeStart.clear();
    this.#begin(held[0][0]);
    for (const [offset, payload] of held) {
      if (this.#finished) return;
      this.#acceptData(offset, payload);
    }
  }

  /**
   * Delivers the held payloads that now continue the stream. With repair they wait in the window
   * while the output is far behind (a filled hole may release tens of megabytes at once); the
   * next drain or tick goes on.
   */
  #deliverHeld(): void {
    const window = this.#window;
    if (window === null) return;
    while (!this.#finished && !(this.#repair !== null && this.#outputIsBehind())) {
      // At most a chunk of output per delivery, so that the check above still comes between
      // chunks handed to the output, as it did between packets.
      const held = window.takeRun(this.#stream!.chunkBytes);
      if (held === undefined) return;
      this.#deliver(held);
    }
  }

  /**
   * While the output is far behind, new data (beyond everything held) is dropped, but a packet
   * that fills a hole among the held ones is kept in the window (within its bounds), to be
   * delivered once the output caught up: the holes keep getting repaired meanwhile.
   */
  #acceptWhileBehind(window: ReorderWindow, streamOffset: number, payload: Uint8Array): void {
    if (streamOffset >= window.heldEndOffset) {
      this.#dropForOutput();
      return;
    }
    const placement = window.place(streamOffset);
    if (placement === 'next' || placement === 'ahead') {
      window.hold(streamOffset, payload);
      this.#acceptedEnd = Math.max(this.#acceptedEnd, streamOffset + payload.byteLength);
    } else if (placement === 'overflow') {
      this.#drops.beyondWindow++;
      this.#repair?.noteHole();
    } else {
      this.#drops.duplicate++;
    }
  }

  /**
   * UDP cannot be paused: rather than overrun the output's bound (E_IO), a packet that arrives
   * while the output is far behind is dropped as if lost, and asked for again later. The sender
   * is asked to slow down meanwhile.
   */
  #dropForOutput(): void {
    this.#drops.outputBehind++;
    this.#repair?.noteHole();
    this.#askToSlowDown();
  }

  /**
   * Asks the sender to lower its rate (at most every SLOW_DOWN_EVERY_MS): the output is far
   * behind, so this receiver is dropping what arrives. (A socket backlog was tried as a signal
   * too: on the bridge it fired without any loss and held the rate at a third of what the
   * receiver takes.)
   */
  #askToSlowDown(): void {
    if (this.#options.requestSlowDown === undefined || this.#finished) return;
    const now = performance.now();
    if (now - this.#slowDownAskedAtMs < SLOW_DOWN_EVERY_MS) return;
    this.#slowDownAskedAtMs = now;
    try {
      this.#options.requestSlowDown?.();
    } catch (error) {
      this.#failRepairRequest(error);
    }
  }

  /** With repair, a far-behind output is relieved by dropping new data (asked for again later). */
  #outputIsBehind(): boolean {
    const output = this.#output;
    return output !== null && output.queuedBytes > output.queueBytesMax / 2;
  }

  #acceptData(streamOffset: number, payload: Uint8Array): void {
    const window = this.#window!;
    if (this.#repair !== null) {
      this.#seenEnd = Math.max(this.#seenEnd, streamOffset + payload.byteLength);
      if (streamOffset >= window.nextOffset && this.#outputIsBehind()) {
        this.#acceptWhileBehind(window, streamOffset, payload);
        return;
      }
    }
    this.#acceptedEnd = Math.max(this.#acceptedEnd, streamOffset + payload.byteLength);
    switch (window.place(streamOffset)) {
      case 'next':
        this.#deliver(payload);
        this.#deliverHeld();
        break;
      case 'ahead':
        window.hold(streamOffset, payload);
        this.#repair?.noteHole();
        break;
      case 'overflow':
        if (this.#repair !== null) {
          // Held packets fill the window while a hole waits for repair: this one is asked for
          // again once the window has room.
          this.#drops.beyondWindow++;
          this.#repair.noteHole();
          break;
        }
        this.#fail(this.#gapError(`the reorder window overflowed (${window.heldPackets} packets held)`, Math.max(streamOffset, this.#end?.totalBytes ?? 0)));
        return;
      default:
        this.#drops.duplicate++;
    }
    this.#failIfPastEnd(window.nextOffset);
  }

  #begin(streamOffset: number): void {
    this.#startOffset = streamOffset;
    this.#progressAtMs = performance.now();
    const heldBytesMax = this.#repair !== null ? REORDER_HELD_BYTES_MAX_WITH_REPAIR : REORDER_HELD_BYTES_MAX;
    this.#window = new ReorderWindow(streamOffset, this.#options.reorderPacketsMax, this.#options.reorderPacketsMax * DATAGRAM_BYTES_MAX, heldBytesMax);
    this.#emitSafely('start', {
      sessionId: Buffer.from(this.#session!).toString('hex'),
      suite: this.#suite,
      startOffset: streamOffset,
      partial: streamOffset !== 0,
    });
  }

  #onEnd(streamOffset: number, payload: Uint8Array): void {
    if (this.#end !== null) {
      this.#drops.duplicate++;
      return;
    }
    const record = decodeEnd(payload);
    if (record === undefined || record.totalBytes !== streamOffset) {
      this.#drops.malformed++;
      return;
    }
    this.#startFromHeld();
    if (this.#finished) return;
    this.#end = record;
    this.#endAtMs = performance.now();
    this.#emitSafely('end', { totalBytes: record.totalBytes, dataPackets: record.dataPackets, sha256: Buffer.from(record.sha256).toString('hex') });
    if (this.#window === null) {
      if (record.totalBytes === 0) {
        this.#begin(0);
      } else {
        this.#fail(new SealcastError('E_GAP', `joined after the stream's data had passed: END announced ${record.totalBytes} bytes and none were received`));
      }
    }
  }

  #deliver(payload: Uint8Array): void {
    try {
      this.#stream!.deliver(payload);
    } catch (error) {
      // The output failed or fell too far behind (E_IO): the receive ends here, with what was
      // written so far still an authenticated prefix.
      this.#fail(error);
      return;
    }
    this.#window!.advance(payload.byteLength);
    this.#progressAtMs = this.#lastAuthenticatedAtMs;
  }

  /** Hands delivered output on (only when due, with `onlyWhenDue`); a failed output fails the receive. */
  #flushOutput(onlyWhenDue = false): void {
    try {
      if (onlyWhenDue) this.#stream?.flushIfDue(performance.now());
      else this.#stream?.flush();
    } catch (error) {
      this.#fail(error);
    }
  }

  #checkComplete(): void {
    if (this.#finished || this.#end === null || this.#window === null) return;
    if (this.#window.nextOffset !== this.#end.totalBytes) return;
    this.#finished = true;
    void this.#complete();
  }

  async #complete(): Promise<void> {
    this.#stopListening();
    this.#flushOutput();
    const end = this.#end!;
    const stream = this.#stream!;
    let sha256: Buffer;
    try {
      sha256 = stream.digest();
      await this.#output!.idle();
    } catch (error) {
      this.#reject(error);
      return;
    }
    const startOffset = this.#startOffset ?? 0;
    const expectedBytes = end.totalBytes - startOffset;
    if (stream.bytes !== expectedBytes) {
      this.#reject(new SealcastError('E_VERIFY', `wrote ${stream.bytes} bytes but END announced ${expectedBytes} from offset ${startOffset}`));
      return;
    }
    if (startOffset === 0 && !sameBytes(sha256, end.sha256)) {
      this.#reject(new SealcastError('E_VERIFY', `the output's SHA-256 ${sha256.toString('hex')} differs from END's ${Buffer.from(end.sha256).toString('hex')}`));
      return;
    }
    const result: ReceiveResult = { ...this.stats, outcome: startOffset === 0 ? 'complete' : 'partial', sha256: sha256.toString('hex') };
    this.#output!.detach();
    this.#settle?.resolve(result);
    this.#settle = null;
  }

  readonly #onTick = (): void => {
    if (this.#finished) return;
    const now = performance.now();
    this.#flushOutput();
    this.#emitSafely('progress', this.stats);
    // Also when nothing arrives (the sender may be waiting for this very report).
    this.#reportProgress(now, 0);
    // The request for the start may itself be lost: asked again until the wait ends.
    if (this.#window === null && this.#startRequested && now - this.#startRequestedAtMs >= NACK_RETRY_MS) this.#askForStart(now);
    if (this.#finished) return;
    const settleMs = this.#startRequested ? Math.max(this.#options.startSettleMs, START_REPAIR_WAIT_MS) : this.#options.startSettleMs;
    if (this.#window === null && this.#beforeStart.size > 0 && now - this.#beforeStartSinceMs >= settleMs) {
      this.#startFromHeld();
      if (this.#finished) return;
      this.#flushOutput();
      this.#checkComplete();
      if (this.#finished) return;
    }
    // A slow stream may never reach wrongKeyPackets quickly; a few failures and no success over
    // a few seconds are just as plain.
    if (
      this.#authenticated === 0 &&
      this.#drops.authFailed >= WRONG_KEY_SLOW_PACKETS &&
      now - (this.#intake?.firstAuthFailedAtMs ?? now) >= WRONG_KEY_SLOW_MS
    ) {
      this.#failWrongKey();
      return;
    }
    if (this.#window === null) {
      const { startTimeoutMs } = this.#options;
      if (startTimeoutMs > 0 && now - this.#listeningAtMs > startTimeoutMs) {
        const datagrams = this.#intake?.datagrams ?? 0;
        const heard = datagrams > 0 ? ` (${datagrams} datagrams heard, none opened: ${describeDrops(this.#drops)})` : '';
        this.#fail(new SealcastError('E_TIMEOUT', `no stream started on ${this.#options.group.address}:${this.#options.group.port} within ${startTimeoutMs / 1000} s${heard}`));
      }
      return;
    }
    if (this.#repair !== null) {
      this.#deliverHeld();
      this.#flushOutput();
      this.#checkComplete();
      if (this.#finished) return;
      if (this.#outputIsBehind()) {
        // Waiting for the output is not waiting for a repair; but an output that stays behind
        // (a reader that stopped) ends the receive like an overrun does without repair.
        this.#outputBehindSinceMs ||= now;
        this.#progressAtMs = now;
        if (now - this.#outputBehindSinceMs > OUTPUT_BEHIND_MS_MAX) {
          this.#fail(new SealcastError('E_IO', `the output is not keeping up with the stream (it stayed more than half of its ${this.#output!.queueBytesMax}-byte queue behind for ${OUTPUT_BEHIND_MS_MAX / 1000} s); write to a faster target or lower the sender's --rate`));
          return;
        }
      } else {
        this.#outputBehindSinceMs = 0;
      }
      this.#requestRepairs(now);
      if (this.#finished) return;
      const stuck = this.#window.heldPackets > 0 || this.#window.nextOffset < (this.#end?.totalBytes ?? this.#seenEnd);
      if (stuck && now - this.#progressAtMs > this.#options.repairTimeoutMs) {
        this.#fail(this.#gapError(`not repaired within ${this.#options.repairTimeoutMs / 1000} s`, this.#end?.totalBytes));
        return;
      }
    } else if (this.#end !== null && now - this.#endAtMs > this.#options.endGraceMs) {
      this.#fail(this.#gapError('END arrived but packets before it are missing', this.#end.totalBytes));
      return;
    }
    if (now - this.#lastAuthenticatedAtMs > this.#options.idleTimeoutMs) {
      const seconds = this.#options.idleTimeoutMs / 1000;
      if (this.#window.heldPackets > 0) {
        this.#fail(this.#gapError(`no packet for ${seconds} s`));
      } else {
        this.#fail(new SealcastError('E_TIMEOUT', `no packet for ${seconds} s after stream offset ${this.#window.nextOffset} and no END: the sender stopped or the path broke`));
      }
    }
  };

  #gapError(why: string, endOffset?: number): SealcastError {
    const window = this.#window!;
    const ranges = window.missingRanges(endOffset);
    const named = ranges.length > 0 ? describeRanges(ranges) : `from byte ${window.nextOffset}`;
    return new SealcastError('E_GAP', `missing ${named} (${why}); output stops at byte ${window.nextOffset}, nothing after the gap was written`);
  }

  /**
   * Events are emitted from inside socket and timer callbacks, where an exception thrown by a
   * caller's listener would crash the process: it ends this receive with the error instead.
   */
  #emitSafely(event: string, payload: unknown): void {
    try {
      this.emit(event, payload);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#fail(new SealcastError('E_INTERNAL', `a '${event}' listener threw: ${message}`, { cause: error }));
    }
  }

  #fail(error: unknown): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stopListening();
    this.#window?.clear();
    this.#flushOutput();
    void (async () => {
      // What was delivered before the failure is authenticated and contiguous: let it reach the
      // output, so a gap error leaves exactly the prefix before the gap. An output that broke or
      // stopped taking data is not waited for (the bound keeps a stalled reader from hiding the
      // error for ever).
      const output = this.#output;
      if (output !== null && !output.broken) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([output.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, FAIL_OUTPUT_DRAIN_MS_MAX)))]);
        } catch {
          // The original error is the one to report.
        } finally {
          clearTimeout(timer);
        }
      }
      output?.detach();
      this.#reject(error);
    })();
  }

  #reject(error: unknown): void {
    this.#settle?.reject(error);
    this.#settle = null;
  }

  #stopListening(): void {
    this.#stoppedAtMs ||= performance.now();
    if (this.#ticker !== null) clearInterval(this.#ticker);
    this.#ticker = null;
    const socket = this.#socket;
    this.#socket = null;
    if (socket !== null) {
      this.#intake?.detach(socket);
      try {
        socket.close();
      } catch {
        // Already closed.
      }
    }
  }
}

/**
 * Whether `output` is done with a chunk once its write callback fired: files and sockets (pipes,
 * TTYs, process.stdout/stderr in every form) write or copy the bytes before calling back.
 */
function releasesChunksOnCallback(output: Writable): boolean {
  return output instanceof FileOutput || output instanceof WriteStream || output instanceof Socket || output === process.stdout || output === process.stderr;
}

