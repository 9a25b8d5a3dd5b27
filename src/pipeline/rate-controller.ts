// Rate adaptation for the sender (DESIGN.md, "Pacing": receivers report loss so the rate can
// adapt). The configured rate is a ceiling. Two reports lower the rate: losses (datagrams that
// receivers asked to have repaired, counted once per datagram), and a receiver saying it cannot
// keep up (its output is behind). Time is passed in, so the behaviour is exact under test.
//
// Every LOSS_INTERVAL_MS the losses reported in the interval are compared with the datagrams
// sent in it. Above CONGESTION_LOSS_FRACTION they are taken for a receiver that cannot keep up
// (an overflowing socket buffer loses whole runs): at a rate R with a fraction f lost it took
// about R(1 - f), so the rate goes to that times DECREASE_MARGIN. Scattered loss below the
// threshold (a lossy link) is only repaired, since slowing down would not make it go away.
// After a quiet spell the rate climbs back by a fraction of the ceiling per step.

export const LOSS_INTERVAL_MS = 100;
export const CONGESTION_LOSS_FRACTION = 0.05;
export const DECREASE_MARGIN = 0.9;
/** Reports held back by a receiver (it asks late while its output is behind) can exceed what was sent: one step at most halves. */
export const DECREASE_STEP_MIN = 0.5;
/** Reports of losses from before a decrease still arrive after it: the next one waits this long. */
export const DECREASE_HOLD_MS = 200;
/** What a slow receiver's report counts as, in lost fraction of the stream. */
export const SLOW_RECEIVER_LOSS_FRACTION = 0.1;
export const INCREASE_AFTER_MS = 500;
export const INCREASE_EVERY_MS = 100;
export const INCREASE_FRACTION = 0.02;
/** The rate never goes below this fraction of the ceiling. */
export const FLOOR_FRACTION = 0.05;

export class RateController {
  readonly ceilingBytesPerSecond: number;
  #rateBytesPerSecond: number;
  #lowestBytesPerSecond: number;
  #decreasedAtMs = -Infinity;
  #increasedAtMs = -Infinity;
  #intervalStartMs: number;
  #intervalSentBefore = 0;
  #intervalLosses = 0;

  constructor(ceilingBytesPerSecond: number, nowMs: number) {
    if (!(ceilingBytesPerSecond > 0) || !Number.isFinite(ceilingBytesPerSecond)) {
      throw new RangeError(`ceilingBytesPerSecond must be a positive finite number, got ${ceilingBytesPerSecond}`);
    }
    this.ceilingBytesPerSecond = ceilingBytesPerSecond;
    this.#rateBytesPerSecond = ceilingBytesPerSecond;
    this.#lowestBytesPerSecond = ceilingBytesPerSecond;
    this.#intervalStartMs = nowMs;
  }

  get rateBytesPerSecond(): number {
    return this.#rateBytesPerSecond;
  }

  get lowestBytesPerSecond(): number {
    return this.#lowestBytesPerSecond;
  }

  /** Receivers reported `datagrams` lost that had not been reported before. */
  noteLosses(datagrams: number): void {
    if (!(datagrams >= 0)) throw new RangeError(`datagrams must be a non-negative number, got ${datagrams}`);
    this.#intervalLosses += datagrams;
  }

  /** A receiver cannot keep up (its output is behind and it drops what arrives). */
  noteSlowReceiver(nowMs: number): void {
    this.#decrease(nowMs, SLOW_RECEIVER_LOSS_FRACTION);
  }

  /**
   * The rate to pace at now, given the datagrams sent so far (a running total): closes the loss
   * interval when it is over, and climbs back after a quiet spell.
   */
  update(nowMs: number, datagramsSent: number): number {
    if (nowMs - this.#intervalStartMs >= LOSS_INTERVAL_MS) {
      const sent = datagramsSent - this.#intervalSentBefore;
      const lossFraction = this.#intervalLosses / Math.max(sent, 1);
      if (lossFraction > CONGESTION_LOSS_FRACTION) this.#decrease(nowMs, lossFraction);
      this.#intervalStartMs = nowMs;
      this.#intervalSentBefore = datagramsSent;
      this.#intervalLosses = 0;
    }
    const ceiling = this.ceilingBytesPerSecond;
    if (this.#rateBytesPerSecond < ceiling && nowMs - this.#decreasedAtMs >= INCREASE_AFTER_MS && nowMs - this.#increasedAtMs >= INCREASE_EVERY_MS) {
      this.#rateBytesPerSecond = Math.min(ceiling, this.#rateBytesPerSecond + ceiling * INCREASE_FRACTION);
      this.#increasedAtMs = nowMs;
    }
    return this.#rateBytesPerSecond;
  }

  #decrease(nowMs: number, lossFraction: number): void {
    if (nowMs - this.#decreasedAtMs < DECREASE_HOLD_MS) return;
    const taken = this.#rateBytesPerSecond * Math.max(DECREASE_STEP_MIN, 1 - lossFraction);
    this.#rateBytesPerSecond = Math.max(this.ceilingBytesPerSecond * FLOOR_FRACTION, taken * DECREASE_MARGIN);
    this.#lowestBytesPerSecond = Math.min(this.#lowestBytesPerSecond, this.#rateBytesPerSecond);
    this.#decreasedAtMs = nowMs;
  }
}
