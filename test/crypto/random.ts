// A small seeded PRNG (mulberry32) so that a failing random case can be replayed: every test
// that draws random data prints its seed, and SEALCAST_TEST_SEED=<seed> repeats the run.

export class Random {
  readonly seed: number;
  #state: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed;
  }

  static fromEnv(env: NodeJS.ProcessEnv = process.env): Random {
    const fixed = env.SEALCAST_TEST_SEED;
    const seed = fixed !== undefined && fixed !== '' ? Number(fixed) : Math.floor(Math.random() * 2 ** 32);
    if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
      throw new RangeError(`SEALCAST_TEST_SEED must be an integer in [0, 2^32), got "${fixed}"`);
    }
    return new Random(seed);
  }

  uint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor((this.uint32() / 2 ** 32) * (max - min + 1));
  }

  pick<T>(values: readonly T[]): T {
    return values[this.int(0, values.length - 1)];
  }

  fill(target: Uint8Array): Uint8Array {
    let index = 0;
    for (; index + 4 <= target.length; index += 4) {
      const word = this.uint32();
      target[index] = word;
      target[index + 1] = word >>> 8;
      target[index + 2] = word >>> 16;
      target[index + 3] = word >>> 24;
    }
    for (; index < target.length; index++) target[index] = this.uint32();
    return target;
  }

  bytes(length: number): Uint8Array {
    return this.fill(new Uint8Array(length));
  }
}
