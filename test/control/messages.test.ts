import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeClientMessage,
  decodeServerMessage,
  encodeMessage,
  type ClientMessage,
  type ServerMessage,
} from '../../dist/control/messages.js';
import { SealcastError } from '../../dist/errors.js';
import { bytes, sessionParams } from './arbitraries.js';

const clientId = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/);
const epoch = fc.integer({ min: 0, max: 0xffff_ffff });
const keyKind = fc.constantFrom('psk' as const, 'hsm' as const, 'pubkey' as const, 'cert' as const);
const wrappedKey = fc.record({
  keyKind,
  epoch,
  nonce: bytes(12),
  sealed: fc.oneof(bytes(48), bytes(80)),
});

/** 1 to 64 ascending, disjoint stream ranges, as nack and repair carry them. */
const streamRanges = fc
  .uniqueArray(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { minLength: 2, maxLength: 128 })
  .map((points) => points.sort((a, b) => a - b))
  .map((points) => {
    const ranges = [];
    for (let index = 0; index + 1 < points.length && ranges.length < 64; index += 2) ranges.push({ from: points[index], to: points[index + 1] });
    return ranges;
  });

const clientMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.record({ type: fc.constant('hello' as const), v: fc.constant(1 as const), clientId, keyKind, clientNonce: bytes(32) }),
  fc.record({ type: fc.constant('proof' as const), v: fc.constant(1 as const), mac: bytes(32) }),
  fc.record({ type: fc.constant('keyAck' as const), v: fc.constant(1 as const), epoch }),
  fc.record({ type: fc.constant('nack' as const), v: fc.constant(1 as const), ranges: streamRanges }),
  fc.constant({ type: 'slowDown' as const, v: 1 as const }),
  fc.record({ type: fc.constant('progress' as const), v: fc.constant(1 as const), offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
  fc.constant({ type: 'bye' as const, v: 1 as const }),
);

const serverMessage: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc.record({
    type: fc.constant('challenge' as const),
    v: fc.constant(1 as const),
    serverNonce: bytes(32),
    serverPublicKey: bytes(32),
    session: sessionParams(),
    signature: bytes(64),
  }).chain((challenge) =>
    fc
      .array(bytes(32), { maxLength: 12 })
      .chain((path) => fc.integer({ min: 0, max: 2 ** path.length - 1 }).map((leafIndex) => ({ ...challenge, leafIndex, path }))),
  ),
  fc.record({ type: fc.constant('welcome' as const), v: fc.constant(1 as const), key: wrappedKey, streamOffset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ type: fc.constant('key' as const), v: fc.constant(1 as const), key: wrappedKey }),
  fc.record({ type: fc.constant('repair' as const), v: fc.constant(1 as const), unavailable: streamRanges }),
  fc.record({
    type: fc.constant('error' as const),
    v: fc.constant(1 as const),
    reason: fc.constantFrom('unknown-client' as const, 'bad-proof' as const, 'protocol' as const),
    text: fc.string({ maxLength: 500 }),
  }),
);

/** A decode either returns a message or fails with E_PROTOCOL; any other outcome is a bug. */
function decodeCleanly(decode: (payload: Uint8Array) => unknown, payload: Uint8Array): unknown {
  try {
    return decode(payload);
  } catch (error) {
    expect(error).toBeInstanceOf(SealcastError);
    expect((error as SealcastError).code).toBe('E_PROTOCOL');
    return error;
  }
}

function mutate(payload: Buffer, edits: Array<{ at: number; value: number }>, cut: number | null): Buffer {
  const copy = Buffer.from(payload);
  for (const { at, value } of edits) copy[at % copy.byteLength] = value;
  return cut === null ? copy : copy.subarray(0, cut % (copy.byteLength + 1));
}

const edits = fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 });
const cut = fc.option(fc.nat(), { nil: null });

describe('control messages', () => {
  it('round-trip through encode and decode', () => {
    fc.assert(
      fc.property(clientMessage, (message) => {
        expect(decodeClientMessage(encodeMessage(message))).toEqual(message);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(serverMessage, (message) => {
        expect(decodeServerMessage(encodeMessage(message))).toEqual(message);
      }),
      { numRuns: 300 },
    );
  });

  it('a challenge is encoded as exactly the JSON text of its fields (also when the session text is reused)', () => {
    fc.assert(
      fc.property(serverMessage, fc.boolean(), (message, freeze) => {
        if (message.type !== 'challenge') return;
        const session = freeze ? Object.freeze({ ...message.session }) : message.session;
        const expected = JSON.stringify({
          type: 'challenge',
          v: 1,
          serverNonce: message.serverNonce.toString('base64'),
          serverPublicKey: message.serverPublicKey.toString('base64'),
          session: { ...session, sessionId: session.sessionId.toString('base64') },
          signature: message.signature.toString('base64'),
          leafIndex: message.leafIndex,
          path: message.path.map((hash) => hash.toString('base64')),
        });
        // Twice: the second encoding of a frozen session uses the kept text.
        expect(encodeMessage({ ...message, session }).toString('utf8')).toBe(expected);
        expect(encodeMessage({ ...message, session }).toString('utf8')).toBe(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a challenge whose signature path is too long, malformed, or does not fit its leaf index', () => {
    const base = {
      type: 'challenge',
      v: 1,
      serverNonce: Buffer.alloc(32, 1).toString('base64'),
      serverPublicKey: Buffer.alloc(32, 2).toString('base64'),
      session: { sessionId: Buffer.alloc(8, 3).toString('base64'), group: '239.1.2.3', port: 5000, suite: 'chacha20-poly1305', packetBytes: 1400 },
      signature: Buffer.alloc(64, 4).toString('base64'),
    };
    const hash = Buffer.alloc(32, 5).toString('base64');
    const decode = (fields: Record<string, unknown>) => () => decodeServerMessage(Buffer.from(JSON.stringify({ ...base, ...fields })));
    expect(decode({ leafIndex: 5, path: [hash, hash, hash] })()).toMatchObject({ leafIndex: 5, path: [Buffer.alloc(32, 5), Buffer.alloc(32, 5), Buffer.alloc(32, 5)] });
    expect(decode({ leafIndex: 0, path: [] })()).toMatchObject({ leafIndex: 0, path: [] });
    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ leafIndex: 0, path: Array(13).fill(hash) }, /challenge.path must be an array of at most 12 hashes/],
      [{ leafIndex: 8, path: [hash, hash, hash] }, /challenge.leafIndex must be an integer between 0 and 7/],
      [{ leafIndex: 1, path: [] }, /challenge.leafIndex must be an integer between 0 and 0/],
      [{ leafIndex: -1, path: [hash] }, /challenge.leafIndex/],
      [{ leafIndex: 0.5, path: [hash] }, /challenge.leafIndex/],
      [{ leafIndex: 0, path: [Buffer.alloc(31).toString('base64')] }, /challenge.path\[0\] must be base64 of 32 bytes/],
      [{ leafIndex: 0, path: hash }, /challenge.path must be an array/],
      [{ leafIndex: 0, path: [7] }, /challenge.path\[0\]/],
      [{ path: [] }, /challenge lacks the field "leafIndex"/],
      [{ leafIndex: 0 }, /challenge lacks the field "path"/],
    ];
    for (const [fields, pattern] of refused) {
      expect(decode(fields)).toThrow(pattern);
      try {
        decode(fields)();
      } catch (error) {
        expect((error as SealcastError).code).toBe('E_PROTOCOL');
      }
    }
  });

  it('mutated or truncated messages decode to a valid message or fail with E_PROTOCOL', () => {
    fc.assert(
      fc.property(clientMessage, edits, cut, (message, changes, length) => {
        decodeCleanly(decodeClientMessage, mutate(encodeMessage(message), changes, length));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(serverMessage, edits, cut, (message, changes, length) => {
        decodeCleanly(decodeServerMessage, mutate(encodeMessage(message), changes, length));
      }),
      { numRuns: 1000 },
    );
  });

  it('arbitrary JSON values and random bytes end in E_PROTOCOL, never another error', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const payload = Buffer.from(JSON.stringify(value) ?? 'null');
        for (const decode of [decodeClientMessage, decodeServerMessage]) {
          expect(decodeCleanly(decode, payload)).toBeInstanceOf(SealcastError);
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (payload) => {
        decodeCleanly(decodeClientMessage, payload);
        decodeCleanly(decodeServerMessage, payload);
      }),
      { numRuns: 500 },
    );
  });

  it('valid-looking objects with a field replaced by any JSON value never decode to a wrong shape', () => {
    const hello = { type: 'hello', v: 1, clientId: 'alice', keyKind: 'psk', clientNonce: Buffer.alloc(32, 7).toString('base64') };
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(hello)), fc.jsonValue(), (field, value) => {
        const result = decodeCleanly(decodeClientMessage, Buffer.from(JSON.stringify({ ...hello, [field]: value })));
        if (!(result instanceof SealcastError)) {
          const message = result as { type: string; clientId: string; clientNonce: Buffer };
          expect(message.type).toBe('hello');
          expect(message.clientId).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
          expect(message.clientNonce.byteLength).toBe(32);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses unknown fields, other versions, the wrong direction and non-canonical base64', () => {
    const nonce = Buffer.alloc(32, 1).toString('base64');
    const ok = { type: 'hello', v: 1, clientId: 'a', keyKind: 'psk', clientNonce: nonce };
    expect(decodeClientMessage(Buffer.from(JSON.stringify(ok))).type).toBe('hello');
    expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ ...ok, extra: 1 })))).toThrow(/unknown field/);
    expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ ...ok, v: 2 })))).toThrow(/protocol version 2/);
    expect(() => decodeServerMessage(Buffer.from(JSON.stringify(ok)))).toThrow(/unknown server message type/);
    expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ ...ok, clientNonce: nonce.replace(/=$/, '') })))).toThrow(/base64 of 32 bytes/);
    expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ ...ok, clientId: 'a b' })))).toThrow(/clientId/);
    expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ ...ok, clientId: 'x'.repeat(65) })))).toThrow(/clientId/);
    expect(() => decodeClientMessage(Buffer.from('{"__proto__":{"type":"bye"},"v":1}'))).toThrow(SealcastError);
  });

  it('names reserved message types as reserved (receipts, withdrawal, liveness)', () => {
    for (const type of ['receipt', 'withdraw', 'withdrawn', 'ping', 'pong']) {
      expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ type, v: 1 })))).toThrow(/reserved/);
    }
  });

  it('takes repair ranges only ascending, disjoint, non-empty, at most 64, within safe integers', () => {
    const nack = (ranges: unknown) => () => decodeClientMessage(Buffer.from(JSON.stringify({ type: 'nack', v: 1, ranges })));
    const repair = (unavailable: unknown) => () => decodeServerMessage(Buffer.from(JSON.stringify({ type: 'repair', v: 1, unavailable })));
    expect(nack([{ from: 0, to: 1 }, { from: 1, to: Number.MAX_SAFE_INTEGER }])()).toEqual({
      type: 'nack',
      v: 1,
      ranges: [
        { from: 0, to: 1 },
        { from: 1, to: Number.MAX_SAFE_INTEGER },
      ],
    });
    expect(nack([])).toThrow(/1 to 64 ranges/);
    expect(nack(Array.from({ length: 65 }, (_, index) => ({ from: 2 * index, to: 2 * index + 1 })))).toThrow(/1 to 64 ranges/);
    expect(nack([{ from: 5, to: 5 }])).toThrow(/to must be an integer/);
    expect(nack([{ from: 10, to: 20 }, { from: 15, to: 30 }])).toThrow(/ascending/);
    expect(nack([{ from: 10, to: 20 }, { from: 0, to: 5 }])).toThrow(/ascending/);
    expect(nack([{ from: -1, to: 5 }])).toThrow(/from must be an integer/);
    expect(nack([{ from: 0, to: 2 ** 53 }])).toThrow(/to must be an integer/);
    expect(nack([{ from: 0, to: 1, extra: true }])).toThrow(/unknown field/);
    expect(nack({ from: 0, to: 1 })).toThrow(SealcastError);
    expect(repair([{ from: 3, to: 2 }])).toThrow(SealcastError);
    // Each direction keeps to its own types.
    expect(() => decodeServerMessage(Buffer.from(JSON.stringify({ type: 'nack', v: 1, ranges: [{ from: 0, to: 1 }] })))).toThrow(/unknown server message type/);
    expect(() => decodeClientMessage(Buffer.from(JSON.stringify({ type: 'repair', v: 1, unavailable: [{ from: 0, to: 1 }] })))).toThrow(/unknown client message type/);
  });
});
