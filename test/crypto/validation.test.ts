// Argument validation on every backend: each bad argument gives a TypeError or RangeError whose
// message names the offending argument and value, a suite the backend lacks gives E_BACKEND, a
// destroyed key gives E_CLOSED, and a refused batch is left exactly as it was.

import { describe, expect, it } from 'vitest';
import { ALL_SUITES, type AeadKey, type CryptoBackend, type PacketBatch } from '../../dist/crypto/backend.js';
import { listBackends, skippedTitle } from '../helpers/backends.js';
import { Random } from './random.js';
import { NONCE_BYTES, buildBatch, hex, type BuiltBatch } from './slab.js';
import { keyBytesFor, randomSlots } from './slots.js';

const backends = await listBackends({ chachaEngines: true });
const random = new Random(0x7a11d);

/** Runs `action` and returns what it threw (or fails the test when it throws nothing). */
function thrownBy(action: () => unknown): Error & { code?: string } {
  try {
    action();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected an error, but nothing was thrown');
}

interface BatchCase {
  title: string;
  make: (built: BuiltBatch) => { batch: unknown; status?: unknown };
  error: typeof TypeError | typeof RangeError;
  message: RegExp;
  /** When set, only sealing (or only opening) applies. */
  only?: 'seal' | 'open';
}

/** Three slots of 10-byte AAD and 20-byte payload, no gaps: slot i at byte 46*i. */
function smallBatch(): BuiltBatch {
  const slots = [0, 1, 2].map(() => ({ aad: random.bytes(10), payload: random.bytes(20), nonce: random.bytes(NONCE_BYTES) }));
  const built = buildBatch(slots, random, { gapBytesMax: 0 });
  return built;
}

function withLayout(built: BuiltBatch, edit: (layout: Uint32Array) => void): PacketBatch {
  const layout = built.batch.layout.slice();
  edit(layout);
  return { ...built.batch, layout };
}

const BATCH_CASES: BatchCase[] = [
  { title: 'batch is null', make: () => ({ batch: null }), error: TypeError, message: /batch must be an object.*null/ },
  { title: 'slab is an ArrayBuffer', make: (b) => ({ batch: { ...b.batch, slab: new ArrayBuffer(200) } }), error: TypeError, message: /batch\.slab.*ArrayBuffer/ },
  { title: 'slab is a plain array', make: (b) => ({ batch: { ...b.batch, slab: [...b.batch.slab] } }), error: TypeError, message: /batch\.slab.*Array/ },
  { title: 'layout is an Int32Array', make: (b) => ({ batch: { ...b.batch, layout: new Int32Array(b.batch.layout) } }), error: TypeError, message: /batch\.layout.*Int32Array/ },
  { title: 'nonces is a string', make: (b) => ({ batch: { ...b.batch, nonces: 'abc' } }), error: TypeError, message: /batch\.nonces.*string/ },
  { title: 'count is 1.5', make: (b) => ({ batch: { ...b.batch, count: 1.5 } }), error: TypeError, message: /batch\.count.*1\.5/ },
  { title: 'count is NaN', make: (b) => ({ batch: { ...b.batch, count: Number.NaN } }), error: TypeError, message: /batch\.count.*NaN/ },
  { title: 'count is the string "3"', make: (b) => ({ batch: { ...b.batch, count: '3' } }), error: TypeError, message: /batch\.count.*string "3"/ },
  { title: 'count is -1', make: (b) => ({ batch: { ...b.batch, count: -1 } }), error: RangeError, message: /batch\.count.*-1/ },
  { title: 'count (4) beyond the layout (3 slots)', make: (b) => ({ batch: { ...b.batch, count: 4 } }), error: RangeError, message: /batch\.count.*between 0 and 3.*got 4/ },
  {
    title: 'nonces too short (35 bytes for 3 slots)',
    make: (b) => ({ batch: { ...b.batch, nonces: b.batch.nonces.subarray(0, 35) } }),
    error: RangeError,
    message: /batch\.nonces.*36 bytes.*got 35/,
  },
  {
    title: 'slab too small for the last slot',
    make: (b) => ({ batch: { ...b.batch, slab: b.batch.slab.subarray(0, b.batch.slab.length - 1) } }),
    error: RangeError,
    message: /slot 2.*beyond batch\.slab/,
  },
  {
    title: 'a slot offset beyond the slab',
    make: (b) => ({ batch: withLayout(b, (layout) => (layout[6] = 100_000)) }),
    error: RangeError,
    message: /slot 2.*100\d+.*beyond batch\.slab/,
  },
  {
    title: 'a slot whose end passes 2^32 (uint32 wrap-around)',
    make: (b) => ({ batch: withLayout(b, (layout) => ((layout[6] = 0xffff_fff0), (layout[7] = 8), (layout[8] = 8))) }),
    error: RangeError,
    message: /slot 2.*beyond batch\.slab/,
  },
  {
    title: 'overlapping slots',
    make: (b) => ({ batch: withLayout(b, (layout) => (layout[3] = layout[0] + 1)) }),
    error: RangeError,
    message: /slot 1.*overlaps/,
  },
  {
    title: 'slots out of order',
    make: (b) =>
      ({ batch: withLayout(b, (layout) => {
        const first = layout.slice(0, 3);
        layout.copyWithin(0, 3, 6);
        layout.set(first, 3);
      }) }),
    error: RangeError,
    message: /slot 1: offset 0 overlaps/,
  },
  {
    title: 'an AAD beyond aadBytesMax',
    make: (b) => ({ batch: withLayout(b, (layout) => (layout[1] = 0x7fff_ffff)) }),
    error: RangeError,
    message: /slot 0.*AAD of 2147483647 bytes exceeds aadBytesMax/,
  },
  {
    title: 'a payload beyond payloadBytesMax',
    make: (b) => ({ batch: withLayout(b, (layout) => (layout[2] = 0x7fff_ffff)) }),
    error: RangeError,
    message: /slot 0.*payload of 2147483647 bytes exceeds payloadBytesMax/,
  },
  {
    title: 'nonces overlapping the slab',
    make: (b) => ({ batch: { ...b.batch, nonces: new Uint8Array(b.batch.slab.buffer, b.batch.slab.byteOffset, 36) } }),
    error: RangeError,
    message: /batch\.nonces must not overlap batch\.slab/,
  },
  {
    title: 'layout overlapping the slab',
    make: (b) => {
      // A slab and a layout that view the same bytes of one buffer.
      const buffer = new ArrayBuffer(256);
      const slab = new Uint8Array(buffer, 0, 200);
      slab.set(b.batch.slab.subarray(0, 200));
      return { batch: { ...b.batch, slab, layout: new Uint32Array(buffer, 160, 9).fill(0) } };
    },
    error: RangeError,
    message: /batch\.layout must not overlap batch\.slab/,
  },
  { title: 'status is a plain array', make: (b) => ({ batch: b.batch, status: [0, 0, 0] }), error: TypeError, message: /status.*Array/, only: 'open' },
  { title: 'status too short (2 bytes for 3 slots)', make: (b) => ({ batch: b.batch, status: new Uint8Array(2) }), error: RangeError, message: /status.*\(3\).*got 2/, only: 'open' },
  {
    title: 'status overlapping the slab',
    make: (b) => ({ batch: b.batch, status: b.batch.slab.subarray(0, 3) }),
    error: RangeError,
    message: /status must not overlap batch\.slab/,
    only: 'open',
  },
  {
    title: 'status overlapping the nonces',
    make: (b) => ({ batch: b.batch, status: b.batch.nonces.subarray(0, 3) }),
    error: RangeError,
    message: /status must not overlap batch\.nonces/,
    only: 'open',
  },
];

for (const entry of backends) {
  const backend = entry.backend;
  if (backend === null) {
    describe.skip(skippedTitle(entry), () => {
      it('runs the validation tests', () => {});
    });
    continue;
  }
  describe(`${entry.label} backend: validation`, () => {
    const suite = 'chacha20-poly1305';

    it('createKey refuses keys of the wrong size, naming the sizes', () => {
      for (const offered of backend.suites) {
        const expected = keyBytesFor(offered);
        for (const size of [0, expected - 1, expected + 1, 64]) {
          const error = thrownBy(() => backend.createKey(offered, new Uint8Array(size)));
          expect(error, `${offered} with a ${size}-byte key`).toBeInstanceOf(RangeError);
          expect(error.message).toMatch(new RegExp(`key must be ${expected} bytes for ${offered}, got ${size}\\b`));
        }
      }
    });

    it('createKey refuses keys that are not byte arrays, naming the type', () => {
      const cases: Array<[unknown, RegExp]> = [
        ['0'.repeat(32), /key.*string/],
        [new Array(32).fill(0), /key.*Array/],
        [new ArrayBuffer(32), /key.*ArrayBuffer/],
        [new Uint16Array(16), /key.*Uint16Array/],
        [null, /key.*null/],
        [undefined, /key.*undefined/],
      ];
      for (const [key, message] of cases) {
        const error = thrownBy(() => backend.createKey(suite, key as Uint8Array));
        expect(error, String(message)).toBeInstanceOf(TypeError);
        expect(error.message).toMatch(message);
      }
    });

    it('createKey refuses unknown suite names, naming the value', () => {
      const cases: Array<[unknown, RegExp]> = [
        ['aes-256-ccm', /suite.*"aes-256-ccm"/],
        ['CHACHA20-POLY1305', /suite.*"CHACHA20-POLY1305"/],
        ['', /suite.*""/],
        [undefined, /suite.*undefined/],
        [42, /suite.*42/],
      ];
      for (const [name, message] of cases) {
        const error = thrownBy(() => backend.createKey(name as typeof suite, new Uint8Array(32)));
        expect(error, String(name)).toBeInstanceOf(TypeError);
        expect(error.message).toMatch(message);
      }
    });

    const notOffered = ALL_SUITES.filter((name) => !backend.suites.includes(name));
    it.skipIf(notOffered.length === 0)(`createKey refuses suites the backend does not offer (${notOffered.join(', ') || 'none'}) with E_BACKEND`, () => {
      for (const name of notOffered) {
        const error = thrownBy(() => backend.createKey(name, new Uint8Array(keyBytesFor(name))));
        expect(error.name).toBe('SealcastError');
        expect(error.code).toBe('E_BACKEND');
        expect(error.message).toContain(name);
        expect(error.message).toContain(entry.name);
      }
    });

    if (entry.name === 'wasm') {
      it('wasm refuses aes-256-gcm with E_BACKEND', () => {
        const error = thrownBy(() => backend.createKey('aes-256-gcm', new Uint8Array(32)));
        expect(error.code).toBe('E_BACKEND');
      });
    } else {
      it('native offers both wire suites', () => {
        expect(backend.suites).toEqual(expect.arrayContaining(['chacha20-poly1305', 'aes-256-gcm']));
      });
    }

    for (const batchCase of BATCH_CASES) {
      for (const operation of ['seal', 'open'] as const) {
        if (batchCase.only !== undefined && batchCase.only !== operation) continue;
        it(`${operation}Batch: ${batchCase.title} gives ${batchCase.error.name} and leaves the batch untouched`, () => {
          const built = smallBatch();
          const { batch, status } = batchCase.make(built);
          const slabBefore = hex(built.batch.slab);
          const aeadKey = backend.createKey(suite, random.bytes(32));
          try {
            const error = thrownBy(() =>
              operation === 'seal'
                ? aeadKey.sealBatch(batch as PacketBatch)
                : aeadKey.openBatch(batch as PacketBatch, (status ?? new Uint8Array(3)) as Uint8Array),
            );
            expect(error).toBeInstanceOf(batchCase.error);
            expect(error.message).toMatch(batchCase.message);
          } finally {
            aeadKey.destroy();
          }
          expect(hex(built.batch.slab) === slabBefore, 'a refused batch was modified').toBe(true);
        });
      }
    }

    it('a destroyed key refuses sealBatch and openBatch with E_CLOSED; destroy is idempotent', () => {
      const built = smallBatch();
      const aeadKey: AeadKey = backend.createKey(suite, random.bytes(32));
      expect(aeadKey.destroyed).toBe(false);
      expect(aeadKey.suite).toBe(suite);
      expect(aeadKey.backend).toBe(entry.name);
      aeadKey.destroy();
      aeadKey.destroy();
      expect(aeadKey.destroyed).toBe(true);
      const slabBefore = hex(built.batch.slab);
      for (const action of [() => aeadKey.sealBatch(built.batch), () => aeadKey.openBatch(built.batch, new Uint8Array(3))]) {
        const error = thrownBy(action);
        expect(error.name).toBe('SealcastError');
        expect(error.code).toBe('E_CLOSED');
      }
      expect(hex(built.batch.slab)).toBe(slabBefore);
    });

    it('openBatch without a status array is a TypeError naming status, and touches nothing', () => {
      const built = smallBatch();
      const aeadKey = backend.createKey(suite, random.bytes(32));
      try {
        aeadKey.sealBatch(built.batch);
        const slabBefore = hex(built.batch.slab);
        for (const status of [undefined, null, [0, 0, 0], new Uint16Array(3)]) {
          const error = thrownBy(() => aeadKey.openBatch(built.batch, status as unknown as Uint8Array));
          expect(error).toBeInstanceOf(TypeError);
          expect(error.message).toMatch(/^status must be a Uint8Array/);
        }
        expect(hex(built.batch.slab)).toBe(slabBefore);
      } finally {
        aeadKey.destroy();
      }
    });

    it('a good batch passes the same checks (the cases above fail for the stated reason only)', () => {
      const built = buildBatch(randomSlots(random, 3, false), random);
      const aeadKey = backend.createKey(suite, random.bytes(32));
      try {
        aeadKey.sealBatch(built.batch);
        expect(aeadKey.openBatch(built.batch, new Uint8Array(3))).toBe(3);
        const small = smallBatch();
        aeadKey.sealBatch(small.batch);
        expect(aeadKey.openBatch(small.batch, new Uint8Array(3))).toBe(3);
      } finally {
        aeadKey.destroy();
      }
    });
  });
}
