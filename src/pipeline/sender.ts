// The sending half of the data plane: input stream -> slabs of packet slots -> one sealBatch per
// slab -> paced slot views to a connected multicast socket -> END (repeated).
//
// Two loops share the main thread: the producer fills and seals slabs while the transmitter
// sleeps between paced bursts. A bounded number of slabs circulates, and a slab is reused only
// after every datagram cut from it has been handed to the kernel and it has left the repair
// window (repair-window.ts), so memory stays bounded. Repair requests (requestRepair) send
// stored datagrams again ahead of new data, and slow the pacing rate down (rate adaptation).

import { createHash } from 'node:crypto';
import type dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { AeadKey, PacketBatch } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import { NONCE_BYTES, writeNonce } from '../keys/sequencer.js';
import { derivePacketKeyBytes, EpochKeySource, type PacketKeySource } from '../keys/packet-keys.js';
import { SealingContext } from '../keys/sealing-context.js';
import { END_PAYLOAD_BYTES, encodeEnd } from '../packet/end.js';
import {
  HEADER_BYTES,
  PacketType,
  SUITE_IDS,
  TAG_BYTES,
  payloadBytesFor,
  writeHeaderUnchecked,
} from '../packet/format.js';
import { groupTarget, openBatchSocket, type BatchSocket, type GroupTarget } from './batch-io.js';
import { ChunkReader, type SlabFill } from './chunk-reader.js';
import type { ByteRange } from './reorder.js';
import { FlowWindow } from './flow-window.js';
import { RateController } from './rate-controller.js';
import { RepairWindow, type RepairRun } from './repair-window.js';
import { openSenderSocket } from './multicast.js';
import { defaultBurstBytes, rampFraction, TokenBucket } from './token-bucket.js';
import {
  DEFAULT_PLAIN_RATE_BITS_PER_SECOND,
  normalizeSenderOptions,
  type NormalizedSenderOptions,
  type SenderOptions,
  type SendStats,
} from './sender-options.js';

// The options moved to sender-options.ts; what callers imported from here still comes from here.
export {
  DEFAULT_END_REPEATS,
  DEFAULT_END_SPACING_MS,
  DEFAULT_PLAIN_RATE_BITS_PER_SECOND,
  DEFAULT_RATE_BITS_PER_SECOND,
  DEFAULT_REPAIR_LINGER_MS,
  DEFAULT_SLAB_COUNT,
  DEFAULT_SLAB_SLOTS,
  defaultSlabSlots,
  directSealer,
} from './sender-options.js';
export type { BatchSealer, SenderOptions, SendStats } from './sender-options.js';

/** How long a slab waits for a slow source before what it holds is sent. */
const SLAB_FLUSH_MS = 20;
/** How long the sender takes to reach its full rate (see rampFraction). */
const RAMP_MS = 250;
/**
 * Datagrams per batched send: enough to make the system call cheap per datagram, few enough
 * that a chunk stays well inside the token bucket's burst and a receiver's socket buffer.
 */
const SEND_CHUNK_DATAGRAMS_MAX = 64;
/** How long a full socket buffer may block the batched send before it is an I/O error. */
const SEND_STALL_MS_MAX = 5_000;
/** The most datagrams waiting to be sent again; requests beyond it are refused (and counted). */
const REPAIR_QUEUE_DATAGRAMS_MAX = 65_536;
/** A receiver that reported no progress for this long no longer holds the sender back. */
const FLOW_STALE_MS = 500;
/** While held back by flow control the sender waits for the next report, or this long at most (a receiver may have gone quiet). */
const FLOW_POLL_MS = 20;
/** A resent END goes out at most this often, however many receivers ask for it. */
const END_RESEND_EVERY_MS = 10;

interface Slab {
  readonly memory: Buffer;
  readonly layout: Uint32Array;
  readonly nonces: Uint8Array;
  /** One view per slot at full datagram size, made once; the last slot of a stream gets its own. */
  readonly fullViews: Buffer[];
  readonly lengths: Uint32Array;
  count: number;
  /** Stream offset of slot 0's payload. */
  firstOffset: number;
  pending: number;
  release: (() => void) | null;
}

export class Sender extends EventEmitter {
  readonly #options: NormalizedSenderOptions;
  /** The caller's data key (a copy), until send() derived the packet key from it. */
  #dataKey: Uint8Array | null = null;
  #batchSocket: BatchSocket | null = null;
  #target: GroupTarget | null = null;
  /** The pacing rate; when the caller gave none, fixed once the I/O path is known. */
  #rateBitsPerSecond: number;
  readonly #rateGiven: boolean;
  readonly #payloadBytesMax: number;
  readonly #suiteId: number;
  /** Mints every nonce this Sender seals with, under the process-wide claim on its packet key. */
  readonly #sealing: SealingContext;
  readonly #stats: SendStats;
  #socket: dgram.Socket | null = null;
  #sendError: Error | null = null;
  #used = false;

  // Loss repair and rate adaptation.
  readonly #repairs: RepairWindow<Slab>;
  /** Wakes the transmitter (or the linger after END) when repairs were queued. */
  #wakeForRepairs: (() => void) | null = null;
  /** Hands slabs that left the repair window back to the producer. */
  #freeSlabs: (slabs: Slab[]) => void = () => {};
  #lastRepairRequestAtMs = 0;
  #repairsFinished = false;
  /** The sealed END datagram, once sent: a request reaching the stream's end sends it again. */
  #endDatagram: Buffer | null = null;
  #endResendWanted = false;
  #endResentAtMs = -Infinity;
  /** Rate adaptation, from the start of sending. */
  #rates: RateController | null = null;
  /** Flow control (null: off) and what wakes a transmitter waiting on it. */
  readonly #flow: FlowWindow | null;
  #flowWaker: (() => void) | null = null;

  constructor(options: SenderOptions) {
    super();
    const { normalized, rateBitsPerSecond: rate, rateGiven } = normalizeSenderOptions(options);
    const datagramBytes = normalized.datagramBytes;
    this.#rateBitsPerSecond = rate;
    this.#rateGiven = rateGiven;
    this.#options = normalized;
    if (options.dataKey !== undefined) this.#dataKey = new Uint8Array(options.dataKey);
    this.#sealing = new SealingContext(options.backend.constants);
    this.#payloadBytesMax = payloadBytesFor(datagramBytes);
    this.#suiteId = SUITE_IDS[options.suite];
    this.#flow = this.#options.flowWindowBytes > 0 ? new FlowWindow(this.#options.flowWindowBytes, FLOW_STALE_MS) : null;
    this.#repairs = new RepairWindow<Slab>(
      this.#options.repairWindowBytes,
      this.#payloadBytesMax,
      HEADER_BYTES + TAG_BYTES,
      REPAIR_QUEUE_DATAGRAMS_MAX,
      Math.max(1, this.#retainedSlabsMax()),
    );
    this.#stats = {
      sessionId: Buffer.from(this.#options.sessionId).toString('hex'),
      suite: options.suite,
      backend: options.backend.name,
      bytes: 0,
      dataPackets: 0,
      datagramsSent: 0,
      datagramBytes,
      rateBitsPerSecond: rate,
      startedAtMs: 0,
      durationMs: 0,
      sha256: null,
      io: null,
      repairRequests: 0,
      repairDatagramsSent: 0,
      repairUnavailableBytes: 0,
      slowDownReports: 0,
      flowWaitMs: 0,
      rateBitsPerSecondLowest: rate,
    };
  }

  /**
   * A receiver is missing these bytes of the stream (ascending, disjoint ranges). The stored
   * datagrams that hold them are queued to be multicast again, ahead of new data; a range that
   * reaches the stream's end also brings END again. Returns the requested bytes that left the
   * repair window (they cannot be repaired). Bytes not sent yet are ignored: they are coming.
   */
  requestRepair(ranges: readonly ByteRange[]): ByteRange[] {
    requireRanges(ranges);
    const now = performance.now();
    this.#stats.repairRequests++;
    this.#lastRepairRequestAtMs = now;
    if (this.#options.repairWindowBytes === 0) {
      // Repair is off: nothing is kept, not even the slab being sent, so everything asked for
      // that was sealed (receivers ask for bytes that something after them already passed) is gone.
      const gone = clipRanges(ranges, this.#stats.bytes);
      for (const range of gone) this.#stats.repairUnavailableBytes += range.to - range.from;
      return gone;
    }
    const outcome = this.#repairs.request(ranges);
    for (const range of outcome.unavailable) this.#stats.repairUnavailableBytes += range.to - range.from;
    if (this.#endDatagram !== null && ranges[ranges.length - 1].to > this.#stats.bytes) this.#endResendWanted = true;
    this.#rates?.noteLosses(outcome.firstLossDatagrams);
    if (outcome.queuedDatagrams > 0 || this.#endResendWanted) this.#wakeForRepairs?.();
    return outcome.unavailable;
  }

  /**
   * A receiver cannot keep up (its output is behind and it drops new packets): the rate comes
   * down (rate-controller.ts) before its losses arrive as repair requests.
   */
  reportSlowReceiver(): void {
    this.#stats.slowDownReports++;
    this.#rates?.noteSlowReceiver(performance.now());
  }

  /**
   * A receiver has taken the stream in up to `offset` (flow control: new data stays within the
   * flow window of the slowest). Ignored without a flow window.
   */
  reportProgress(receiver: string, offset: number): void {
    if (typeof receiver !== 'string') throw new TypeError('receiver must be a string');
    if (this.#flow === null) return;
    this.#flow.report(receiver, offset, performance.now());
    this.#flowWaker?.();
  }

  /** A receiver is gone (finished, failed, disconnected): it no longer holds the sender back. */
  forgetReceiver(receiver: string): void {
    this.#flow?.forget(receiver);
    this.#flowWaker?.();
  }

  /** Ends the wait for repair requests after END (e.g. every receiver has finished). */
  finishRepairs(): void {
    this.#repairsFinished = true;
    this.#wakeForRepairs?.();
  }

  /** A snapshot of the counters, for progress lines and the final summary. */
  get stats(): SendStats {
    const stats = { ...this.#stats };
    if (this.#rates !== null) stats.rateBitsPerSecondLowest = this.#rates.lowestBytesPerSecond * 8;
    if (stats.startedAtMs > 0 && stats.sha256 === null) stats.durationMs = performance.now() - stats.startedAtMs;
    return stats;
  }

  /** This session's id (a copy): drawn at random unless the caller gave one. */
  get sessionId(): Uint8Array {
    return new Uint8Array(this.#options.sessionId);
  }

  /**
   * Sends the whole source as one session and resolves when the last END copy left. `source`
   * yields Uint8Array chunks (a Readable stream does).
   */
  async send(source: AsyncIterable<Uint8Array>): Promise<SendStats> {
    if (this.#used) throw new SealcastError('E_CLOSED', 'a Sender sends one session; create a new one');
    this.#used = true;
    const options = this.#options;
    let ownKeys: PacketKeySource | null = null;
    try {
      if (options.keys === null) {
        ownKeys = await this.#deriveOwnKeys();
        options.keys = ownKeys;
      }
      // Claimed before any socket opens: a Sender refused for its packet key leaves nothing open.
      this.#sealing.claim(options.keys.key, options.keys.epoch);
      return await this.#sendSession(source);
    } finally {
      this.#sealing.close();
      this.#dataKey?.fill(0);
      this.#dataKey = null;
      if (ownKeys !== null) {
        ownKeys.key.destroy();
        if (ownKeys.poolKey !== undefined) await options.pool?.removeKey(ownKeys.poolKey).catch(() => {});
      }
    }
  }

  /** The packet key of epoch 0 for this session, from the caller's data key (which is zeroed). */
  async #deriveOwnKeys(): Promise<PacketKeySource> {
    const { backend, suite, sessionId, pool } = this.#options;
    const packetKeyBytes = derivePacketKeyBytes(suite, this.#dataKey!, sessionId, 0);
    this.#dataKey!.fill(0);
    this.#dataKey = null;
    let key: AeadKey | undefined;
    try {
      key = backend.createKey(suite, packetKeyBytes);
      const poolKey = pool !== undefined ? await pool.addKey(suite, packetKeyBytes) : undefined;
      return new EpochKeySource(0, key, poolKey);
    } catch (error) {
      key?.destroy();
      throw error;
    } finally {
      packetKeyBytes.fill(0);
    }
  }

  async #sendSession(source: AsyncIterable<Uint8Array>): Promise<SendStats> {
    const options = this.#options;
    this.#socket = await openSenderSocket({ group: options.group, interfaceAddress: options.interfaceAddress, ttl: options.ttl });
    this.#socket.on('error', (error) => {
      this.#sendError ??= error;
    });
    try {
      this.#batchSocket = openBatchSocket(this.#socket, options.io);
    } catch (error) {
      await closeSocket(this.#socket);
      this.#socket = null;
      throw error;
    }
    this.#target = this.#batchSocket !== null ? groupTarget(options.group) : null;
    this.#stats.io = this.#batchSocket !== null ? 'native' : 'dgram';
    // A sender without the addon's crypto usually runs where its receivers lack it too.
    if (!this.#rateGiven && (this.#batchSocket === null || options.backend.name !== 'native')) this.#rateBitsPerSecond = DEFAULT_PLAIN_RATE_BITS_PER_SECOND;
    this.#stats.rateBitsPerSecond = this.#rateBitsPerSecond;
    this.#stats.rateBitsPerSecondLowest = this.#rateBitsPerSecond;
    const rateBytesPerSecond = this.#rateBitsPerSecond / 8;
    const bucket = new TokenBucket(rateBytesPerSecond * rampFraction(0, RAMP_MS), defaultBurstBytes(rateBytesPerSecond, options.datagramBytes));
    this.#stats.startedAtMs = performance.now();
    this.#rates = new RateController(rateBytesPerSecond, this.#stats.startedAtMs);
    this.emit('start', { sessionId: this.#stats.sessionId });
    try {
      const digest = await this.#streamData(source, bucket);
      await this.#sendEnd(digest, bucket);
      this.#stats.sha256 = Buffer.from(digest).toString('hex');
      this.#stats.durationMs = performance.now() - this.#stats.startedAtMs;
      await this.#lingerForRepairs(bucket);
      return this.stats;
    } finally {
      this.#wakeForRepairs = null;
      this.#repairs.clear();
      this.#batchSocket = null;
      await closeSocket(this.#socket);
      this.#socket = null;
    }
  }

  async #streamData(source: AsyncIterable<Uint8Array>, bucket: TokenBucket): Promise<Uint8Array> {
    const options = this.#options;
    const slabs = Array.from({ length: options.slabCount }, () => this.#makeSlab());
    // The repair window holds transmitted slabs (at most #retainedSlabsMax of them, so the
    // producer always gets one back); the slabs for it are made as it fills.
    const slabsMax = options.slabCount + this.#retainedSlabsMax();
    const free: Slab[] = [...slabs];
    const sealed: Slab[] = [];
    let freeWaiter: (() => void) | null = null;
    let sealedWaiter: (() => void) | null = null;
    let producerDone = false;
    const hash = createHash('sha256');
    const reader = new ChunkReader(source, (chunk) => {
      hash.update(chunk);
    });

    let failure: unknown = null;
    const wake = (waiter: (() => void) | null): null => {
      waiter?.();
      return null;
    };
    const fail = (error: unknown): void => {
      failure ??= error;
      freeWaiter = wake(freeWaiter);
      sealedWaiter = wake(sealedWaiter);
    };
    // Both loops may be waiting on each other's slabs when the send is stopped.
    const onAbort = (): void => fail(new SealcastError('E_CLOSED', 'sending was stopped'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.#freeSlabs = (freed) => {
      if (freed.length === 0) return;
      free.push(...freed);
      freeWaiter = wake(freeWaiter);
    };
    this.#wakeForRepairs = () => {
      sealedWaiter = wake(sealedWaiter);
    };

    const producer = async (): Promise<void> => {
      try {
        for (;;) {
          if (free.length === 0 && slabs.length < slabsMax) {
            const slab = this.#makeSlab();
            slabs.push(slab);
            free.push(slab);
          }
          while (free.length === 0 && failure === null) {
            await new Promise<void>((resolve) => (freeWaiter = resolve));
          }
          if (failure !== null) return;
          this.#throwIfStopped();
          const slab = free.shift()!;
          const filled = await this.#fillSlab(slab, reader);
          if (filled === 0) {
            free.push(slab);
            return;
          }
          // One snapshot per slab: the nonces are minted for exactly the key that seals them.
          const source = options.keys!;
          const keys: PacketKeySource = { epoch: source.epoch, key: source.key, poolKey: source.poolKey };
          this.#stampSlab(slab, keys);
          await this.#seal(keys, { slab: slab.memory, layout: slab.layout, nonces: slab.nonces, count: slab.count });
          sealed.push(slab);
          sealedWaiter = wake(sealedWaiter);
          if (reader.done) return;
        }
      } catch (error) {
        fail(error);
      } finally {
        producerDone = true;
        sealedWaiter = wake(sealedWaiter);
      }
    };

    const transmitter = async (): Promise<void> => {
      try {
        for (;;) {
          // Repairs go first: receivers cannot deliver past the bytes they are missing.
          await this.#sendRepairs(bucket);
          while (sealed.length === 0 && this.#repairs.queuedDatagrams === 0 && failure === null) {
            if (producerDone) return;
            await new Promise<void>((resolve) => (sealedWaiter = resolve));
          }
          if (failure !== null) return;
          const slab = sealed.shift();
          if (slab === undefined) continue;
          // Into the repair window as its transmission starts (a receiver may miss its first
          // datagrams before the last ones leave), pinned until every datagram left; the window
          // hands back what its budget pushes out.
          // Without a window (repair off) nothing is kept, not even while it is being sent.
          const repairable = options.repairWindowBytes > 0;
          if (repairable) this.#freeSlabs(this.#repairs.retainWhileSending(slab));
          await this.#transmitSlab(slab, bucket);
          slab.release = () => this.#freeSlabs(repairable ? this.#repairs.sent(slab) : this.#repairs.retain(slab));
          if (slab.pending === 0) slab.release();
        }
      } catch (error) {
        fail(error);
      }
    };

    try {
      await Promise.all([producer(), transmitter()]);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    // Every datagram must have left before END (and before the socket closes on failure).
    // The kernel completes sends within milliseconds, so polling here is short and bounded.
    while (slabs.some((slab) => slab.pending > 0)) await sleep(1);
    if (failure !== null) throw failure;
    this.#throwIfStopped();
    return hash.digest();
  }

  /** Slabs the repair window may hold: its bytes in full slabs, plus the one being sent. */
  #retainedSlabsMax(): number {
    const { repairWindowBytes, slabSlots, datagramBytes } = this.#options;
    return repairWindowBytes === 0 ? 0 : Math.ceil(repairWindowBytes / (slabSlots * datagramBytes)) + 1;
  }

  #makeSlab(): Slab {
    const { slabSlots, datagramBytes, backend } = this.#options;
    const bytes = slabSlots * datagramBytes;
    // Shared memory lets pool workers seal in place while the views below stay valid.
    const memory = this.#options.pool ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.alloc(bytes);
    const layout = new Uint32Array(slabSlots * backend.constants.layoutWords);
    const fullViews: Buffer[] = [];
    for (let slot = 0; slot < slabSlots; slot++) {
      fullViews.push(Buffer.from(memory.buffer, memory.byteOffset + slot * datagramBytes, datagramBytes));
    }
    return { memory, layout, nonces: new Uint8Array(slabSlots * NONCE_BYTES), fullViews, lengths: new Uint32Array(slabSlots), count: 0, firstOffset: 0, pending: 0, release: null };
  }

  /** Copies input into the payload regions of the slab's slots; returns how many slots hold data. */
  async #fillSlab(slab: Slab, reader: ChunkReader): Promise<number> {
    const { slabSlots, datagramBytes } = this.#options;
    const payloadMax = this.#payloadBytesMax;
    // A slow source (a live pipe) must not hold data back until a whole slab fills: once the
    // slab has waited this long, what it holds goes out, the last slot possibly short.
    const fill: SlabFill = { firstByteAtMs: null, flushAfterMs: SLAB_FLUSH_MS };
    let slot = 0;
    while (slot < slabSlots) {
      slot += reader.fillWholeSlots(slab.memory, slot * datagramBytes + HEADER_BYTES, datagramBytes, payloadMax, slab.lengths, slot, slabSlots - slot, fill);
      if (slot === slabSlots) break;
      const payloadOffset = slot * datagramBytes + HEADER_BYTES;
      const copied = await reader.readInto(slab.memory, payloadOffset, payloadMax, fill);
      if (copied === 0) break;
      slab.lengths[slot] = copied;
      slot++;
      if (copied < payloadMax) break;
    }
    slab.count = slot;
    return slot;
  }

  /** Writes headers, layout and nonces for every filled slot: one reserved block of sequences. */
  #stampSlab(slab: Slab, keys: PacketKeySource): void {
    const { datagramBytes, sessionId, backend } = this.#options;
    const words = backend.constants.layoutWords;
    const epoch = keys.epoch;
    const firstSequence = this.#sealing.reserve(keys.key, epoch, slab.count);
    slab.firstOffset = this.#stats.bytes;
    for (let slot = 0; slot < slab.count; slot++) {
      const offset = slot * datagramBytes;
      const payloadBytes = slab.lengths[slot];
      const sequence = firstSequence + slot;
      writeHeaderUnchecked(slab.memory, offset, this.#suiteId, PacketType.DATA, sessionId, epoch, sequence, this.#stats.bytes, payloadBytes);
      writeNonce(slab.nonces, slot * NONCE_BYTES, epoch, sequence);
      slab.layout[slot * words] = offset;
      slab.layout[slot * words + 1] = HEADER_BYTES;
      slab.layout[slot * words + 2] = payloadBytes;
      this.#stats.bytes += payloadBytes;
      this.#stats.dataPackets++;
    }
  }

  async #transmitSlab(slab: Slab, bucket: TokenBucket): Promise<void> {
    if (this.#batchSocket !== null) {
      await this.#transmitSlabBatched(slab, bucket, this.#batchSocket);
      return;
    }
    slab.release = null;
    slab.pending++;
    await this.#sendSlotsDgram(
      slab,
      0,
      slab.count,
      bucket,
      () => {
        slab.pending--;
        if (slab.pending === 0) slab.release?.();
      },
      true,
    );
  }

  /**
   * Sends slots [first, first + count) with one socket.send each, paced. `onDone` is called
   * exactly once, when node:dgram no longer needs the slots: from the last datagram's send
   * callback, or before this throws if that datagram never went out.
   */
  async #sendSlotsDgram(slab: Slab, first: number, count: number, bucket: TokenBucket, onDone: () => void, newData = false): Promise<void> {
    const { datagramBytes } = this.#options;
    const socket = this.#socket!;
    const end = first + count;
    try {
      for (let slot = first; slot < end; slot++) {
        if (((slot - first) & 63) === 0) {
          if (newData) await this.#waitForFlow(this.#slotEndOffset(slab, Math.min(end, slot + 64) - 1), bucket);
          this.#pace(bucket);
        }
        const length = HEADER_BYTES + slab.lengths[slot] + TAG_BYTES;
        let waitMs = bucket.take(length);
        while (waitMs > 0) {
          this.#throwIfStopped();
          await sleep(waitMs);
          waitMs = bucket.take(length);
        }
        const view = length === datagramBytes ? slab.fullViews[slot] : Buffer.from(slab.memory.buffer, slab.memory.byteOffset + slot * datagramBytes, length);
        this.#stats.datagramsSent++;
        // A UDP socket completes sends in order, so the last datagram's callback proves the
        // whole run left; the others go without one (errors then arrive as 'error' events).
        if (slot < end - 1) {
          socket.send(view);
          continue;
        }
        socket.send(view, (error) => {
          if (error) this.#sendError ??= error;
          onDone();
        });
        return;
      }
    } catch (error) {
      onDone();
      throw error;
    }
    onDone();
  }

  /**
   * Sends the slab in chunks of up to SEND_CHUNK_DATAGRAMS_MAX datagrams, one sendmmsg each,
   * paced per chunk. The kernel has copied a chunk when the call returns, so the slab needs no
   * completion callbacks and is free again as soon as this resolves.
   */
  async #transmitSlabBatched(slab: Slab, bucket: TokenBucket, batchSocket: BatchSocket): Promise<void> {
    slab.release = null;
    await this.#sendSlotsBatched(slab, 0, slab.count, bucket, batchSocket, true);
  }

  /**
   * Sends slots [first, first + count) of a sealed slab, paced, one sendmmsg per chunk; `newData`
   * (not a repair) also waits for flow control.
   */
  async #sendSlotsBatched(slab: Slab, first: number, count: number, bucket: TokenBucket, batchSocket: BatchSocket, newData = false): Promise<void> {
    const { datagramBytes } = this.#options;
    const target = this.#target!;
    // Half the burst per chunk keeps the bucket from waiting for a completely full burst.
    const chunkMax = Math.max(1, Math.min(SEND_CHUNK_DATAGRAMS_MAX, batchSocket.batchMax, Math.floor(bucket.burstBytes / 2 / datagramBytes)));
    const end = first + count;
    let slot = first;
    while (slot < end) {
      const chunk = Math.min(chunkMax, end - slot);
      if (newData) await this.#waitForFlow(this.#slotEndOffset(slab, slot + chunk - 1), bucket);
      this.#pace(bucket);
      let bytes = 0;
      for (let index = slot; index < slot + chunk; index++) bytes += HEADER_BYTES + slab.lengths[index] + TAG_BYTES;
      let waitMs = bucket.take(bytes);
      while (waitMs > 0) {
        this.#throwIfStopped();
        await sleep(waitMs);
        waitMs = bucket.take(bytes);
      }
      let sent = 0;
      let stalledSinceMs = 0;
      let stalls = 0;
      while (sent < chunk) {
        const moved = batchSocket.send(slab.memory, slab.layout, slot + sent, chunk - sent, target);
        sent += moved;
        if (moved > 0) {
          stalls = 0;
          continue;
        }
        // The socket buffer is full: give the kernel a moment to drain it, first without a
        // timer, then 1 ms at a time, for a bounded time.
        this.#throwIfStopped();
        const now = performance.now();
        if (stalls === 0) stalledSinceMs = now;
        else if (now - stalledSinceMs > SEND_STALL_MS_MAX) {
          throw new SealcastError('E_IO', `sending to the group failed: the socket buffer stayed full for ${SEND_STALL_MS_MAX / 1000} s`);
        }
        stalls++;
        if (stalls < 4) await new Promise<void>((resolve) => setImmediate(resolve));
        else await sleep(1);
      }
      this.#stats.datagramsSent += chunk;
      slot += chunk;
    }
  }

  /**
   * Sends what the repair queue holds (and END again when asked for), paced like data. A run's
   * slab stays pinned in the window until its datagrams were handed to the kernel.
   */
  async #sendRepairs(bucket: TokenBucket): Promise<void> {
    for (;;) {
      if (this.#endResendWanted) await this.#resendEnd(bucket);
      const run = this.#repairs.next(SEND_CHUNK_DATAGRAMS_MAX);
      if (run === null) return;
      if (this.#batchSocket !== null) {
        try {
          await this.#sendSlotsBatched(run.slab, run.first, run.count, bucket, this.#batchSocket);
        } finally {
          this.#repairDone(run);
        }
      } else {
        await this.#sendSlotsDgram(run.slab, run.first, run.count, bucket, () => this.#repairDone(run));
      }
      this.#stats.repairDatagramsSent += run.count;
    }
  }

  #repairDone(run: RepairRun<Slab>): void {
    this.#freeSlabs(this.#repairs.done(run));
  }

  /** Sends the stored END once more, at most once per END_RESEND_EVERY_MS. */
  async #resendEnd(bucket: TokenBucket): Promise<void> {
    const memory = this.#endDatagram!;
    const waitMs = END_RESEND_EVERY_MS - (performance.now() - this.#endResentAtMs);
    if (waitMs > 0) await sleep(waitMs);
    this.#endResendWanted = false;
    this.#endResentAtMs = performance.now();
    await this.#sendOne(memory, bucket);
  }

  /** Sends one datagram through node:dgram, paced, and resolves once the kernel has it. */
  async #sendOne(memory: Buffer, bucket: TokenBucket): Promise<void> {
    while (bucket.take(memory.byteLength) > 0) {
      this.#throwIfStopped();
      await sleep(1);
    }
    await new Promise<void>((resolve) => {
      this.#socket!.send(memory, (error) => {
        if (error) this.#sendError ??= error;
        resolve();
      });
    });
    this.#stats.datagramsSent++;
  }

  /**
   * After END: answers repair requests until none came for repairLingerMs, finishRepairs() was
   * called, or the send was stopped (the data and END are out by then, so that ends it quietly).
   */
  async #lingerForRepairs(bucket: TokenBucket): Promise<void> {
    const { repairWindowBytes, repairLingerMs, signal } = this.#options;
    if (repairWindowBytes === 0 || repairLingerMs === 0) return;
    const endSentAtMs = performance.now();
    let waiter: (() => void) | null = null;
    const wakeUp = (): void => {
      waiter?.();
      waiter = null;
    };
    this.#wakeForRepairs = wakeUp;
    signal?.addEventListener('abort', wakeUp, { once: true });
    try {
      for (;;) {
        await this.#sendRepairs(bucket);
        if (this.#sendError) throw new SealcastError('E_IO', `sending to the group failed: ${this.#sendError.message}`, { cause: this.#sendError });
        if (this.#repairsFinished || signal?.aborted) return;
        const quietSinceMs = Math.max(endSentAtMs, this.#lastRepairRequestAtMs);
        const leftMs = repairLingerMs - (performance.now() - quietSinceMs);
        if (leftMs <= 0 && this.#repairs.queuedDatagrams === 0 && !this.#endResendWanted) return;
        if (this.#repairs.queuedDatagrams > 0 || this.#endResendWanted) continue;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          waiter = resolve;
          timer = setTimeout(resolve, Math.max(1, Math.ceil(leftMs)));
        });
        clearTimeout(timer);
      }
    } finally {
      signal?.removeEventListener('abort', wakeUp);
    }
  }

  /** One past the last stream byte of `slot` (every slot before a slab's last is full). */
  #slotEndOffset(slab: Slab, slot: number): number {
    return slab.firstOffset + slot * this.#payloadBytesMax + slab.lengths[slot];
  }

  /**
   * Flow control: waits until new data up to `endOffset` is within the flow window of the
   * slowest receiver, serving repairs meanwhile (a receiver may be waiting for one to move on).
   */
  async #waitForFlow(endOffset: number, bucket: TokenBucket): Promise<void> {
    const flow = this.#flow;
    if (flow === null || endOffset <= flow.allowedEnd(performance.now())) return;
    const startedAtMs = performance.now();
    try {
      for (;;) {
        await this.#sendRepairs(bucket);
        this.#throwIfStopped();
        if (endOffset <= flow.allowedEnd(performance.now())) return;
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.#flowWaker = resolve;
          timer = setTimeout(resolve, FLOW_POLL_MS);
        });
        clearTimeout(timer);
        this.#flowWaker = null;
      }
    } finally {
      this.#stats.flowWaitMs += performance.now() - startedAtMs;
    }
  }

  /** Sets the bucket to the adapted rate (rate-controller.ts), ramped up at the start. */
  #pace(bucket: TokenBucket): void {
    const now = performance.now();
    const adapted = this.#rates!.update(now, this.#stats.datagramsSent);
    const rate = adapted * rampFraction(now - this.#stats.startedAtMs, RAMP_MS);
    if (bucket.rateBytesPerSecond !== rate) bucket.setRate(rate);
  }

  async #sendEnd(digest: Uint8Array, bucket: TokenBucket): Promise<void> {
    const { sessionId, backend, endRepeats, endSpacingMs } = this.#options;
    const packetBytes = HEADER_BYTES + END_PAYLOAD_BYTES + TAG_BYTES;
    const memory = Buffer.alloc(packetBytes);
    const nonces = new Uint8Array(NONCE_BYTES);
    const layout = new Uint32Array(backend.constants.layoutWords);
    const source = this.#options.keys!;
    const sequence = this.#sealing.reserve(source.key, source.epoch, 1);
    writeHeaderUnchecked(memory, 0, this.#suiteId, PacketType.END, sessionId, source.epoch, sequence, this.#stats.bytes, END_PAYLOAD_BYTES);
    encodeEnd(memory, HEADER_BYTES, { totalBytes: this.#stats.bytes, dataPackets: this.#stats.dataPackets, sha256: digest });
    writeNonce(nonces, 0, source.epoch, sequence);
    layout[0] = 0;
    layout[1] = HEADER_BYTES;
    layout[2] = END_PAYLOAD_BYTES;
    await this.#options.sealer(source.key, { slab: memory, layout, nonces, count: 1 });

    // The same sealed bytes go out several times: a repeat is a resend, never a re-encryption.
    this.#endDatagram = memory;
    for (let copy = 0; copy < endRepeats; copy++) {
      if (copy > 0) await sleep(endSpacingMs);
      await this.#sendOne(memory, bucket);
    }
    this.#endResentAtMs = performance.now();
    if (this.#sendError) throw new SealcastError('E_IO', `sending to the group failed: ${this.#sendError.message}`, { cause: this.#sendError });
  }

  async #seal(keys: PacketKeySource, batch: PacketBatch): Promise<void> {
    const pool = this.#options.pool;
    if (pool !== undefined) {
      if (keys.poolKey === undefined) throw new SealcastError('E_INTERNAL', 'the sender has a pool but its key source has no poolKey');
      // Layout and nonces are small; giving the pool copies keeps the slab's own arrays usable.
      await pool.seal(keys.poolKey, { slab: batch.slab, layout: batch.layout.slice(), nonces: batch.nonces.slice(), count: batch.count });
      return;
    }
    await this.#options.sealer(keys.key, batch);
  }

  #throwIfStopped(): void {
    if (this.#sendError) throw new SealcastError('E_IO', `sending to the group failed: ${this.#sendError.message}`, { cause: this.#sendError });
    if (this.#options.signal?.aborted) throw new SealcastError('E_CLOSED', 'sending was stopped');
  }
}

/** Repair ranges at the library boundary: ascending, disjoint, non-empty safe-integer ranges. */
function requireRanges(ranges: readonly ByteRange[]): void {
  if (!Array.isArray(ranges) || ranges.length === 0) throw new TypeError('ranges must be a non-empty array of { from, to }');
  let previousTo = 0;
  for (const [index, range] of ranges.entries()) {
    const from = range?.from;
    const to = range?.to;
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from) {
      throw new RangeError(`ranges[${index}] must have safe integers 0 <= from < to, got ${JSON.stringify(range)}`);
    }
    if (index > 0 && from < previousTo) throw new RangeError(`ranges must be ascending and must not overlap (ranges[${index}])`);
    previousTo = to;
  }
}

/** The parts of `ranges` below `end`. */
function clipRanges(ranges: readonly ByteRange[], end: number): ByteRange[] {
  const clipped: ByteRange[] = [];
  for (const range of ranges) {
    if (range.from >= end) break;
    clipped.push({ from: range.from, to: Math.min(range.to, end) });
  }
  return clipped;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(ms))));
}

function closeSocket(socket: dgram.Socket | null): Promise<void> {
  if (socket === null) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
