// The sender's window of sent ciphertext for loss repair (DESIGN.md, "Loss"). Slabs stay here
// after they were transmitted, oldest first, until the window's byte budget pushes them out.
// A repair request names byte ranges of the stream; it becomes a queue of slot runs to send
// again. What goes out again is the stored sealed datagram, byte for byte: a repair never
// re-encrypts, so it never uses a nonce a second time.

import type { ByteRange } from './reorder.js';

/** What the window needs to know of a sender's slab. */
export interface RetainableSlab {
  readonly memory: Buffer;
  readonly layout: Uint32Array;
  /** Payload bytes per slot. */
  readonly lengths: Uint32Array;
  /** Filled slots. */
  readonly count: number;
  /** Stream offset of slot 0's payload. */
  readonly firstOffset: number;
}

interface Retained<S extends RetainableSlab> {
  readonly slab: S;
  readonly firstOffset: number;
  readonly endOffset: number;
  /** Datagram bytes, what the budget counts. */
  readonly datagramBytes: number;
  /** Queued runs that still have to send from this slab: it must not be reused before. */
  pins: number;
  /** Per slot: 1 while a queued run covers it, so that many requests for one loss send it once. */
  readonly queued: Uint8Array;
  /** Per slot: 1 once it was queued for repair at all (a later request is a repeat, not a new loss). */
  readonly repaired: Uint8Array;
}

/** Consecutive slots of one retained slab to send again. */
export interface RepairRun<S extends RetainableSlab> {
  readonly slab: S;
  readonly first: number;
  readonly count: number;
  /** Datagram bytes of the run, for pacing. */
  readonly datagramBytes: number;
  /** The window's record of the slab, pinned until done(run). */
  readonly holder: object;
}

export interface RepairRequestOutcome {
  /** Datagrams this request added to the queue (slots already queued are not counted again). */
  queuedDatagrams: number;
  /** Of those, the datagrams never queued for repair before: losses reported for the first time. */
  firstLossDatagrams: number;
  /** Requested bytes that already left the window: they cannot be repaired. */
  unavailable: ByteRange[];
  /** Datagrams not queued because the queue was full. */
  refusedDatagrams: number;
}

export class RepairWindow<S extends RetainableSlab> {
  readonly windowBytes: number;
  /**
   * The most slabs held, whatever their bytes: the sender has a fixed number of slabs, and
   * partly filled ones (a slow source) would otherwise let the window keep all of them.
   */
  readonly slabsMax: number;
  readonly queueDatagramsMax: number;
  readonly #payloadBytesMax: number;
  readonly #overheadBytes: number;
  readonly #entries: Retained<S>[] = [];
  readonly #queue: Array<{ entry: Retained<S>; first: number; count: number }> = [];
  #retainedBytes = 0;
  #queuedDatagrams = 0;
  /** Stream offset below which nothing is held any more (what was pushed out). */
  #evictedEndOffset = 0;

  /**
   * `windowBytes`: datagram bytes kept for repair; `payloadBytesMax`: a full slot's payload (every
   * slot of a slab but its last is full); `overheadBytes`: header and tag per datagram;
   * `queueDatagramsMax`: the most datagrams waiting to be sent again.
   */
  constructor(windowBytes: number, payloadBytesMax: number, overheadBytes: number, queueDatagramsMax: number, slabsMax = Number.MAX_SAFE_INTEGER) {
    if (!Number.isSafeInteger(windowBytes) || windowBytes < 0) throw new RangeError(`windowBytes must be a non-negative integer, got ${windowBytes}`);
    if (!Number.isSafeInteger(slabsMax) || slabsMax < 1) throw new RangeError(`slabsMax must be a positive integer, got ${slabsMax}`);
    this.slabsMax = slabsMax;
    if (!Number.isInteger(payloadBytesMax) || payloadBytesMax < 1) throw new RangeError(`payloadBytesMax must be a positive integer, got ${payloadBytesMax}`);
    if (!Number.isInteger(overheadBytes) || overheadBytes < 0) throw new RangeError(`overheadBytes must be a non-negative integer, got ${overheadBytes}`);
    if (!Number.isInteger(queueDatagramsMax) || queueDatagramsMax < 1) throw new RangeError(`queueDatagramsMax must be a positive integer, got ${queueDatagramsMax}`);
    this.windowBytes = windowBytes;
    this.#payloadBytesMax = payloadBytesMax;
    this.#overheadBytes = overheadBytes;
    this.queueDatagramsMax = queueDatagramsMax;
  }

  get retainedSlabs(): number {
    return this.#entries.length;
  }

  get queuedDatagrams(): number {
    return this.#queuedDatagrams;
  }

  /** The held stream bytes: [from, to), empty when nothing is held. */
  get heldRange(): ByteRange {
    if (this.#entries.length === 0) return { from: this.#evictedEndOffset, to: this.#evictedEndOffset };
    return { from: this.#entries[0].firstOffset, to: this.#entries[this.#entries.length - 1].endOffset };
  }

  /**
   * Keeps a slab that was transmitted (slabs come in stream order) and returns the slabs the
   * budget pushed out, which the caller may fill again.
   */
  retain(slab: S): S[] {
    this.#add(slab, 0);
    return this.#evict();
  }

  /**
   * Keeps a slab whose transmission is starting, so that a receiver that already missed some of
   * it can have it repaired; it stays pinned (never handed back) until sent(slab).
   */
  retainWhileSending(slab: S): S[] {
    this.#add(slab, 1);
    return this.#evict();
  }

  /** The slab given to retainWhileSending() was handed to the kernel: returns the slabs pushed out now. */
  sent(slab: S): S[] {
    for (let index = this.#entries.length - 1; index >= 0; index--) {
      if (this.#entries[index].slab === slab) {
        this.#entries[index].pins--;
        break;
      }
    }
    return this.#evict();
  }

  #add(slab: S, pins: number): void {
    let payloadBytes = 0;
    for (let slot = 0; slot < slab.count; slot++) payloadBytes += slab.lengths[slot];
    const last = this.#entries[this.#entries.length - 1];
    if (last !== undefined && slab.firstOffset !== last.endOffset) {
      throw new RangeError(`slabs must be retained in stream order: expected offset ${last.endOffset}, got ${slab.firstOffset}`);
    }
    const datagramBytes = payloadBytes + slab.count * this.#overheadBytes;
    this.#entries.push({ slab, firstOffset: slab.firstOffset, endOffset: slab.firstOffset + payloadBytes, datagramBytes, pins, queued: new Uint8Array(slab.count), repaired: new Uint8Array(slab.count) });
    this.#retainedBytes += datagramBytes;
  }

  /**
   * Queues every held datagram that overlaps `ranges` (ascending, disjoint). Bytes below the
   * window are reported unavailable; bytes beyond what was retained (not sent yet, or past the
   * stream's end) are the caller's to judge and are ignored here.
   */
  request(ranges: readonly ByteRange[]): RepairRequestOutcome {
    const outcome: RepairRequestOutcome = { queuedDatagrams: 0, firstLossDatagrams: 0, unavailable: [], refusedDatagrams: 0 };
    const held = this.heldRange;
    for (const range of ranges) {
      if (range.from < held.from) outcome.unavailable.push({ from: range.from, to: Math.min(range.to, held.from) });
      const from = Math.max(range.from, held.from);
      const to = Math.min(range.to, held.to);
      if (from >= to) continue;
      for (let index = this.#firstEntryEndingAfter(from); index < this.#entries.length; index++) {
        const entry = this.#entries[index];
        if (entry.firstOffset >= to) break;
        const firstSlot = this.#slotAt(entry, Math.max(from, entry.firstOffset));
        const lastSlot = this.#slotAt(entry, Math.min(to, entry.endOffset) - 1);
        this.#queueSlots(entry, firstSlot, lastSlot, outcome);
      }
    }
    return outcome;
  }

  /**
   * Takes the next run to send, at most `countMax` datagrams. Its slab stays pinned (it cannot be
   * pushed out and refilled) until done(run).
   */
  next(countMax: number): RepairRun<S> | null {
    const head = this.#queue[0];
    if (head === undefined) return null;
    const { entry } = head;
    const count = Math.min(countMax, head.count);
    let datagramBytes = 0;
    for (let slot = head.first; slot < head.first + count; slot++) datagramBytes += entry.slab.lengths[slot] + this.#overheadBytes;
    const run = { slab: entry.slab, first: head.first, count, datagramBytes, holder: entry };
    entry.pins++;
    if (count === head.count) {
      this.#queue.shift();
      entry.pins--;
    } else {
      this.#queue[0] = { entry, first: head.first + count, count: head.count - count };
    }
    // From here a new request for these slots queues them again: they may have been lost again.
    entry.queued.fill(0, run.first, run.first + count);
    this.#queuedDatagrams -= count;
    return run;
  }

  /** A run taken with next() was sent (or abandoned): returns the slabs the budget pushes out now. */
  done(run: RepairRun<S>): S[] {
    const entry = run.holder as Retained<S>;
    entry.pins--;
    return this.#evict();
  }

  /** Drops the queue and every held slab (returned), e.g. when the session ends. */
  clear(): S[] {
    this.#queue.length = 0;
    this.#queuedDatagrams = 0;
    const slabs = this.#entries.map((entry) => entry.slab);
    this.#evictedEndOffset = this.heldRange.to;
    this.#entries.length = 0;
    this.#retainedBytes = 0;
    return slabs;
  }

  #queueSlots(entry: Retained<S>, firstSlot: number, lastSlot: number, outcome: RepairRequestOutcome): void {
    let runStart = -1;
    const flush = (end: number): void => {
      if (runStart < 0) return;
      const count = end - runStart;
      this.#queue.push({ entry, first: runStart, count });
      entry.pins++;
      entry.queued.fill(1, runStart, end);
      for (let slot = runStart; slot < end; slot++) outcome.firstLossDatagrams += 1 - entry.repaired[slot];
      entry.repaired.fill(1, runStart, end);
      this.#queuedDatagrams += count;
      outcome.queuedDatagrams += count;
      runStart = -1;
    };
    for (let slot = firstSlot; slot <= lastSlot; slot++) {
      if (entry.queued[slot] === 1) {
        flush(slot);
        continue;
      }
      if (this.#queuedDatagrams + (runStart < 0 ? 0 : slot - runStart) >= this.queueDatagramsMax) {
        flush(slot);
        outcome.refusedDatagrams += lastSlot - slot + 1;
        return;
      }
      if (runStart < 0) runStart = slot;
    }
    flush(lastSlot + 1);
  }

  #slotAt(entry: Retained<S>, offset: number): number {
    return Math.min(entry.slab.count - 1, Math.floor((offset - entry.firstOffset) / this.#payloadBytesMax));
  }

  #firstEntryEndingAfter(offset: number): number {
    let low = 0;
    let high = this.#entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#entries[middle].endOffset <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #evict(): S[] {
    const evicted: S[] = [];
    while ((this.#retainedBytes > this.windowBytes || this.#entries.length > this.slabsMax) && this.#entries.length > 0 && this.#entries[0].pins === 0) {
      const entry = this.#entries.shift()!;
      this.#retainedBytes -= entry.datagramBytes;
      this.#evictedEndOffset = entry.endOffset;
      evicted.push(entry.slab);
    }
    return evicted;
  }
}
