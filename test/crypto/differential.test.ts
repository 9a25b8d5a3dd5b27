// Differential tests: every backend against node:crypto on random batches (payloads 0..65 000
// bytes, random AAD, slots at odd offsets with random gaps), forged packets, and the promise
// that sealing and opening touch nothing but payloads and tags.

import { describe, expect, it } from 'vitest';
import type { CryptoBackend, SuiteName } from '../../dist/crypto/backend.js';
import { listBackends, skippedTitle } from '../helpers/backends.js';
import { Random } from './random.js';
import { referenceOpen, referenceSeal } from './reference.js';
import { PAYLOAD_BYTES_MAX, keyBytesFor, randomSlots as randomSlotsFrom } from './slots.js';
import {
  NONCE_BYTES,
  TAG_BYTES,
  buildBatch,
  captureUntouchables,
  findTouched,
  hex,
  isAllZero,
  nonceOf,
  regionOf,
  sealedBytesOf,
  type BuiltBatch,
  type Region,
  type SlotContent,
} from './slab.js';

const backends = await listBackends({ chachaEngines: true });
const random = Random.fromEnv();

/** Seals with the backend, checking nothing else was touched and the caller's key survived. */
function sealWith(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, built: BuiltBatch): void {
  const keyBefore = key.slice();
  const before = captureUntouchables(built);
  const aeadKey = backend.createKey(suite, key);
  try {
    aeadKey.sealBatch(built.batch);
  } finally {
    aeadKey.destroy();
  }
  expect(findTouched(before, built), 'sealing touched bytes it must not').toBeNull();
  expect(hex(key), 'the caller\'s key buffer changed').toBe(hex(keyBefore));
}

function openWith(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, built: BuiltBatch): { status: Uint8Array; authenticated: number } {
  const before = captureUntouchables(built);
  const status = new Uint8Array(built.batch.count).fill(0xee);
  const aeadKey = backend.createKey(suite, key);
  let authenticated: number;
  try {
    authenticated = aeadKey.openBatch(built.batch, status);
  } finally {
    aeadKey.destroy();
  }
  expect(findTouched(before, built), 'opening touched bytes it must not').toBeNull();
  return { status, authenticated };
}

function randomSlots(count: number, includeEdges: boolean): SlotContent[] {
  return randomSlotsFrom(random, count, includeEdges);
}

function flipBit(bytes: Uint8Array, bit: number): void {
  bytes[bit >>> 3] ^= 1 << (bit & 7);
}

for (const entry of backends) {
  const backend = entry.backend;
  if (backend === null) {
    describe.skip(skippedTitle(entry), () => {
      it('runs the differential tests', () => {});
    });
    continue;
  }
  describe(`${entry.label} backend vs node:crypto (seed ${random.seed}; replay with SEALCAST_TEST_SEED)`, () => {
    const { statusOk, statusAuthFailed } = backend.constants;

    it('reports the constants the wire format assumes', () => {
      expect(backend.constants.nonceBytes).toBe(NONCE_BYTES);
      expect(backend.constants.tagBytes).toBe(TAG_BYTES);
      expect(backend.constants.layoutWords).toBe(3);
      expect(backend.constants.payloadBytesMax).toBeGreaterThanOrEqual(PAYLOAD_BYTES_MAX);
      expect(statusOk).not.toBe(statusAuthFailed);
      expect(backend.suites).toContain('chacha20-poly1305');
    });

    for (const suite of backend.suites) {
      it(`${suite}: random batches seal byte-for-byte like node:crypto and open back, touching nothing else`, () => {
        for (let round = 0; round < 5; round++) {
          const key = random.bytes(keyBytesFor(suite));
          const slots = randomSlots(random.int(20, 28), round === 0);
          const built = buildBatch(slots, random);
          sealWith(backend, suite, key, built);
          slots.forEach((slot, index) => {
            const expected = referenceSeal(suite, key, slot.nonce, slot.aad, slot.payload);
            const actual = sealedBytesOf(built, index);
            if (hex(actual) !== hex(expected.ciphertext) + hex(expected.tag)) {
              expect.fail(`slot ${index} (AAD ${slot.aad.length} B, payload ${slot.payload.length} B) sealed differently from node:crypto`);
            }
          });
          const { status, authenticated } = openWith(backend, suite, key, built);
          expect(authenticated).toBe(slots.length);
          expect([...status]).toEqual(slots.map(() => statusOk));
          slots.forEach((slot, index) => {
            if (hex(regionOf(built, index, 'payload')) !== hex(slot.payload)) expect.fail(`slot ${index} did not open to its plaintext`);
          });
        }
      });

      it(`${suite}: opens what node:crypto sealed, and node:crypto opens what it sealed`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const slots = randomSlots(16, false);
        const sealedByNode = slots.map((slot) => {
          const sealed = referenceSeal(suite, key, slot.nonce, slot.aad, slot.payload);
          return { aad: slot.aad, nonce: slot.nonce, payload: sealed.ciphertext, tag: sealed.tag };
        });
        const built = buildBatch(sealedByNode, random);
        const { status, authenticated } = openWith(backend, suite, key, built);
        expect(authenticated).toBe(slots.length);
        expect([...status]).toEqual(slots.map(() => statusOk));
        slots.forEach((slot, index) => expect(hex(regionOf(built, index, 'payload'))).toBe(hex(slot.payload)));

        const own = buildBatch(slots, random);
        sealWith(backend, suite, key, own);
        slots.forEach((slot, index) => {
          const opened = referenceOpen(suite, key, nonceOf(own, index), slot.aad, regionOf(own, index, 'payload'), regionOf(own, index, 'tag'));
          expect(opened === null ? null : hex(opened), `node:crypto opening slot ${index}`).toBe(hex(slot.payload));
        });
      });

      it(`${suite}: a flipped bit in header, payload or tag fails only that slot, zeroes its payload, and the rest still open`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const slots = randomSlots(30, true);
        const built = buildBatch(slots, random);
        sealWith(backend, suite, key, built);
        const regions: Region[] = ['aad', 'payload', 'tag'];
        const forged = new Set<number>();
        const forgedWhere: string[] = [];
        slots.forEach((_, index) => {
          // Every third slot stays intact, so the batch mixes good and forged packets.
          if (index % 3 === 2) return;
          const candidates = regions.filter((region) => regionOf(built, index, region).length > 0);
          const region = candidates[(index + random.int(0, 2)) % candidates.length];
          const bytes = regionOf(built, index, region);
          const bit = random.int(0, bytes.length * 8 - 1);
          flipBit(bytes, bit);
          forged.add(index);
          forgedWhere[index] = `${region} bit ${bit}`;
        });
        const { status, authenticated } = openWith(backend, suite, key, built);
        expect(authenticated).toBe(slots.length - forged.size);
        slots.forEach((slot, index) => {
          const payload = regionOf(built, index, 'payload');
          if (forged.has(index)) {
            expect(status[index], `slot ${index}, flipped ${forgedWhere[index]}`).toBe(statusAuthFailed);
            expect(isAllZero(payload), `slot ${index}: payload of a forged packet was not zeroed`).toBe(true);
          } else {
            expect(status[index], `intact slot ${index}`).toBe(statusOk);
            expect(hex(payload), `intact slot ${index}`).toBe(hex(slot.payload));
          }
        });
      });

      it(`${suite}: every single-bit flip of a small packet (header, payload, tag) is rejected, in one batch of all flips`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const original: SlotContent = { aad: random.bytes(13), payload: random.bytes(40), nonce: random.bytes(NONCE_BYTES) };
        const sealedOnce = referenceSeal(suite, key, original.nonce, original.aad, original.payload);
        const packet = Buffer.concat([original.aad, sealedOnce.ciphertext, sealedOnce.tag]);
        const bitCount = packet.length * 8;
        const slots: SlotContent[] = [];
        for (let bit = 0; bit < bitCount; bit++) {
          const copy = new Uint8Array(packet);
          flipBit(copy, bit);
          slots.push({
            aad: copy.subarray(0, 13),
            payload: copy.subarray(13, 53),
            tag: copy.subarray(53),
            nonce: original.nonce,
          });
        }
        // One intact copy at the end proves the batch itself is sound.
        slots.push({ aad: original.aad, payload: sealedOnce.ciphertext, tag: sealedOnce.tag, nonce: original.nonce });
        const built = buildBatch(slots, random, { gapBytesMax: 3 });
        const { status, authenticated } = openWith(backend, suite, key, built);
        expect(authenticated).toBe(1);
        const notRejected = [...status.subarray(0, bitCount)].flatMap((value, bit) => (value === statusAuthFailed ? [] : [bit]));
        expect(notRejected, 'bits whose flip was not rejected').toEqual([]);
        for (let bit = 0; bit < bitCount; bit++) {
          if (!isAllZero(regionOf(built, bit, 'payload'))) expect.fail(`flip of bit ${bit}: payload not zeroed`);
        }
        expect(status[bitCount]).toBe(statusOk);
        expect(hex(regionOf(built, bitCount, 'payload'))).toBe(hex(original.payload));
      });

      it(`${suite}: a wrong key or a wrong nonce fails every slot`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const slots = randomSlots(6, false);
        const built = buildBatch(slots, random);
        sealWith(backend, suite, key, built);
        const sealedSlab = built.batch.slab.slice();

        const otherKey = key.slice();
        otherKey[random.int(0, otherKey.length - 1)] ^= 0x01;
        const wrongKey = openWith(backend, suite, otherKey, built);
        expect(wrongKey.authenticated).toBe(0);
        expect([...wrongKey.status]).toEqual(slots.map(() => statusAuthFailed));

        built.batch.slab.set(sealedSlab);
        const nonceByte = random.int(0, NONCE_BYTES - 1);
        for (let slot = 0; slot < slots.length; slot++) built.batch.nonces[slot * NONCE_BYTES + nonceByte] ^= 0x80;
        const wrongNonce = openWith(backend, suite, key, built);
        expect(wrongNonce.authenticated).toBe(0);
        expect([...wrongNonce.status]).toEqual(slots.map(() => statusAuthFailed));
        slots.forEach((_, index) => expect(isAllZero(regionOf(built, index, 'payload'))).toBe(true));
      });

      it(`${suite}: the key schedule keeps its own copy, so the caller may zero its key buffer right after createKey`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const keyCopy = key.slice();
        const slots = randomSlots(4, false);
        const built = buildBatch(slots, random);
        const aeadKey = backend.createKey(suite, key);
        key.fill(0);
        try {
          aeadKey.sealBatch(built.batch);
        } finally {
          aeadKey.destroy();
        }
        slots.forEach((slot, index) => {
          const expected = referenceSeal(suite, keyCopy, slot.nonce, slot.aad, slot.payload);
          expect(hex(sealedBytesOf(built, index))).toBe(hex(expected.ciphertext) + hex(expected.tag));
        });
      });

      it(`${suite}: a key schedule seals many batches, and an empty batch (count 0) is a no-op`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const aeadKey = backend.createKey(suite, key);
        try {
          const empty = buildBatch(randomSlots(3, false), random);
          const emptySlab = empty.batch.slab.slice();
          aeadKey.sealBatch({ ...empty.batch, count: 0 });
          expect(aeadKey.openBatch({ ...empty.batch, count: 0 }, new Uint8Array(0))).toBe(0);
          expect(hex(empty.batch.slab)).toBe(hex(emptySlab));
          for (let round = 0; round < 5; round++) {
            const slots = randomSlots(5, false);
            const built = buildBatch(slots, random);
            aeadKey.sealBatch(built.batch);
            slots.forEach((slot, index) => {
              const expected = referenceSeal(suite, key, slot.nonce, slot.aad, slot.payload);
              expect(hex(sealedBytesOf(built, index)), `round ${round} slot ${index}`).toBe(hex(expected.ciphertext) + hex(expected.tag));
            });
          }
        } finally {
          aeadKey.destroy();
        }
      });

      it(`${suite}: a partial count seals only the first slots`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const slots = randomSlots(6, false);
        const built = buildBatch(slots, random);
        const untouchedTail = built.batch.slab.slice(built.places[3].offset);
        const aeadKey = backend.createKey(suite, key);
        try {
          aeadKey.sealBatch({ ...built.batch, count: 3 });
        } finally {
          aeadKey.destroy();
        }
        for (let index = 0; index < 3; index++) {
          const expected = referenceSeal(suite, key, slots[index].nonce, slots[index].aad, slots[index].payload);
          expect(hex(sealedBytesOf(built, index))).toBe(hex(expected.ciphertext) + hex(expected.tag));
        }
        expect(hex(built.batch.slab.subarray(built.places[3].offset))).toBe(hex(untouchedTail));
      });
    }
  });
}
