// Public random values (nonces) drawn from a pool filled 4 KiB at a time, because one
// randomBytes call per 12- or 32-byte nonce costs more in call overhead than in randomness.
// Every byte is handed out once; the pool only ever holds values that will be sent in the clear.

import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;

export class RandomPool {
  private readonly pool = Buffer.alloc(POOL_BYTES);
  private offset = POOL_BYTES;

  /** A fresh copy of `count` random bytes (count at most 4096). */
  take(count: number): Buffer {
    if (!Number.isInteger(count) || count < 1 || count > POOL_BYTES) throw new RangeError(`count must be between 1 and ${POOL_BYTES}, got ${count}`);
    if (this.offset + count > POOL_BYTES) {
      randomFillSync(this.pool);
      this.offset = 0;
    }
    const out = Buffer.from(this.pool.subarray(this.offset, this.offset + count));
    this.pool.fill(0, this.offset, this.offset + count);
    this.offset += count;
    return out;
  }
}

/** One pool per thread is enough: JavaScript never interleaves two takes. */
export const nonces = new RandomPool();
