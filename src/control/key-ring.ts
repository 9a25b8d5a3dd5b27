// The receiver's side of key delivery: holds the data keys the control client unwrapped for one
// session, and answers the data plane's packet-key lookups from them. Packet keys are derived
// lazily per (epoch, suite) and a bounded number of epochs is kept, because the stream moves
// forward and packets of old epochs only arrive late.

import type { AeadKey, CryptoBackend, WireSuiteName } from '../crypto/backend.js';
import { derivePacketKey, type PacketKeyLookup } from '../keys/packet-keys.js';
import { SESSION_ID_BYTES } from '../keys/kdf.js';
import type { DeliveredKey } from './client.js';

export const KEY_RING_EPOCHS_MAX = 4;

interface EpochEntry {
  dataKey: Buffer;
  packetKeys: Map<WireSuiteName, AeadKey>;
}

export class ControlKeyRing {
  readonly #backend: CryptoBackend;
  readonly #sessionId: Uint8Array;
  readonly #epochs = new Map<number, EpochEntry>();
  #destroyed = false;

  constructor(backend: CryptoBackend, sessionId: Uint8Array) {
    if (!(sessionId instanceof Uint8Array) || sessionId.byteLength !== SESSION_ID_BYTES) {
      throw new RangeError(`sessionId must be ${SESSION_ID_BYTES} bytes`);
    }
    this.#backend = backend;
    this.#sessionId = new Uint8Array(sessionId);
  }

  /** Takes ownership of a delivered bundle (its keys are zeroed when evicted or destroyed). */
  add(key: DeliveredKey): void {
    key.updateKey?.fill(0);
    if (this.#destroyed || this.#epochs.has(key.epoch)) {
      key.dataKey.fill(0);
      return;
    }
    this.#epochs.set(key.epoch, { dataKey: key.dataKey, packetKeys: new Map() });
    while (this.#epochs.size > KEY_RING_EPOCHS_MAX) {
      const oldest = Math.min(...this.#epochs.keys());
      this.#drop(oldest);
    }
  }

  readonly lookup: PacketKeyLookup = (sessionId, epoch, suite) => {
    if (this.#destroyed || !sameSession(sessionId, this.#sessionId)) return undefined;
    const entry = this.#epochs.get(epoch);
    if (entry === undefined) return undefined;
    let key = entry.packetKeys.get(suite);
    if (key === undefined) {
      if (!this.#backend.suites.includes(suite)) return undefined;
      key = derivePacketKey(this.#backend, suite, entry.dataKey, this.#sessionId, epoch);
      entry.packetKeys.set(suite, key);
    }
    return key;
  };

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const epoch of [...this.#epochs.keys()]) this.#drop(epoch);
  }

  #drop(epoch: number): void {
    const entry = this.#epochs.get(epoch);
    if (!entry) return;
    this.#epochs.delete(epoch);
    entry.dataKey.fill(0);
    for (const key of entry.packetKeys.values()) key.destroy();
  }
}

function sameSession(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== SESSION_ID_BYTES) return false;
  for (let index = 0; index < SESSION_ID_BYTES; index++) if (a[index] !== b[index]) return false;
  return true;
}
