// Key-file mode for receivers: every session's epoch-0 data key is the group key, so the packet
// key of a session is derived when its first packet arrives. The session id comes from a header
// nobody has authenticated yet, so anyone on the group can name as many sessions as it likes.
// The ring bounds what that costs: derivations for sessions it does not know come from a budget
// per second (a refused one returns undefined, which the receiver counts as a noKey drop), keys of
// sessions that never authenticated a packet live in a small least-recently-used set, and a key
// that opened a packet is kept until the ring is destroyed, whatever arrives after it.

import type { AeadKey, CryptoBackend, PacketBatch, WireSuiteName } from '../crypto/backend.js';
import { SESSION_ID_BYTES } from './kdf.js';
import { derivePacketKey, type PacketKeyLookup } from './packet-keys.js';

export interface GroupKeyRingOptions {
  /**
   * Keys of sessions none of whose packets authenticated yet; the least recently used goes first
   * when a new one is derived. At least 2, so that the key returned last (which a receiver may
   * hold for a batch it has not opened yet) is never the one evicted. Default 8.
   */
  unauthenticatedEntriesMax?: number;
  /**
   * Keys that opened at least one packet: never evicted. Once this many are kept, a further key
   * that authenticates stays in the evictable set. Default 4.
   */
  authenticatedEntriesMax?: number;
  /** New sessions' keys derived per second, and at most this many at once. Default 16. */
  derivationsPerSecond?: number;
  /** Milliseconds on a monotonic clock; tests drive the budget with their own. */
  nowMs?: () => number;
}

export interface GroupKeyRingStats {
  /** Keys derived for sessions not held. */
  derivations: number;
  /** Lookups of unknown sessions refused because the budget was spent (the receiver drops them). */
  refusedDerivations: number;
  /** Unauthenticated keys evicted (and destroyed) to make room. */
  evictions: number;
  /** Keys kept because they opened a packet. */
  authenticatedKeys: number;
}

const DEFAULT_UNAUTHENTICATED_ENTRIES_MAX = 8;
const DEFAULT_AUTHENTICATED_ENTRIES_MAX = 4;
const DEFAULT_DERIVATIONS_PER_SECOND = 16;
const ENTRIES_MAX_LIMIT = 1024;
const DERIVATIONS_PER_SECOND_LIMIT = 100_000;

/**
 * The AeadKey the ring hands out: the derived key, plus a note to the ring when it opens a
 * packet, which is how the ring learns a session is genuine without any call from the receiver.
 */
class RingKey implements AeadKey {
  readonly #inner: AeadKey;
  readonly #onAuthenticated: (key: RingKey) => void;
  authenticated = false;

  constructor(inner: AeadKey, onAuthenticated: (key: RingKey) => void) {
    this.#inner = inner;
    this.#onAuthenticated = onAuthenticated;
  }

  get suite() {
    return this.#inner.suite;
  }

  get backend() {
    return this.#inner.backend;
  }

  get destroyed(): boolean {
    return this.#inner.destroyed;
  }

  sealBatch(batch: PacketBatch): void {
    this.#inner.sealBatch(batch);
  }

  openBatch(batch: PacketBatch, status: Uint8Array): number {
    const opened = this.#inner.openBatch(batch, status);
    if (opened > 0 && !this.authenticated) this.#onAuthenticated(this);
    return opened;
  }

  destroy(): void {
    this.#inner.destroy();
  }
}

export class GroupKeyRing {
  readonly #backend: CryptoBackend;
  readonly #groupKey: Uint8Array;
  /** Name -> key, least recently used first. */
  readonly #unauthenticated = new Map<string, RingKey>();
  readonly #authenticated = new Map<string, RingKey>();
  readonly #names = new WeakMap<RingKey, string>();
  readonly #unauthenticatedEntriesMax: number;
  readonly #authenticatedEntriesMax: number;
  readonly #derivationsPerSecond: number;
  readonly #nowMs: () => number;
  #budget: number;
  #budgetAtMs: number;
  readonly #stats: GroupKeyRingStats = { derivations: 0, refusedDerivations: 0, evictions: 0, authenticatedKeys: 0 };
  #destroyed = false;
  #last: { sessionId: Uint8Array; suite: WireSuiteName; key: RingKey } | null = null;

  /** `options` as a number is `unauthenticatedEntriesMax` (the ring's earlier signature). */
  constructor(backend: CryptoBackend, groupKey: Uint8Array, options: number | GroupKeyRingOptions = {}) {
    const settings = typeof options === 'number' ? { unauthenticatedEntriesMax: options } : options;
    this.#unauthenticatedEntriesMax = requireCount(settings.unauthenticatedEntriesMax ?? DEFAULT_UNAUTHENTICATED_ENTRIES_MAX, 'unauthenticatedEntriesMax', 2, ENTRIES_MAX_LIMIT);
    this.#authenticatedEntriesMax = requireCount(settings.authenticatedEntriesMax ?? DEFAULT_AUTHENTICATED_ENTRIES_MAX, 'authenticatedEntriesMax', 1, ENTRIES_MAX_LIMIT);
    this.#derivationsPerSecond = requireCount(settings.derivationsPerSecond ?? DEFAULT_DERIVATIONS_PER_SECOND, 'derivationsPerSecond', 1, DERIVATIONS_PER_SECOND_LIMIT);
    if (settings.nowMs !== undefined && typeof settings.nowMs !== 'function') throw new TypeError('nowMs must be a function returning milliseconds');
    this.#nowMs = settings.nowMs ?? (() => performance.now());
    this.#backend = backend;
    this.#groupKey = new Uint8Array(groupKey);
    this.#budget = this.#derivationsPerSecond;
    this.#budgetAtMs = this.#nowMs();
  }

  /** A snapshot of the counters. */
  get stats(): GroupKeyRingStats {
    return { ...this.#stats, authenticatedKeys: this.#authenticated.size };
  }

  /** A PacketKeyLookup bound to this ring. */
  readonly lookup: PacketKeyLookup = (sessionId, epoch, suite) => {
    if (this.#destroyed || epoch !== 0 || sessionId.byteLength !== SESSION_ID_BYTES) return undefined;
    // Fast path: nearly every packet names the same session as the one before it.
    const last = this.#last;
    if (last !== null && last.suite === suite && !last.key.destroyed && sameSession(last.sessionId, sessionId)) return last.key;
    if (!this.#backend.suites.includes(suite)) return undefined;
    const name = `${Buffer.from(sessionId.buffer, sessionId.byteOffset, sessionId.byteLength).toString('hex')}/${suite}`;
    let key = this.#authenticated.get(name);
    if (key === undefined) {
      key = this.#unauthenticated.get(name);
      if (key !== undefined) {
        // Move to the back: the set evicts the least recently used entry.
        this.#unauthenticated.delete(name);
        this.#unauthenticated.set(name, key);
      }
    }
    if (key === undefined) {
      if (!this.#takeBudget()) {
        this.#stats.refusedDerivations++;
        return undefined;
      }
      key = new RingKey(derivePacketKey(this.#backend, suite, this.#groupKey, sessionId, 0), this.#onAuthenticated);
      this.#stats.derivations++;
      this.#names.set(key, name);
      this.#unauthenticated.set(name, key);
      if (this.#unauthenticated.size > this.#unauthenticatedEntriesMax) this.#evictOldest();
    }
    this.#last = { sessionId: new Uint8Array(sessionId), suite, key };
    return key;
  };

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const key of this.#unauthenticated.values()) key.destroy();
    for (const key of this.#authenticated.values()) key.destroy();
    this.#unauthenticated.clear();
    this.#authenticated.clear();
    this.#last = null;
    this.#groupKey.fill(0);
  }

  readonly #onAuthenticated = (key: RingKey): void => {
    const name = this.#names.get(key);
    if (name === undefined || this.#destroyed || key.destroyed) return;
    if (this.#authenticated.size >= this.#authenticatedEntriesMax) return;
    key.authenticated = true;
    this.#unauthenticated.delete(name);
    this.#authenticated.set(name, key);
  };

  #evictOldest(): void {
    // The newest entry is at the back and the set holds at least 2, so the key returned by the
    // previous lookup is never the one destroyed here.
    const [oldestName, oldestKey] = this.#unauthenticated.entries().next().value as [string, RingKey];
    this.#unauthenticated.delete(oldestName);
    oldestKey.destroy();
    this.#stats.evictions++;
  }

  /** A token bucket: derivationsPerSecond tokens a second, holding at most that many. */
  #takeBudget(): boolean {
    const now = this.#nowMs();
    const elapsedMs = Math.max(0, now - this.#budgetAtMs);
    this.#budgetAtMs = now;
    this.#budget = Math.min(this.#derivationsPerSecond, this.#budget + (elapsedMs * this.#derivationsPerSecond) / 1000);
    if (this.#budget < 1) return false;
    this.#budget -= 1;
    return true;
  }
}

function sameSession(a: Uint8Array, b: Uint8Array): boolean {
  for (let index = 0; index < SESSION_ID_BYTES; index++) if (a[index] !== b[index]) return false;
  return true;
}

function requireCount(value: number, name: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer between ${min} and ${max}, got ${value}`);
  return value;
}
