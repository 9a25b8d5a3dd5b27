// The receiver's side of loss repair: which holes of the stream to ask the sender for, and when.
// A new hole is asked for at once (at most every NACK_SPACING_MS, which also bounds the cost of
// listing the holes); a hole still open after NACK_RETRY_MS is asked for again, since the request
// or its repair may have been lost too. Requests go out through a callback (the control
// connection in the CLI); the repaired packets come back on the multicast group like any other.

import type { ByteRange, ReorderWindow } from './reorder.js';

/** The fewest milliseconds between two requests. */
export const NACK_SPACING_MS = 5;
/** A hole asked for this long ago without being filled is asked for again. */
export const NACK_RETRY_MS = 200;
/** With no packet for this long, and the stream not complete, ask for everything after the last byte held. */
export const NACK_IDLE_MS = 200;
/** The most ranges one request names (the protocol's REPAIR_RANGES_MAX). */
export const NACK_RANGES_MAX = 64;
/** Holes remembered as asked for; more are forgotten, oldest first (they are then asked again). */
const ASKED_HOLES_MAX = 4_096;

export interface RepairRequestStats {
  /** Requests sent. */
  requests: number;
  /** Stream bytes named in them (an open-ended tail request counts as 0). */
  bytesRequested: number;
}

export class RepairRequester {
  readonly stats: RepairRequestStats = { requests: 0, bytesRequested: 0 };
  readonly #send: (ranges: ByteRange[]) => void;
  /** Hole start -> when it was last asked for. */
  readonly #askedAtMs = new Map<number, number>();
  #lastSentAtMs = -Infinity;
  #lastCheckedAtMs = -Infinity;
  #newHole = false;

  constructor(send: (ranges: ByteRange[]) => void) {
    this.#send = send;
  }

  /** A packet arrived ahead of a hole (or was dropped beyond the window): there is something new to ask for. */
  noteHole(): void {
    this.#newHole = true;
  }

  /**
   * Sends a request if one is due: new holes, holes due for a retry, or (after `idleMs` without
   * packets) the tail. `knownEnd`: the stream's length once END arrived; `seenEnd`: one past the
   * furthest byte any authenticated packet carried (also those dropped while the window or the
   * output was full). Returns whether it sent.
   */
  maybeRequest(nowMs: number, window: ReorderWindow, knownEnd: number | undefined, seenEnd: number, idleMs: number): boolean {
    if (nowMs - this.#lastSentAtMs < NACK_SPACING_MS) return false;
    const endOffset = knownEnd ?? seenEnd;
    const hasHoles = window.heldPackets > 0 || window.nextOffset < endOffset;
    const idle = idleMs >= NACK_IDLE_MS && (knownEnd === undefined || window.nextOffset < knownEnd);
    if (!hasHoles && !idle) return false;
    // Listing the holes costs a sort of the held offsets: at most once per NACK_SPACING_MS, and
    // only while one may be due (new, or asked for NACK_RETRY_MS ago).
    if (!this.#newHole && !idle && nowMs - this.#lastCheckedAtMs < NACK_SPACING_MS) return false;
    this.#lastCheckedAtMs = nowMs;
    this.#newHole = false;
    this.#forgetBelow(window.nextOffset);

    const ranges: ByteRange[] = [];
    for (const hole of window.missingRanges(endOffset, NACK_RANGES_MAX)) {
      const askedAtMs = this.#askedAtMs.get(hole.from);
      if (askedAtMs !== undefined && nowMs - askedAtMs < NACK_RETRY_MS && !idle) continue;
      ranges.push(hole);
    }
    if (idle && knownEnd === undefined && ranges.length < NACK_RANGES_MAX) {
      // Nothing arrived for a while and END was not heard: the tail after the last byte seen may
      // be lost, END included. The sender sends what it holds from there, and END.
      const tailFrom = Math.max(window.heldEndOffset, seenEnd);
      const last = ranges[ranges.length - 1];
      if (last === undefined || last.to <= tailFrom) ranges.push({ from: tailFrom, to: Number.MAX_SAFE_INTEGER });
    }
    if (ranges.length === 0) return false;
    for (const range of ranges) {
      this.#remember(range.from, nowMs);
      if (range.to !== Number.MAX_SAFE_INTEGER) this.stats.bytesRequested += range.to - range.from;
    }
    this.#lastSentAtMs = nowMs;
    this.stats.requests++;
    this.#send(ranges);
    return true;
  }

  #remember(holeStart: number, nowMs: number): void {
    this.#askedAtMs.delete(holeStart);
    this.#askedAtMs.set(holeStart, nowMs);
    if (this.#askedAtMs.size > ASKED_HOLES_MAX) this.#askedAtMs.delete(this.#askedAtMs.keys().next().value!);
  }

  #forgetBelow(offset: number): void {
    for (const start of this.#askedAtMs.keys()) {
      if (start < offset) this.#askedAtMs.delete(start);
    }
  }
}
