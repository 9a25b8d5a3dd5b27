// Parity between the native and WASM backends: for every suite both offer, the same batch
// seals to the same bytes on both, each opens the other's output, and forged slots fail the
// same way on both.

import { describe, expect, it } from 'vitest';
import type { CryptoBackend, SuiteName } from '../../dist/crypto/backend.js';
import { listBackends } from '../helpers/backends.js';
import { Random } from './random.js';
import { buildBatch, cloneBatch, hex, regionOf, type BuiltBatch } from './slab.js';
import { keyBytesFor, randomSlots } from './slots.js';

const backends = await listBackends();
const native = backends.find((entry) => entry.name === 'native');
const wasm = backends.find((entry) => entry.name === 'wasm');
const random = Random.fromEnv();

function seal(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, built: BuiltBatch): void {
  const aeadKey = backend.createKey(suite, key);
  try {
    aeadKey.sealBatch(built.batch);
  } finally {
    aeadKey.destroy();
  }
}

function open(backend: CryptoBackend, suite: SuiteName, key: Uint8Array, built: BuiltBatch): Uint8Array {
  const status = new Uint8Array(built.batch.count).fill(0xee);
  const aeadKey = backend.createKey(suite, key);
  try {
    aeadKey.openBatch(built.batch, status);
  } finally {
    aeadKey.destroy();
  }
  return status;
}

if (native?.backend == null || wasm?.backend == null) {
  const reason = native?.unavailableReason ?? wasm?.unavailableReason ?? 'a backend is missing';
  describe.skip(`native vs wasm parity — skipped: ${reason}`, () => {
    it('seals identically and opens each other', () => {});
  });
} else {
  const nativeBackend = native.backend;
  const wasmBackend = wasm.backend;
  const shared = nativeBackend.suites.filter((suite) => wasmBackend.suites.includes(suite));
  describe(`native vs wasm parity (seed ${random.seed}; replay with SEALCAST_TEST_SEED)`, () => {
    it('share at least chacha20-poly1305 and the same constants', () => {
      expect(shared).toContain('chacha20-poly1305');
      for (const name of ['keyBytes', 'nonceBytes', 'tagBytes', 'layoutWords', 'statusOk', 'statusAuthFailed'] as const) {
        expect(nativeBackend.constants[name], name).toBe(wasmBackend.constants[name]);
      }
    });

    for (const suite of shared) {
      it(`${suite}: the same batches seal to identical slabs, and each backend opens the other's output`, () => {
        for (let round = 0; round < 4; round++) {
          const key = random.bytes(keyBytesFor(suite));
          const slots = randomSlots(random, random.int(16, 24), round === 0);
          const byNative = buildBatch(slots, random);
          const byWasm = cloneBatch(byNative);
          seal(nativeBackend, suite, key, byNative);
          seal(wasmBackend, suite, key, byWasm);
          expect(hex(byNative.batch.slab) === hex(byWasm.batch.slab), `round ${round}: sealed slabs differ`).toBe(true);

          // Cross-open: WASM opens native's output and native opens WASM's.
          const wasmStatus = open(wasmBackend, suite, key, byNative);
          const nativeStatus = open(nativeBackend, suite, key, byWasm);
          expect([...wasmStatus]).toEqual(slots.map(() => wasmBackend.constants.statusOk));
          expect([...nativeStatus]).toEqual(slots.map(() => nativeBackend.constants.statusOk));
          slots.forEach((slot, index) => {
            expect(hex(regionOf(byNative, index, 'payload')), `slot ${index} opened by wasm`).toBe(hex(slot.payload));
            expect(hex(regionOf(byWasm, index, 'payload')), `slot ${index} opened by native`).toBe(hex(slot.payload));
          });
        }
      });

      it(`${suite}: forged slots fail identically on both backends`, () => {
        const key = random.bytes(keyBytesFor(suite));
        const slots = randomSlots(random, 20, false);
        const sealed = buildBatch(slots, random);
        seal(nativeBackend, suite, key, sealed);
        for (let index = 0; index < slots.length; index += 2) {
          const tag = regionOf(sealed, index, 'tag');
          tag[random.int(0, tag.length - 1)] ^= 1 << random.int(0, 7);
        }
        const forNative = cloneBatch(sealed);
        const forWasm = cloneBatch(sealed);
        const nativeStatus = open(nativeBackend, suite, key, forNative);
        const wasmStatus = open(wasmBackend, suite, key, forWasm);
        expect([...nativeStatus]).toEqual([...wasmStatus]);
        expect([...nativeStatus]).toEqual(slots.map((_, index) => (index % 2 === 0 ? nativeBackend.constants.statusAuthFailed : nativeBackend.constants.statusOk)));
        expect(hex(forNative.batch.slab) === hex(forWasm.batch.slab), 'slabs after opening differ').toBe(true);
      });
    }
  });
}
