// Pacing: a token bucket in bytes. The sender asks before each datagram; when the bucket is short
// it sleeps on a timer (never spins). The burst allowance must cover at least one timer tick
// (about 1 ms, often more), or the sender could not reach its rate after each sleep.

export class TokenBucket {
  #rateBytesPerSecond: number;
  readonly burstBytes: number;
  readonly #now: () => number;
  #tokens: number;
  #lastRefillMs: number;

  constructor(rateBytesPerSecond: number, burstBytes: number, now: () => number = () => performance.now()) {
    if (!(rateBytesPerSecond > 0) || !Number.isFinite(rateBytesPerSecond)) {
      throw new RangeError(`rate must be a positive finite number of bytes per second, got ${rateBytesPerSecond}`);
    }
    if (!(burstBytes > 0) || !Number.isFinite(burstBytes)) throw new RangeError(`burst must be a positive number of bytes, got ${burstBytes}`);
    this.#rateBytesPerSecond = rateBytesPerSecond;
    this.burstBytes = burstBytes;
    this.#now = now;
    this.#tokens = burstBytes;
    this.#lastRefillMs = now();
  }

  /**
   * Takes `bytes` tokens if the bucket holds them and returns 0; otherwise takes nothing and
   * returns how many milliseconds to wait before asking again. A request larger than the burst
   * is allowed once the bucket is full, so a datagram bigger than the burst cannot stall forever.
   */
  take(bytes: number): number {
    this.#refill();
    const needed = Math.min(bytes, this.burstBytes);
    if (this.#tokens >= needed) {
      this.#tokens -= bytes;
      return 0;
    }
    return ((needed - this.#tokens) * 1000) / this.#rateBytesPerSecond;
  }

  get rateBytesPerSecond(): number {
    return this.#rateBytesPerSecond;
  }

  /** Changes the rate from now on; tokens earned so far at the old rate are kept. */
  setRate(rateBytesPerSecond: number): void {
    if (!(rateBytesPerSecond > 0) || !Number.isFinite(rateBytesPerSecond)) {
      throw new RangeError(`rate must be a positive finite number of bytes per second, got ${rateBytesPerSecond}`);
    }
    this.#refill();
    this.#rateBytesPerSecond = rateBytesPerSecond;
  }

  #refill(): void {
    const now = this.#now();
    const elapsedMs = now - this.#lastRefillMs;
    if (elapsedMs > 0) {
      this.#tokens = Math.min(this.burstBytes, this.#tokens + (elapsedMs * this.#rateBytesPerSecond) / 1000);
      this.#lastRefillMs = now;
    }
  }
}

/** The burst that lets a paced sender keep its rate across timer ticks: 8 ms of traffic, at least 8 datagrams. */
export function defaultBurstBytes(rateBytesPerSecond: number, datagramBytes: number): number {
  return Math.max(8 * datagramBytes, (rateBytesPerSecond * 8) / 1000);
}

/**
 * The fraction of the full rate to use `elapsedMs` after sending began. Receivers that just
 * started are slow for their first tens of milliseconds (code not yet optimised, first key
 * derivation), and UDP gives them no way to say so: a linear ramp from 10 % to 100 % over
 * `rampMs` keeps that first burst from overflowing their socket buffers.
 */
export function rampFraction(elapsedMs: number, rampMs: number): number {
  if (rampMs <= 0 || elapsedMs >= rampMs) return 1;
  return 0.1 + (0.9 * Math.max(0, elapsedMs)) / rampMs;
}
