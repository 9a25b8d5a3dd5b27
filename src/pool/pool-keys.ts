// The key schedules a pool holds. Every worker builds its own schedule from a private copy of
// the key, so installing and removing a key is one control request per live worker; the pool
// keeps only handles (never key bytes), bounded in number because each one costs a schedule in
// every worker.

import type { SuiteName } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import type { AeadPool } from './pool.js';
import type { PoolWorkers } from './pool-workers.js';

/** Key schedules one pool holds at once; a sender needs the current and the next epoch's key. */
export const POOL_KEYS_MAX = 256;

/** A key schedule installed in every worker of one pool. Obtain it from {@link AeadPool.addKey}. */
export class PoolKeyHandle {
  readonly suite: SuiteName;
  /** @internal */
  readonly id: number;
  /** @internal */
  readonly pool: AeadPool;
  #removed = false;

  /** @internal */
  constructor(pool: AeadPool, id: number, suite: SuiteName) {
    this.pool = pool;
    this.id = id;
    this.suite = suite;
  }

  /** True once removeKey() or close() was called for this key. */
  get removed(): boolean {
    return this.#removed;
  }

  /** @internal */
  markRemoved(): void {
    this.#removed = true;
  }
}

export class PoolKeys {
  readonly #workers: PoolWorkers;
  readonly #handles = new Set<PoolKeyHandle>();
  #nextKeyId = 1;

  constructor(workers: PoolWorkers) {
    this.#workers = workers;
  }

  /** A new handle of `pool` for `suite`; throws E_POOL when POOL_KEYS_MAX keys are live. */
  register(pool: AeadPool, suite: SuiteName): PoolKeyHandle {
    if (this.#handles.size >= POOL_KEYS_MAX) {
      throw new SealcastError('E_POOL', `the pool already holds ${POOL_KEYS_MAX} keys; remove unused ones with removeKey()`);
    }
    const handle = new PoolKeyHandle(pool, this.#nextKeyId++, suite);
    this.#handles.add(handle);
    return handle;
  }

  /**
   * Sends every live worker its own copy of `key` for `handle`, moved there and zeroed by the
   * worker after use (or zeroed here when the move failed). Settles once every worker answered.
   */
  installEverywhere(handle: PoolKeyHandle, key: Uint8Array): Promise<PromiseSettledResult<void>[]> {
    const installs = this.#workers.liveSlots().map((slot) => {
      const copy = new Uint8Array(key);
      try {
        return this.#workers.control(slot, { kind: 'addKey', requestId: 0, keyId: handle.id, suite: handle.suite, key: copy }, [copy.buffer]);
      } catch (error) {
        return Promise.reject(error);
      } finally {
        // Moved to the worker when postMessage succeeded (the copy is then detached and empty);
        // zeroed here when it did not.
        if (copy.byteLength > 0) copy.fill(0);
      }
    });
    return Promise.allSettled(installs);
  }

  async removeEverywhere(handle: PoolKeyHandle): Promise<void> {
    // A worker that died took its schedules with it, so its failure to answer is not an error.
    const removals = this.#workers.liveSlots().map((slot) =>
      this.#workers.control(slot, { kind: 'removeKey', requestId: 0, keyId: handle.id }).catch(() => {}),
    );
    await Promise.all(removals);
  }

  /** Marks `handle` removed and forgets it; its schedules are removed separately. */
  drop(handle: PoolKeyHandle): void {
    handle.markRemoved();
    this.#handles.delete(handle);
  }

  /** Marks every handle removed, for close(), which destroys all schedules at once. */
  dropAll(): void {
    for (const handle of this.#handles) handle.markRemoved();
    this.#handles.clear();
  }
}
