// Flow control for the sender: receivers report how far they have taken the stream in (their
// `progress`), and the sender keeps no more than `windowBytes` of new data ahead of the slowest
// one. UDP has no flow control of its own: without this a sender ahead of a receiver fills that
// receiver's socket buffer until it overflows, and everything lost then has to be repaired.
// A receiver that stops reporting (it finished, failed or vanished) stops holding the sender back
// after `staleMs`. Time is passed in, so the behaviour is exact under test.

export interface FlowReceiverState {
  offset: number;
  reportedAtMs: number;
}

/** The most receivers followed; more are not counted (the control server bounds connections anyway). */
const RECEIVERS_MAX = 65_536;

export class FlowWindow {
  readonly windowBytes: number;
  readonly staleMs: number;
  readonly #receivers = new Map<string, FlowReceiverState>();

  constructor(windowBytes: number, staleMs: number) {
    if (!Number.isSafeInteger(windowBytes) || windowBytes < 1) throw new RangeError(`windowBytes must be a positive integer, got ${windowBytes}`);
    if (!(staleMs > 0)) throw new RangeError(`staleMs must be positive, got ${staleMs}`);
    this.windowBytes = windowBytes;
    this.staleMs = staleMs;
  }

  get receivers(): number {
    return this.#receivers.size;
  }

  /**
   * `receiver` can take the stream in up to `offset` plus the window. The latest report counts,
   * also when it is lower than the one before: a receiver whose output falls behind reports less
   * than it has taken in, to hold the sender back before it has to drop anything.
   */
  report(receiver: string, offset: number, nowMs: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`offset must be a non-negative safe integer, got ${offset}`);
    const state = this.#receivers.get(receiver);
    if (state !== undefined) {
      state.offset = offset;
      state.reportedAtMs = nowMs;
    } else if (this.#receivers.size < RECEIVERS_MAX) {
      this.#receivers.set(receiver, { offset, reportedAtMs: nowMs });
    }
  }

  forget(receiver: string): void {
    this.#receivers.delete(receiver);
  }

  /** How far the sender may send now: the slowest fresh receiver's offset plus the window (Infinity with none). */
  allowedEnd(nowMs: number): number {
    let slowest = Infinity;
    for (const state of this.#receivers.values()) {
      if (nowMs - state.reportedAtMs <= this.staleMs) slowest = Math.min(slowest, state.offset);
    }
    return slowest + this.windowBytes;
  }
}
