// The pool's record of which SharedArrayBuffers one worker already holds, so that a batch in
// shared memory reaches the worker as a few integers instead of a structured clone of its
// buffers. Each new buffer is posted to the worker once, under a small integer id; a buffer
// that stays unused is forgotten on both sides once the idle ones are too many or too large.

import type { MessagePort } from 'node:worker_threads';
import type { BufferUpdate } from './protocol.js';

/** Idle buffers a worker keeps referencing at most; a producer recycles far fewer slabs than this. */
export const BUFFER_TABLE_IDLE_ENTRIES_MAX = 32;
/**
 * Bytes of idle buffers a worker keeps referencing at most. Memory the caller drops stays
 * allocated while its buffer is in this table, so the bound is what such memory may cost.
 */
export const BUFFER_TABLE_IDLE_BYTES_MAX = 64 * 1024 * 1024;

interface Entry {
  readonly id: number;
  readonly buffer: SharedArrayBuffer;
  /** Views of in-flight batches that refer to this buffer; such an entry is never evicted. */
  uses: number;
}

export class BufferTable {
  /** In least recently used order: a use moves an entry to the end. */
  readonly #entries = new Map<SharedArrayBuffer, Entry>();
  readonly #byId: Array<Entry | undefined> = [];
  readonly #freeIds: number[] = [];
  readonly #port: MessagePort;
  readonly #control: Int32Array;
  readonly #updatesWord: number;
  #idleBytes = 0;
  #idleEntries = 0;

  /** `control[updatesWord]` counts the updates posted on `port`, so the worker reads only when there are some. */
  constructor(port: MessagePort, control: Int32Array, updatesWord: number) {
    this.#port = port;
    this.#control = control;
    this.#updatesWord = updatesWord;
  }

  /** The id the worker knows `buffer` by, posting it first when needed. Counts one use. */
  acquire(buffer: SharedArrayBuffer): number {
    let entry = this.#entries.get(buffer);
    if (entry === undefined) {
      const id = this.#freeIds.pop() ?? this.#byId.length;
      entry = { id, buffer, uses: 0 };
      this.#byId[id] = entry;
      this.#post({ id, buffer });
    } else {
      this.#entries.delete(buffer);
      if (entry.uses === 0) this.#markBusy(entry);
    }
    this.#entries.set(buffer, entry);
    entry.uses++;
    return entry.id;
  }

  /** Ends one use of the buffer with id `id`. */
  release(id: number): void {
    const entry = this.#byId[id];
    if (entry === undefined || entry.uses === 0) return;
    entry.uses--;
    if (entry.uses === 0) {
      this.#idleEntries++;
      this.#idleBytes += entry.buffer.byteLength;
      this.#trimIdle();
    }
  }

  /** Forgets every buffer without telling the worker (it is closing or gone). */
  clear(): void {
    this.#entries.clear();
    this.#byId.length = 0;
    this.#freeIds.length = 0;
    this.#idleBytes = 0;
    this.#idleEntries = 0;
  }

  /** Buffers the worker currently holds (for tests and diagnostics). */
  get size(): number {
    return this.#entries.size;
  }

  #markBusy(entry: Entry): void {
    this.#idleEntries--;
    this.#idleBytes -= entry.buffer.byteLength;
  }

  /** Drops the least recently used idle buffers until the idle ones are within both bounds. */
  #trimIdle(): void {
    for (const entry of this.#entries.values()) {
      if (this.#idleEntries <= BUFFER_TABLE_IDLE_ENTRIES_MAX && this.#idleBytes <= BUFFER_TABLE_IDLE_BYTES_MAX) return;
      if (entry.uses > 0) continue;
      this.#entries.delete(entry.buffer);
      this.#byId[entry.id] = undefined;
      this.#freeIds.push(entry.id);
      this.#markBusy(entry);
      this.#post({ id: entry.id, buffer: null });
    }
  }

  #post(update: BufferUpdate): void {
    this.#port.postMessage(update);
    Atomics.add(this.#control, this.#updatesWord, 1);
  }
}
