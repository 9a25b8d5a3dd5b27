// Every Wycheproof AES-GCM vector with a 96-bit IV and 128-bit tag, and every ChaCha20-Poly1305
// vector, on every backend that offers the suite: first each vector alone as a one-slot batch,
// then all vectors that share a key as one batch, so the batching path sees them too.

import { describe, expect, it } from 'vitest';
import { ALL_SUITES, type AeadKey, type CryptoBackend, type SuiteName } from '../../dist/crypto/backend.js';
import { listBackends, skippedTitle } from '../helpers/backends.js';
import { Random } from './random.js';
import { buildBatch, captureUntouchables, findTouched, hex, isAllZero, regionOf, sealedBytesOf, type SlotContent } from './slab.js';
import { describeVector, loadVectors, type AeadVector } from './wycheproof.js';

const backends = await listBackends({ chachaEngines: true });
const aesFile = loadVectors('aes_gcm_test.json');
const chachaFile = loadVectors('chacha20_poly1305_test.json');
const allVectors = [...aesFile.vectors, ...chachaFile.vectors];
const expressible = allVectors.filter((vector) => vector.ivBits === 96);
const shortIv = allVectors.filter((vector) => vector.ivBits < 96);
const longIv = allVectors.filter((vector) => vector.ivBits > 96);
// Batches of vectors are laid out with random gaps; the layout does not affect the expected bytes.
const random = new Random(0x5eca1);

function withKey<T>(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, use: (aeadKey: AeadKey) => T): T {
  const aeadKey = backend.createKey(suite, key);
  try {
    return use(aeadKey);
  } finally {
    aeadKey.destroy();
  }
}

/** Seals every vector's msg in one batch and returns one failure description per mismatch. */
function sealVectors(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, vectors: AeadVector[]): string[] {
  const failures: string[] = [];
  const slots: SlotContent[] = vectors.map((vector) => ({ aad: vector.aad, payload: vector.msg, nonce: vector.iv }));
  const built = buildBatch(slots, random);
  const before = captureUntouchables(built);
  withKey(backend, suite, key, (aeadKey) => aeadKey.sealBatch(built.batch));
  const touched = findTouched(before, built);
  if (touched !== null) failures.push(`sealing ${vectors.length} slot(s): ${touched}`);
  vectors.forEach((vector, slot) => {
    if (!vector.valid) return;
    const expected = hex(vector.ct) + hex(vector.tag);
    const actual = hex(sealedBytesOf(built, slot));
    if (actual !== expected) failures.push(`${describeVector(vector)}: sealed to ${actual}, expected ${expected}`);
  });
  return failures;
}

/** Opens every vector's ct‖tag in one batch and checks status, return value and payload. */
function openVectors(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, vectors: AeadVector[]): string[] {
  const failures: string[] = [];
  const { statusOk, statusAuthFailed } = backend.constants;
  const slots: SlotContent[] = vectors.map((vector) => ({ aad: vector.aad, payload: vector.ct, nonce: vector.iv, tag: vector.tag }));
  const built = buildBatch(slots, random);
  const before = captureUntouchables(built);
  // A sentinel that is neither status, so a status the backend forgot to write shows up.
  const status = new Uint8Array(vectors.length).fill(0xee);
  const authenticated = withKey(backend, suite, key, (aeadKey) => aeadKey.openBatch(built.batch, status));
  const touched = findTouched(before, built);
  if (touched !== null) failures.push(`opening ${vectors.length} slot(s): ${touched}`);
  const expectedAuthenticated = vectors.filter((vector) => vector.valid).length;
  if (authenticated !== expectedAuthenticated) {
    failures.push(`openBatch returned ${authenticated} for ${vectors.length} slot(s), expected ${expectedAuthenticated}`);
  }
  vectors.forEach((vector, slot) => {
    const payload = regionOf(built, slot, 'payload');
    if (vector.valid) {
      if (status[slot] !== statusOk) failures.push(`${describeVector(vector)}: status ${status[slot]}, expected ok (${statusOk})`);
      else if (hex(payload) !== hex(vector.msg)) failures.push(`${describeVector(vector)}: opened to ${hex(payload)}, expected ${hex(vector.msg)}`);
    } else {
      if (status[slot] !== statusAuthFailed) {
        failures.push(`${describeVector(vector)}: status ${status[slot]}, expected authFailed (${statusAuthFailed})`);
      }
      if (!isAllZero(payload)) failures.push(`${describeVector(vector)}: payload of a forged packet was not zeroed: ${hex(payload)}`);
    }
  });
  return failures;
}

function groupByKey(vectors: AeadVector[]): AeadVector[][] {
  const groups = new Map<string, AeadVector[]>();
  for (const vector of vectors) {
    const keyHex = hex(vector.key);
    const group = groups.get(keyHex);
    if (group === undefined) groups.set(keyHex, [vector]);
    else group.push(vector);
  }
  return [...groups.values()];
}

describe('Wycheproof vector files', () => {
  it('are loaded completely (every vector in the files has a 128-bit tag)', () => {
    expect(aesFile.vectors.length).toBe(aesFile.declaredCount);
    expect(chachaFile.vectors.length).toBe(chachaFile.declaredCount);
    for (const suite of ALL_SUITES) {
      expect(expressible.filter((vector) => vector.suite === suite).length, suite).toBeGreaterThan(50);
    }
  });
});

for (const entry of backends) {
  const backend = entry.backend;
  if (backend === null) {
    describe.skip(skippedTitle(entry), () => {
      it('runs the Wycheproof vectors', () => {});
    });
    continue;
  }
  describe(`${entry.label} backend: Wycheproof`, () => {
    for (const suite of ALL_SUITES) {
      const vectors = expressible.filter((vector) => vector.suite === suite);
      const validCount = vectors.filter((vector) => vector.valid).length;
      const invalidCount = vectors.length - validCount;
      if (!backend.suites.includes(suite)) {
        it.skip(`${suite}: ${vectors.length} vectors not run — the ${entry.name} backend does not offer ${suite}`, () => {});
        continue;
      }
      it(`${suite}: ${validCount} valid vectors seal to ct‖tag and open to msg, ${invalidCount} invalid vectors fail to open (one-slot batches)`, () => {
        const failures: string[] = [];
        for (const vector of vectors) {
          failures.push(...sealVectors(backend, suite, vector.key, [vector]));
          failures.push(...openVectors(backend, suite, vector.key, [vector]));
        }
        expect(failures).toEqual([]);
      });
      const groups = groupByKey(vectors);
      const largest = Math.max(...groups.map((group) => group.length));
      it(`${suite}: the same ${vectors.length} vectors as one batch per key (${groups.length} batches, the largest ${largest} slots)`, () => {
        const failures: string[] = [];
        for (const group of groups) {
          failures.push(...sealVectors(backend, suite, group[0].key, group));
          failures.push(...openVectors(backend, suite, group[0].key, group));
        }
        expect(failures).toEqual([]);
      });
    }

    const shortOffered = shortIv.filter((vector) => backend.suites.includes(vector.suite));
    it(`${shortOffered.length} vectors with IVs shorter than 96 bits: a nonce buffer that short is refused with RangeError`, () => {
      expect(shortOffered.length).toBeGreaterThan(0);
      for (const vector of shortOffered) {
        withKey(backend, vector.suite, vector.key, (aeadKey) => {
          const slab = new Uint8Array(vector.aad.length + vector.ct.length + 16);
          slab.set(vector.aad);
          slab.set(vector.ct, vector.aad.length);
          slab.set(vector.tag, vector.aad.length + vector.ct.length);
          const before = slab.slice();
          const batch = { slab, layout: Uint32Array.of(0, vector.aad.length, vector.ct.length), nonces: vector.iv.slice(), count: 1 };
          expect(() => aeadKey.sealBatch(batch), describeVector(vector)).toThrow(RangeError);
          expect(() => aeadKey.openBatch(batch, new Uint8Array(1)), describeVector(vector)).toThrow(/batch\.nonces/);
          expect(hex(slab), describeVector(vector)).toBe(hex(before));
        });
      }
    });
    const longOffered = longIv.filter((vector) => backend.suites.includes(vector.suite));
    it.skip(`${longOffered.length} vectors with IVs longer than 96 bits: not applicable — nonces are 96 bits by construction, so the API cannot express them`, () => {});
  });
}
