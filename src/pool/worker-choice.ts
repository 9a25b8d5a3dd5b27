// Which worker gets the next batch. Balance comes first, because an idle worker costs far more
// than a cache miss; among equally busy workers a recycled shared slab goes back to the worker
// that handled it last, whose core may still hold it in cache.

import { noWorkersError } from './pool-errors.js';
import { isShared } from './protocol.js';
import type { WorkerSlot } from './worker-slot.js';

export class WorkerChoice {
  /** The worker each shared slab last went to; weak, so that it pins no memory. */
  readonly #homes = new WeakMap<SharedArrayBuffer, WorkerSlot>();

  /**
   * The worker that last handled `slab`'s shared memory when it is no busier than the least
   * busy one, else the least busy one. Throws E_POOL when no worker is alive.
   */
  forSlab(slots: readonly WorkerSlot[], slab: Uint8Array): WorkerSlot {
    const least = leastBusy(slots);
    if (!isShared(slab)) return least;
    const home = this.#homes.get(slab.buffer as SharedArrayBuffer);
    const slot = home !== undefined && home.alive && home.tasks <= least.tasks ? home : least;
    if (slot !== home) this.#homes.set(slab.buffer as SharedArrayBuffer, slot);
    return slot;
  }
}

function leastBusy(slots: readonly WorkerSlot[]): WorkerSlot {
  let best: WorkerSlot | null = null;
  for (const slot of slots) {
    if (slot.alive && (best === null || slot.tasks < best.tasks)) best = slot;
  }
  if (best === null) throw noWorkersError();
  return best;
}
