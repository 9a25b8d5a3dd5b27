// The receiving half of the data plane: multicast socket -> receive slab (one copy per datagram:
// recvmmsg straight into slab slots on the batched path) -> one native header scan per drain
// (packet/scan.ts; decodeHeader per datagram on the node:dgram path) -> one openBatch per slab
// -> reorder window -> DeliveredStream (chunked output and its SHA-256) -> END check. Options and
// results are in receiver-options.ts.
//
// Nothing reaches the output before its tag verified, and nothing is written past a hole: the
// output is always an authenticated, contiguous prefix of the stream (from the offset this
// receiver started at).

import type dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { WriteStream } from 'node:fs';
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { AeadKey, PacketBatch } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { PacketKeyLookup } from '../keys/packet-keys.js';
import { NONCE_BYTES, writeNonce } from '../keys/sequencer.js';
import { decodeEnd, type EndRecord } from '../packet/end.js';
import { DATAGRAM_BYTES_MAX, decodeHeader, HEADER_BYTES, HeaderField, PacketType, readU64, SESSION_ID_BYTES, suiteFromId, type PacketHeader, type WireSuite } from '../packet/format.js';
import { loadHeaderScanner, ScanField, type HeaderScanner, type ScanTarget } from '../packet/scan.js';
import { openBatchSocket, type BatchSocket } from './batch-io.js';
import { openReceiverSocket } from './multicast.js';
import { DeliveredStream } from './delivered-stream.js';
import { describeDrops, normalizeReceiverOptions, type NormalizedReceiverOptions, type ReceiveResult, type ReceiveStats, type ReceiverOptions, type DropCounts } from './receiver-options.js';
import { OutputWriter } from './output.js';
import { describeRanges, ReorderWindow } from './reorder.js';

const TICK_MS = 100;
/** After a failure, how long the output may take to write what was delivered before it. */
const FAIL_OUTPUT_DRAIN_MS_MAX = 10_000;
/** Bounds the payloads held while the start offset is not yet known (jumbo datagrams are large). */
const BEFORE_START_BYTES_MAX = 16 * 1024 * 1024;
const WRONG_KEY_SLOW_PACKETS = 8;
const WRONG_KEY_SLOW_MS = 3_000;
/**
 * With batched I/O, each receive slot holds any UDP datagram (at most 65 507 bytes), so a
 * datagram is never cut short and the slab needs no layout decisions before the kernel fills it.
 */
const DRAIN_STRIDE_BYTES = 65_536;
/** Receive slots with batched I/O: 4 MiB of slab, up to 64 datagrams per recvmmsg. */
const DRAIN_SLOTS = 64;
/** recvmmsg calls per wake-up at most, so a flood cannot keep the event loop from its timers. */
const DRAIN_ROUNDS_MAX = 8;

// The options, results and defaults live in receiver-options.ts; importers of this module keep
// finding them here.
export * from './receiver-options.js';

export class Receiver extends EventEmitter {
  readonly #options: NormalizedReceiverOptions;
  #keys: PacketKeyLookup;
  readonly #drops: DropCounts = { malformed: 0, authFailed: 0, otherSession: 0, noKey: 0, duplicate: 0, unsupported: 0 };
  #datagrams = 0;
  #authenticated = 0;
  #recvBufferBytes = 0;

  // Receive slab. With node:dgram, datagrams are copied in back to back and opened together;
  // with batched I/O the kernel writes them into fixed slots of DRAIN_STRIDE_BYTES.
  #slab: Buffer = Buffer.alloc(0);
  #layout: Uint32Array = new Uint32Array(0);
  #nonces: Uint8Array = new Uint8Array(0);
  #status: Uint8Array = new Uint8Array(0);
  #batchSocket: BatchSocket | null = null;
  #ioPath: 'native' | 'dgram' | null = null;
  readonly #drainLengths = new Uint32Array(DRAIN_SLOTS);
  #slabCount = 0;
  #slabUsed = 0;
  #slabKey: AeadKey | null = null;
  #openScheduled = false;
  // The batched path's native header scan (null: headers are decoded in TypeScript) and its
  // outputs; the scan writes the AEAD layout and nonces straight into #layout and #nonces.
  #scanner: HeaderScanner | null = null;
  #scanTarget: ScanTarget | null = null;
  /** Whether the packets listed in the slab had their session checked by the scan. */
  #slabSessionChecked = false;
  // The key the last scanned packet resolved to, and what it was resolved for: in a steady
  // stream every packet of a drain has the same epoch and suite, so one lookup serves them all.
  #lastKey: AeadKey | undefined = undefined;
  #lastKeyEpoch = -1;
  #lastKeySuiteId = -1;

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

  #socket: dgram.Socket | null = null;
  #ticker: NodeJS.Timeout | null = null;
  #listeningAtMs = 0;
  #lastAuthenticatedAtMs = 0;
  #firstAuthenticatedAtMs = 0;
  #firstAuthFailedAtMs = 0;
  #stoppedAtMs = 0;
  #finished = false;
  #settle: { resolve: (result: ReceiveResult) => void; reject: (error: unknown) => void } | null = null;
  #used = false;

  constructor(options: ReceiverOptions) {
    super();
    this.#options = normalizeReceiverOptions(options);
    this.#keys = options.keys;
    this.#session = options.sessionId ? new Uint8Array(options.sessionId) : null;
  }

  /** Sizes the receive slab for the I/O path chosen once the socket is open. */
  #allocateSlab(batched: boolean): void {
    const slots = batched ? DRAIN_SLOTS : this.#options.slabSlots;
    this.#slab = Buffer.alloc(batched ? DRAIN_SLOTS * DRAIN_STRIDE_BYTES : this.#options.slabBytes);
    this.#layout = new Uint32Array(slots * this.#options.backend.constants.layoutWords);
    this.#nonces = new Uint8Array(slots * NONCE_BYTES);
    this.#status = new Uint8Array(slots);
    this.#scanner = batched ? loadHeaderScanner() : null;
    if (this.#scanner !== null) {
      const target = this.#scanner.createTarget(slots);
      // The scan lays out the batch where the open reads it; both use the backend's layout.
      if (target.layout.length !== this.#layout.length || target.nonces.byteLength !== this.#nonces.byteLength) {
        this.#scanner = null;
      } else {
        this.#scanTarget = { fields: target.fields, layout: this.#layout, nonces: this.#nonces };
      }
    }
  }

  /** Replaces the key lookup, e.g. when the control plane delivers a new epoch's key. */
  setKeyLookup(keys: PacketKeyLookup): void {
    if (typeof keys !== 'function') throw new TypeError('keys must be a PacketKeyLookup function');
    this.#keys = keys;
    this.#lastKey = undefined;
  }

  get stats(): ReceiveStats {
    return {
      sessionId: this.#session ? Buffer.from(this.#session).toString('hex') : null,
      suite: this.#suite,
      startOffset: this.#startOffset,
      bytes: this.#stream?.bytes ?? 0,
      datagrams: this.#datagrams,
      authenticated: this.#authenticated,
      drops: { ...this.#drops },
      recvBufferBytes: this.#recvBufferBytes,
      totalBytes: this.#end?.totalBytes ?? null,
      io: this.#ioPath,
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
    try {
      this.#batchSocket = openBatchSocket(socket, this.#options.io);
    } catch (error) {
      socket.close();
      throw error;
    }
    this.#allocateSlab(this.#batchSocket !== null);
    this.#ioPath = this.#batchSocket !== null ? 'native' : 'dgram';
    this.#socket = socket;
    this.#recvBufferBytes = recvBufferBytes;
    this.#output = new OutputWriter(output, this.#options.outputQueueBytesMax);
    this.#stream = new DeliveredStream(this.#output, { reuseChunks: releasesChunksOnCallback(output) });
    const done = new Promise<ReceiveResult>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#listeningAtMs = performance.now();
    socket.on('message', this.#onMessage);
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

  readonly #onMessage = (datagram: Buffer): void => {
    if (this.#finished) return;
    if (this.#batchSocket !== null) {
      this.#drainBatched(datagram, this.#batchSocket);
      return;
    }
    const key = this.#admit(datagram);
    if (key === undefined) return;
    const header = this.#admitted!;
    if (this.#slabCount > 0 && (key !== this.#slabKey || this.#slabUsed + datagram.byteLength > this.#slab.byteLength)) {
      this.#openSlab();
      if (this.#finished) return;
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
   * The batched path: libuv read one datagram and woke us; the rest of the socket's queue is
   * drained here with recvmmsg straight into the slab's slots and opened round by round. Node's
   * datagram goes first (into slot 0), so arrival order is kept.
   */
  #drainBatched(datagram: Buffer, batchSocket: BatchSocket): void {
    const slab = this.#slab;
    const lengths = this.#drainLengths;
    // Each wake-up starts with an empty slab: every round below ends by opening what it kept.
    let first = 0;
    if (datagram.byteLength <= DRAIN_STRIDE_BYTES) {
      datagram.copy(slab, 0);
      lengths[0] = datagram.byteLength;
      first = 1;
    } else {
      this.#datagrams++;
      this.#drops.malformed++;
    }
    for (let round = 0; round < DRAIN_ROUNDS_MAX; round++) {
      const wanted = Math.min(DRAIN_SLOTS - first, batchSocket.batchMax);
      let received: number;
      try {
        received = batchSocket.receive(slab, DRAIN_STRIDE_BYTES, lengths, first, wanted);
      } catch (error) {
        this.#fail(error instanceof SealcastError ? error : new SealcastError('E_IO', `receiving failed: ${(error as Error).message}`, { cause: error }));
        return;
      }
      const filled = first + received;
      if (this.#scanner !== null) {
        this.#admitScanned(this.#scanner, filled);
      } else {
        for (let slot = 0; slot < filled && !this.#finished; slot++) this.#admitSlot(slot, lengths[slot]);
      }
      if (this.#finished) return;
      if (this.#slabCount > 0) this.#openSlab();
      // The slots are reused next round, so opening (above) must come first; a short read
      // means the queue is empty.
      if (this.#finished || this.#socket === null || received < wanted) return;
      first = 0;
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
    const sessionChecked = this.#session !== null;
    scanner.scan(this.#slab, DRAIN_STRIDE_BYTES, this.#drainLengths, 0, filled, this.#session, target);
    this.#datagrams += filled;
    for (let slot = 0; slot < filled; slot++) {
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
      const key = this.#scannedKey(slot * DRAIN_STRIDE_BYTES, fields[base + ScanField.epoch], fields[base + ScanField.suite], sessionChecked);
      if (this.#finished) return;
      if (key === undefined) continue;
      if (this.#window !== null) {
        if (type === PacketType.DATA) {
          const placement = this.#window.place(fields[base + ScanField.streamOffset]);
          if (placement === 'old' || placement === 'buffered') {
            this.#drops.duplicate++;
            continue;
          }
        } else if (this.#end !== null) {
          this.#drops.duplicate++;
          continue;
        }
      }
      if (this.#slabCount > 0 && (key !== this.#slabKey || sessionChecked !== this.#slabSessionChecked)) {
        this.#openSlab();
        if (this.#finished) return;
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
      if (this.#finished) return undefined;
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
      this.#datagrams++;
      this.#drops.malformed++;
      return;
    }
    const offset = slot * DRAIN_STRIDE_BYTES;
    const key = this.#admit(this.#slab.subarray(offset, offset + length));
    if (key === undefined) return;
    if (this.#slabCount > 0 && key !== this.#slabKey) {
      this.#openSlab();
      if (this.#finished) return;
    }
    this.#enqueue(offset, this.#admitted!, key);
  }

  /** The header of the datagram #admit accepted last (valid until the next call). */
  #admitted: PacketHeader | null = null;

  /**
   * Counts a datagram and checks everything that can be checked before opening it: its header,
   * session, suite, key, and whether it is a duplicate. Returns the key to open it with, or
   * undefined when it was dropped (and counted).
   */
  #admit(datagram: Uint8Array): AeadKey | undefined {
    this.#datagrams++;
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
    if (this.#session !== null && !sameBytes(header.sessionId, this.#session)) {
      this.#drops.otherSession++;
      return undefined;
    }
    const key = this.#lookupKey(header.sessionId, header.epoch, header.suite);
    if (key === undefined) return undefined;
    // Cheap replay and duplicate check before spending an AEAD open on the packet. It only
    // drops: an unauthenticated header can never make anything be written.
    if (this.#window !== null) {
      if (header.type === PacketType.DATA) {
        const placement = this.#window.place(header.streamOffset);
        if (placement === 'old' || placement === 'buffered') {
          this.#drops.duplicate++;
          return undefined;
        }
      } else if (this.#end !== null) {
        this.#drops.duplicate++;
        return undefined;
      }
    }
    this.#admitted = header;
    return key;
  }

  /** The key for (session, epoch, suite), or undefined when there is none (counted as noKey). */
  #lookupKey(sessionId: Uint8Array, epoch: number, suite: WireSuite): AeadKey | undefined {
    if (!this.#options.backend.suites.includes(suite)) {
      this.#drops.noKey++;
      if (this.#authenticated === 0 && this.#drops.noKey >= this.#options.wrongKeyPackets) {
        this.#fail(new SealcastError('E_BACKEND', `the stream uses ${suite}, which the ${this.#options.backend.name} backend lacks (it offers ${this.#options.backend.suites.join(', ')})`));
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

  readonly #onScheduledOpen = (): void => {
    this.#openScheduled = false;
    if (!this.#finished && this.#slabCount > 0) this.#openSlab();
  };

  #openSlab(): void {
    const count = this.#slabCount;
    const key = this.#slabKey!;
    const sessionChecked = this.#slabSessionChecked;
    this.#slabSessionChecked = false;
    this.#slabCount = 0;
    this.#slabUsed = 0;
    this.#slabKey = null;
    const batch: PacketBatch = { slab: this.#slab, layout: this.#layout, nonces: this.#nonces, count };
    try {
      key.openBatch(batch, this.#status);
    } catch {
      // The key was destroyed under us (e.g. rotated out): nothing in this slab is trusted.
      this.#drops.noKey += count;
      return;
    }
    const { statusOk } = this.#options.backend.constants;
    const words = this.#options.backend.constants.layoutWords;
    for (let slot = 0; slot < count && !this.#finished; slot++) {
      if (this.#status[slot] !== statusOk) {
        if (this.#drops.authFailed === 0) this.#firstAuthFailedAtMs = performance.now();
        this.#drops.authFailed++;
        continue;
      }
      this.#onAuthenticated(this.#layout[slot * words], this.#layout[slot * words + 2], sessionChecked);
    }
    if (this.#finished) return;
    // Small writes cost a system call each: output goes out a chunk at a time, or after a short
    // wait (the ticker and completion flush the rest).
    this.#flushOutput(true);
    if (this.#authenticated === 0 && this.#drops.authFailed >= this.#options.wrongKeyPackets) {
      this.#failWrongKey();
      return;
    }
    this.#checkComplete();
  }

  #failWrongKey(): void {
    this.#fail(
      new SealcastError(
        'E_AUTH',
        `no packet authenticated with this key: wrong key? (${this.#drops.authFailed} packets failed authentication, none succeeded; nothing was written)`,
      ),
    );
  }

  /** `sessionChecked`: the header scan already matched the packet's session to this.#session. */
  #onAuthenticated(slotOffset: number, payloadBytes: number, sessionChecked: boolean): void {
    const slab = this.#slab;
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
    if (streamOffset === 0 || this.#beforeStart.size >= this.#options.reorderPacketsMax || this.#beforeStartBytes >= BEFORE_START_BYTES_MAX) {
      this.#startFromHeld();
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

  #acceptData(streamOffset: number, payload: Uint8Array): void {
    const window = this.#window!;
    switch (window.place(streamOffset)) {
      case 'next':
        this.#deliver(payload);
        for (let held = window.takeNext(); held !== undefined && !this.#finished; held = window.takeNext()) this.#deliver(held);
        break;
      case 'ahead':
        window.hold(streamOffset, payload);
        break;
      case 'overflow':
        this.#fail(this.#gapError(`the reorder window overflowed (${window.heldPackets} packets held)`, Math.max(streamOffset, this.#end?.totalBytes ?? 0)));
        return;
      default:
        this.#drops.duplicate++;
    }
    if (this.#end !== null && window.nextOffset > this.#end.totalBytes) {
      this.#fail(new SealcastError('E_PROTOCOL', `the stream ran past the length its END announced (${this.#end.totalBytes} bytes)`));
    }
  }

  #begin(streamOffset: number): void {
    this.#startOffset = streamOffset;
    this.#window = new ReorderWindow(streamOffset, this.#options.reorderPacketsMax, this.#options.reorderPacketsMax * DATAGRAM_BYTES_MAX);
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
    if (this.#window === null && this.#beforeStart.size > 0 && now - this.#beforeStartSinceMs >= this.#options.startSettleMs) {
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
      now - this.#firstAuthFailedAtMs >= WRONG_KEY_SLOW_MS
    ) {
      this.#failWrongKey();
      return;
    }
    if (this.#window === null) {
      const { startTimeoutMs } = this.#options;
      if (startTimeoutMs > 0 && now - this.#listeningAtMs > startTimeoutMs) {
        const heard = this.#datagrams > 0 ? ` (${this.#datagrams} datagrams heard, none opened: ${describeDrops(this.#drops)})` : '';
        this.#fail(new SealcastError('E_TIMEOUT', `no stream started on ${this.#options.group.address}:${this.#options.group.port} within ${startTimeoutMs / 1000} s${heard}`));
      }
      return;
    }
    if (this.#end !== null && now - this.#endAtMs > this.#options.endGraceMs) {
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
    // The descriptor is closed below and may be reused for another file: never touch it again.
    this.#batchSocket = null;
    if (socket !== null) {
      socket.off('message', this.#onMessage);
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
  return output instanceof WriteStream || output instanceof Socket || output === process.stdout || output === process.stderr;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let index = 0; index < a.byteLength; index++) if (a[index] !== b[index]) return false;
  return true;
}
