// Keeps this VM's free memory in the guest while the benchmark runs.
//
// With free page reporting (virtio-balloon), the guest hands every free 2 MiB block back to the
// host about 2 s after it is freed, and the host discards it. The next touch of such a page costs
// a host fault, which the guest sees as time spent in whatever instruction touched it: here, the
// kernel's copy of a receiver's output into fresh tmpfs pages (`copy_folio_from_iter_atomic`).
// Back to back, the same 1 GiB receiver spent 0.5 CPU-s there in one run and 0.14 in the next,
// depending on how long ago the pages it got had been freed, which is a matter of which tool ran
// before it and how fast. No real machine pays this, and it fell on the tools unevenly, so the
// benchmark turns reporting off for its duration (page_reporting_order above the largest block
// order: no free block qualifies) and restores the setting when it ends.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const REPORTING_ORDER_PATH = '/sys/module/page_reporting/parameters/page_reporting_order';
// One above MAX_PAGE_ORDER (10 on x86-64): no free block is ever that large.
const ORDER_NEVER_REPORTED = 11;

/**
 * Turns free page reporting off. Returns { held: true, previous, restore() } or, when the kernel
 * has no reporting or it cannot be changed (not root), { held: false, reason }.
 */
export function holdGuestMemory() {
  if (!existsSync(REPORTING_ORDER_PATH)) return { held: false, reason: 'this kernel does not report free pages to a host' };
  let previous;
  try {
    previous = readFileSync(REPORTING_ORDER_PATH, 'utf8').trim();
    writeFileSync(REPORTING_ORDER_PATH, String(ORDER_NEVER_REPORTED));
    if (readFileSync(REPORTING_ORDER_PATH, 'utf8').trim() !== String(ORDER_NEVER_REPORTED)) throw new Error('the kernel kept its value');
  } catch (error) {
    return { held: false, reason: `cannot change ${REPORTING_ORDER_PATH}: ${error.message}` };
  }
  let restored = false;
  return {
    held: true,
    previous,
    restore() {
      if (restored) return;
      restored = true;
      try {
        writeFileSync(REPORTING_ORDER_PATH, previous);
      } catch {
        // Left as it is: the guest then keeps its free memory, which changes nothing it computes.
      }
    },
  };
}
