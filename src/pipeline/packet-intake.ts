// The receiver's intake: datagrams from the socket into a receive slab, checked before any AEAD
// work (header, session, suite, key, duplicate), and opened a slab at a time with one batch call.
// What the packets that authenticate mean for the stream (ordering, END, output) is the
// Receiver's business; the intake hands each one over through its host.
//
// Two paths fill the slab. With batched I/O the addon's watch on the socket wakes the intake, the
// kernel writes datagrams straight into fixed slots (recvmmsg), one native call checks all their
// headers (packet/scan.ts) and the kept slots are moved down so the batch stays dense. With plain
// node:dgram, each 'message' is decoded in TypeScript and copied in back to back, and what
// arrived in one turn of the event loop is opened together. On the batched path, the packets
// that simply continue the stream are opened straight into the output with one native call per
// run (HeaderScanner.openInOrder, for native keys); the rest of the batch is opened in place,
// and the runs in it are copied into the output with one call each (HeaderScanner.gatherInOrder).
// Only the packets needing judgement (the first, holes, END, failures) cost JavaScript each.

import type dgram from 'node:dgram';
import type { AeadKey, PacketBatch } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { PacketKeyLookup } from '../keys/packet-keys.js';
import { NONCE_BYTES, writeNonce } from '../keys/sequencer.js';
import { decodeHeader, HEADER_BYTES, HeaderField, PacketType, SESSION_ID_BYTES, suiteFromId, type PacketHeader, type WireSuite } from '../packet/format.js';
import { loadHeaderScanner, ScanField, type GatherResult, type HeaderScanner, type InOrderOpenResult, type ScanCounts, type ScanTarget } from '../packet/scan.js';
import type { BatchSocket, ReadWatch } from './batch-io.js';
import type { DropCounts, NormalizedReceiverOptions } from './receiver-options.js';

/**
 * With batched I/O, each receive slot holds any UDP datagram (at most 65 507 bytes), so a
 * datagram is never cut short and the slab needs no layout decisions before the kernel fills it.
 */
const DRAIN_STRIDE_BYTES = 65_536;
/** Receive slots with batched I/O: 4 MiB of slab, up to 64 datagrams per recvmmsg. */
const DRAIN_SLOTS = 64;
/** recvmmsg calls per wake-up at most, so a flood cannot keep the event loop from its timers. */
const DRAIN_ROUNDS_MAX = 8;
/**
 * Bytes per wake-up at most, for the same reason: with GRO one round may bring 64 messages of
 * up to 64 datagrams each, so rounds alone would let a wake-up run for a whole 32 MiB.
 */
const DRAIN_BYTES_MAX = 4 * 1024 * 1024;
/**
 * With receive-side GRO a slot holds a message of up to 64 datagrams (what the kernel coalesces,
 * and what a sealcast sender puts in one GSO send): the batch has room for that many per slot.
 * Datagrams beyond it (a peer's GSO send of more, smaller datagrams) are dropped and counted.
 */
const GRO_DATAGRAMS_PER_SLOT_MAX = 64;

/** What the intake needs from the receiver it feeds. */
export interface IntakeHost {
  /** True once the receive ended (completed or failed): the intake stops at once. */
  readonly finished: boolean;
  /** The session the receiver follows, or null until the first packet authenticated. */
  readonly session: Uint8Array | null;
  /** Packets authenticated so far. */
  readonly authenticated: number;
  /**
   * Whether a packet of `type` at `streamOffset` is dropped before it is opened (a duplicate, or
   * data the receiver cannot take now); the host counts why. Only ever a drop: an
   * unauthenticated header can never make anything be written.
   */
  dropBeforeOpen(type: number, streamOffset: number): boolean;
  /**
   * A packet authenticated: its header is at `slotOffset` of `slab`, its plaintext follows it.
   * `sessionChecked`: its session was matched to `session` before the open.
   */
  onAuthenticated(slab: Buffer, slotOffset: number, payloadBytes: number, sessionChecked: boolean): void;
  /**
   * The fast path for packets whose session was checked: when the receiver can take the next
   * packets of the stream straight into its output, it calls `gather` with the stream offset it
   * expects next and the output's free space; `gather` puts the packets that continue the stream
   * there (copied from an opened batch, HeaderScanner.gatherInOrder, or opened straight into it,
   * HeaderScanner.openInOrder) and says what it wrote. Returns the packets taken (0: the packet
   * at hand takes the per-packet path). `roomBytes`: when the
   * output's current chunk has less room than this, the receiver moves on to a fresh chunk first
   * (the packet that stopped the last call needs that much).
   */
  takeInOrder(gather: InOrderGather, roomBytes: number): number;
  /** A slab was opened and every packet in it handed over. */
  afterOpen(): void;

  fail(error: unknown): void;
}

/**
 * Puts the packets that continue the stream at `nextOffset` into target[start, end): copies them
 * from an opened batch, or opens them straight into the target.
 */
export type InOrderGather = (nextOffset: number, target: Uint8Array, start: number, end: number) => GatherResult;

export class PacketIntake {
  /** Every datagram seen, whatever became of it. */
  datagrams = 0;
  /** When the first packet failed authentication (0: none has). */
  firstAuthFailedAtMs = 0;
  readonly #host: IntakeHost;
  readonly #options: NormalizedReceiverOptions;
  readonly #drops: DropCounts;
  #keys: PacketKeyLookup;
  #batchSocket: BatchSocket | null;
  /** The watch that wakes the batched path while attached. */
  #watch: ReadWatch | null = null;

  // With node:dgram, datagrams are copied in back to back and opened together; with batched I/O
  // the kernel writes them into fixed slots of DRAIN_STRIDE_BYTES.
  readonly #slab: Buffer;
  readonly #layout: Uint32Array;
  readonly #nonces: Uint8Array;
  readonly #status: Uint8Array;
  readonly #drainLengths = new Uint32Array(DRAIN_SLOTS);
  /** Per drain slot, the datagram size of a GRO message (0: one datagram); with #gro only. */
  readonly #drainSegments = new Uint32Array(DRAIN_SLOTS);
  /** Whether the socket takes GRO messages whole, and the scan splits them into datagrams. */
  readonly #gro: boolean = false;
  readonly #scanCounts: ScanCounts = { entries: 0, accepted: 0, overflow: 0 };
  #slabCount = 0;
  #slabUsed = 0;
  #slabKey: AeadKey | null = null;
  #openScheduled = false;
  // The batched path's native header scan (null: headers are decoded in TypeScript) and its
  // outputs; the scan writes the AEAD layout and nonces straight into #layout and #nonces.
  readonly #scanner: HeaderScanner | null = null;
  readonly #scanTarget: ScanTarget | null = null;
  /** Whether the packets listed in the slab had their session checked by the scan. */
  #slabSessionChecked = false;
  // The key the last scanned packet resolved to, and what it was resolved for: in a steady
  // stream every packet of a drain has the same epoch and suite, so one lookup serves them all.
  #lastKey: AeadKey | undefined = undefined;
  #lastKeyEpoch = -1;
  #lastKeySuiteId = -1;
  /** The header of the datagram #admit accepted last (valid until the next call). */
  #admitted: PacketHeader | null = null;
  /** The in-order gather's bounds within the opened slab, and its answer (reused per call). */
  #gatherFirst = 0;
  #gatherCount = 0;
  readonly #gathered: GatherResult = { packets: 0, bytes: 0 };
  /** The in-order open's batch, key and first packet (set per call), and its answer. */
  #runBatch: PacketBatch | null = null;
  #runKey: AeadKey | null = null;
  #runFirst = 0;
  readonly #opened: InOrderOpenResult = { packets: 0, bytes: 0, stop: 0, needBytes: 0 };

  constructor(host: IntakeHost, options: NormalizedReceiverOptions, drops: DropCounts, keys: PacketKeyLookup, batchSocket: BatchSocket | null) {
    this.#host = host;
    this.#options = options;
    this.#drops = drops;
    this.#keys = keys;
    this.#batchSocket = batchSocket;
    const batched = batchSocket !== null;
    const scanner = batched ? loadHeaderScanner() : null;
    // GRO needs the scan to split messages into datagrams; the socket may refuse it (old kernel).
    this.#gro = batchSocket !== null && scanner !== null && scanner.canSegment && options.gro && batchSocket.enableGro();
    // Entries of the batch: one per slot, or per datagram of a slot's GRO message.
    const entries = batched ? DRAIN_SLOTS * (this.#gro ? GRO_DATAGRAMS_PER_SLOT_MAX : 1) : options.slabSlots;
    this.#slab = Buffer.alloc(batched ? DRAIN_SLOTS * DRAIN_STRIDE_BYTES : options.slabBytes);
    this.#layout = new Uint32Array(entries * options.backend.constants.layoutWords);
    this.#nonces = new Uint8Array(entries * NONCE_BYTES);
    this.#status = new Uint8Array(entries);
    if (scanner !== null) {
      const target = scanner.createTarget(entries);
      // The scan lays out the batch where the open reads it; both must use the same layout.
      if (target.layout.length === this.#layout.length && target.nonces.byteLength === this.#nonces.byteLength) {
        this.#scanner = scanner;
        this.#scanTarget = { fields: target.fields, layout: this.#layout, nonces: this.#nonces };
      }
    }
  }

  /** Whether GRO messages are taken whole (receive-side UDP GRO is on). */
  get gro(): boolean {
    return this.#gro;
  }

  /** Replaces the key lookup, e.g. when the control plane delivers a new epoch's key. */
  setKeyLookup(keys: PacketKeyLookup): void {
    this.#keys = keys;
    this.#lastKey = undefined;
  }

  /** node:dgram's 'message' listener (the path without batched I/O). */
  readonly onMessage = (datagram: Buffer): void => {
    if (this.#host.finished) return;
    const key = this.#admit(datagram);
    if (key === undefined) return;
    const header = this.#admitted!;
    if (this.#slabCount > 0 && (key !== this.#slabKey || this.#slabUsed + datagram.byteLength > this.#slab.byteLength)) {
      this.#openSlab();
      if (this.#host.finished) return;
    }
    const offset = this.#slabUsed;
    datagram.copy(this.#slab, offset);
    this.#enqueue(offset, header, key);
    this.#slabUsed += datagram.byteLength;
    if (this.#slabCount === this.#options.slabSlots) {
      this.#openSlab();
    } else if (!this.#openScheduled) {
      // Open what arrived in this turn of the event loop together, after the socket's queue is read.
      this.#openScheduled = true;
      setImmediate(this.#onScheduledOpen);
    }
  };

  /**
   * Starts taking the socket's datagrams: with batched I/O the addon's watch wakes the intake
   * and node:dgram stops reading the socket; otherwise node:dgram's 'message' events bring them.
   */
  attach(socket: dgram.Socket): void {
    if (this.#batchSocket === null) {
      socket.on('message', this.onMessage);
      return;
    }
    this.#watch = this.#batchSocket.watchReadable(socket, this.#onReadable);
  }

  /**
   * Detaches from the socket, which is about to be closed: its descriptor may then be reused for
   * another file, so the batched calls must never touch it again, and the watch's duplicate of
   * the descriptor must go first, or the socket would outlive its close.
   */
  detach(socket: dgram.Socket): void {
    socket.off('message', this.onMessage);
    this.#watch?.close();
    this.#watch = null;
    this.#batchSocket = null;
  }

  /** The watch's wake-up: datagrams are queued (status 0), or polling failed (-errno). */
  readonly #onReadable = (status: number): void => {
    if (this.#host.finished || this.#batchSocket === null) return;
    if (status < 0) {
      this.#host.fail(new SealcastError('E_IO', `watching the multicast socket failed (libuv error ${status})`));
      return;
    }
    this.#drainBatched(this.#batchSocket);
  };

  /**
   * The batched path: the socket's queue is drained with recvmmsg straight into the slab's
   * slots and opened round by round, within this wake-up's bounds; what is left wakes the watch
   * again on the next turn of the event loop.
   */
  #drainBatched(batchSocket: BatchSocket): void {
    const lengths = this.#drainLengths;
    // Each wake-up starts with an empty slab: every round below ends by opening what it kept.
    let drainedBytes = 0;
    for (let round = 0; round < DRAIN_ROUNDS_MAX && drainedBytes < DRAIN_BYTES_MAX; round++) {
      const wanted = Math.min(DRAIN_SLOTS, batchSocket.batchMax);
      let received: number;
      try {
        received = batchSocket.receive(this.#slab, DRAIN_STRIDE_BYTES, lengths, 0, wanted, this.#gro ? this.#drainSegments : null);
      } catch (error) {
        this.#host.fail(error instanceof SealcastError ? error : new SealcastError('E_IO', `receiving failed: ${(error as Error).message}`, { cause: error }));
        return;
      }
      for (let slot = 0; slot < received; slot++) drainedBytes += lengths[slot];
      if (this.#scanner !== null) {
        this.#admitScanned(this.#scanner, received);
      } else {
        for (let slot = 0; slot < received && !this.#host.finished; slot++) this.#admitSlot(slot, lengths[slot]);
      }
      if (this.#host.finished) return;
      if (this.#slabCount > 0) this.#openSlab();
      // The slots are reused next round, so opening (above) must come first; a short read
      // means the queue is empty.
      if (this.#host.finished || received < wanted) return;
    }
  }

  /**
   * Admits drain slots [0, filled) from one native scan of their headers: the same checks as
   * #admit, on numbers the scan wrote instead of a decoded header per datagram. Kept slots are
   * moved down so the batch stays dense; the scan put each one's layout and nonce at its slot.
   */
  #admitScanned(scanner: HeaderScanner, filled: number): void {
    const target = this.#scanTarget!;
    const fields = target.fields;
    const fieldCount = scanner.fieldCount;
    const statusOk = scanner.status.ok;
    const words = this.#options.backend.constants.layoutWords;
    const session = this.#host.session;
    const sessionChecked = session !== null;
    let entries = filled;
    if (this.#gro) {
      const counts = this.#scanCounts;
      entries = scanner.scanMessages(this.#slab, DRAIN_STRIDE_BYTES, this.#drainLengths, this.#drainSegments, 0, filled, session, target, counts);
      // A message of more datagrams than the batch has room for: not what a sealcast sender sends.
      this.datagrams += counts.overflow;
      this.#drops.malformed += counts.overflow;
    } else {
      scanner.scan(this.#slab, DRAIN_STRIDE_BYTES, this.#drainLengths, 0, filled, session, target);
    }
    this.datagrams += entries;
    // `slot` is an entry of the batch: one per drain slot, or per datagram of a GRO message.
    for (let slot = 0; slot < entries; slot++) {
      const base = slot * fieldCount;
      const status = fields[base + ScanField.status];
      if (status !== statusOk) {
        if (status === scanner.status.otherSession) this.#drops.otherSession++;
        else this.#drops.malformed++;
        continue;
      }
      const type = fields[base + ScanField.type];
      if (type !== PacketType.DATA && type !== PacketType.END) {
        this.#drops.unsupported++;
        continue;
      }
      const key = this.#scannedKey(this.#layout[slot * words], fields[base + ScanField.epoch], fields[base + ScanField.suite], sessionChecked);
      if (this.#host.finished) return;
      if (key === undefined) continue;
      if (this.#host.dropBeforeOpen(type, fields[base + ScanField.streamOffset])) continue;
      if (this.#slabCount > 0 && (key !== this.#slabKey || sessionChecked !== this.#slabSessionChecked)) {
        this.#openSlab();
        if (this.#host.finished) return;
      }
      const kept = this.#slabCount;
      if (kept !== slot) {
        this.#layout.copyWithin(kept * words, slot * words, slot * words + words);
        this.#nonces.copyWithin(kept * NONCE_BYTES, slot * NONCE_BYTES, slot * NONCE_BYTES + NONCE_BYTES);
      }
      this.#slabKey = key;
      this.#slabSessionChecked = sessionChecked;
      this.#slabCount++;
    }
  }

  /**
   * The key for a scanned packet at `slotOffset`, or undefined when it was dropped (and counted).
   * While the session is settled, a packet of the same epoch and suite as the last reuses its key.
   */
  #scannedKey(slotOffset: number, epoch: number, suiteId: number, sessionChecked: boolean): AeadKey | undefined {
    if (sessionChecked && epoch === this.#lastKeyEpoch && suiteId === this.#lastKeySuiteId && this.#lastKey !== undefined && !this.#lastKey.destroyed) {
      return this.#lastKey;
    }
    // A lookup may derive a key and make the key ring drop another, possibly the one the
    // packets listed so far wait to be opened with: open them first.
    if (this.#slabCount > 0) {
      this.#openSlab();
      if (this.#host.finished) return undefined;
    }
    const sessionId = this.#slab.subarray(slotOffset + HeaderField.sessionId, slotOffset + HeaderField.sessionId + SESSION_ID_BYTES);
    const key = this.#lookupKey(sessionId, epoch, suiteFromId(suiteId) as WireSuite);
    if (key !== undefined && sessionChecked) {
      this.#lastKey = key;
      this.#lastKeyEpoch = epoch;
      this.#lastKeySuiteId = suiteId;
    }
    return key;
  }

  /** Admits the datagram the kernel put into a drain slot (in place: no copy). */
  #admitSlot(slot: number, length: number): void {
    if (length > DRAIN_STRIDE_BYTES) {
      // Truncated by the kernel: what is left cannot be a whole packet.
      this.datagrams++;
      this.#drops.malformed++;
      return;
    }
    const offset = slot * DRAIN_STRIDE_BYTES;
    const key = this.#admit(this.#slab.subarray(offset, offset + length));
    if (key === undefined) return;
    if (this.#slabCount > 0 && key !== this.#slabKey) {
      this.#openSlab();
      if (this.#host.finished) return;
    }
    this.#enqueue(offset, this.#admitted!, key);
  }

  /**
   * Counts a datagram and checks everything that can be checked before opening it: its header,
   * session, suite, key, and whether it is a duplicate. Returns the key to open it with, or
   * undefined when it was dropped (and counted).
   */
  #admit(datagram: Uint8Array): AeadKey | undefined {
    this.datagrams++;
    const decoded = decodeHeader(datagram);
    if (!decoded.ok) {
      this.#drops.malformed++;
      return undefined;
    }
    const header = decoded.header;
    if (header.type !== PacketType.DATA && header.type !== PacketType.END) {
      this.#drops.unsupported++;
      return undefined;
    }
    const session = this.#host.session;
    if (session !== null && !sameBytes(header.sessionId, session)) {
      this.#drops.otherSession++;
      return undefined;
    }
    const key = this.#lookupKey(header.sessionId, header.epoch, header.suite);
    if (key === undefined) return undefined;
    // Cheap replay and duplicate check before spending an AEAD open on the packet. It only
    // drops: an unauthenticated header can never make anything be written.
    if (this.#host.dropBeforeOpen(header.type, header.streamOffset)) return undefined;
    this.#admitted = header;
    return key;
  }

  /** The key for (session, epoch, suite), or undefined when there is none (counted as noKey). */
  #lookupKey(sessionId: Uint8Array, epoch: number, suite: WireSuite): AeadKey | undefined {
    const { backend, wrongKeyPackets } = this.#options;
    if (!backend.suites.includes(suite)) {
      this.#drops.noKey++;
      if (this.#host.authenticated === 0 && this.#drops.noKey >= wrongKeyPackets) {
        this.#host.fail(new SealcastError('E_BACKEND', `the stream uses ${suite}, which the ${backend.name} backend lacks (it offers ${backend.suites.join(', ')})`));
      }
      return undefined;
    }
    let key: AeadKey | undefined;
    try {
      key = this.#keys(sessionId, epoch, suite);
    } catch {
      key = undefined;
    }
    if (key === undefined || key.destroyed) {
      this.#drops.noKey++;
      return undefined;
    }
    return key;
  }

  /** Lists a slot that holds an admitted datagram in the batch to open next. */
  #enqueue(offset: number, header: PacketHeader, key: AeadKey): void {
    const slot = this.#slabCount;
    const words = this.#options.backend.constants.layoutWords;
    this.#layout[slot * words] = offset;
    this.#layout[slot * words + 1] = HEADER_BYTES;
    this.#layout[slot * words + 2] = header.payloadBytes;
    writeNonce(this.#nonces, slot * NONCE_BYTES, header.epoch, header.sequence);
    this.#slabKey = key;
    this.#slabCount++;
  }

  readonly #gatherInOrder: InOrderGather = (nextOffset, target, start, end) => {
    this.#scanner!.gatherInOrder(
      this.#slab,
      this.#layout,
      this.#status,
      this.#gatherFirst,
      this.#gatherCount,
      this.#options.backend.constants.statusOk,
      nextOffset,
      target,
      start,
      end,
      this.#gathered,
    );
    return this.#gathered;
  };

  /** Opens the run's packets that continue the stream straight into the output's chunk. */
  readonly #openInOrder: InOrderGather = (nextOffset, target, start, end) => {
    this.#scanner!.openInOrder(this.#runKey!, this.#runBatch!, this.#status, this.#runFirst, nextOffset, target, start, end, this.#opened);
    return this.#opened;
  };

  readonly #onScheduledOpen = (): void => {
    this.#openScheduled = false;
    if (!this.#host.finished && this.#slabCount > 0) this.#openSlab();
  };

  #openSlab(): void {
    const count = this.#slabCount;
    const key = this.#slabKey!;
    const sessionChecked = this.#slabSessionChecked;
    this.#slabSessionChecked = false;
    this.#slabCount = 0;
    this.#slabUsed = 0;
    this.#slabKey = null;
    if (key.destroyed) {
      // Rotated out under us: nothing in this slab can be trusted.
      this.#drops.noKey += count;
      return;
    }
    const batch: PacketBatch = { slab: this.#slab, layout: this.#layout, nonces: this.#nonces, count };
    const scanner = this.#scanner;
    // Packets [0, first) went straight into the output (or failed on the way); the rest are
    // opened in place and handed over one run or packet at a time.
    let first = 0;
    if (sessionChecked && scanner !== null && scanner.canOpenInOrder(key)) {
      first = this.#openRuns(scanner, key, batch);
      if (this.#host.finished) return;
    }
    const restOpened = first === count || this.#openRest(key, batch, first);
    const { statusOk, layoutWords: words } = this.#options.backend.constants;
    const gathers = sessionChecked && scanner !== null && scanner.canGather;
    for (let slot = first; restOpened && slot < count && !this.#host.finished; slot++) {
      if (gathers) {
        this.#gatherFirst = slot;
        this.#gatherCount = count - slot;
        slot += this.#host.takeInOrder(this.#gatherInOrder, 0);
        if (slot >= count || this.#host.finished) break;
      }
      if (this.#status[slot] !== statusOk) {
        this.#countAuthFailure();
        continue;
      }
      this.#host.onAuthenticated(this.#slab, this.#layout[slot * words], this.#layout[slot * words + 2], sessionChecked);
    }
    if (this.#host.finished) return;
    this.#host.afterOpen();
  }

  /**
   * Opens the batch's packets that continue the stream straight into the output, run after run
   * (a run ends where the output's chunk is full), and returns how many packets from the start
   * were dealt with. It stops at the first packet that needs the receiver's judgement, at the
   * first that fails to authenticate, or when the receiver cannot take packets in order now; the
   * caller opens the rest in place with one call. Stopping at a failure bounds the calls: a flood
   * of forgeries at the next offset must not cost a call (and a check of the batch) each.
   */
  #openRuns(scanner: HeaderScanner, key: AeadKey, batch: PacketBatch): number {
    const stops = scanner.inOrderStop!;
    const opened = this.#opened;
    this.#runBatch = batch;
    this.#runKey = key;
    let slot = 0;
    let roomBytes = 0;
    // Every round takes at least one packet, or asks once for a fresh chunk, or ends the loop;
    // a round that takes packets ends with a full chunk, so there are few rounds per batch.
    while (slot < batch.count && !this.#host.finished) {
      this.#runFirst = slot;
      opened.packets = 0;
      opened.stop = stops.judgement;
      const taken = this.#host.takeInOrder(this.#openInOrder, roomBytes);
      slot += taken;
      if (opened.stop === stops.authFailed) {
        this.#countAuthFailure();
        slot++;
        break;
      }
      if (opened.stop === stops.targetFull && (taken > 0 || roomBytes < opened.needBytes)) {
        roomBytes = opened.needBytes;
        continue;
      }
      if (taken === 0 || opened.stop !== stops.batchEnd) break;
    }
    this.#runBatch = null;
    this.#runKey = null;
    return slot;
  }

  /**
   * Opens packets [first, count) in place with one call. Returns false when the key was destroyed
   * under us (e.g. rotated out): nothing of those packets is trusted, and they count as noKey.
   */
  #openRest(key: AeadKey, batch: PacketBatch, first: number): boolean {
    const rest = first === 0 ? batch : {
      slab: batch.slab,
      layout: batch.layout.subarray(first * this.#options.backend.constants.layoutWords),
      nonces: batch.nonces.subarray(first * NONCE_BYTES),
      count: batch.count - first,
    };
    try {
      key.openBatch(rest, first === 0 ? this.#status : this.#status.subarray(first));
      return true;
    } catch {
      this.#drops.noKey += batch.count - first;
      return false;
    }
  }

  #countAuthFailure(): void {
    if (this.#drops.authFailed === 0) this.firstAuthFailedAtMs = performance.now();
    this.#drops.authFailed++;
  }
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let index = 0; index < a.byteLength; index++) if (a[index] !== b[index]) return false;
  return true;
}
