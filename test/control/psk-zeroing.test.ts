// The server zeroes the registry's copy of a subscriber's pre-shared key on every path of a
// registration, including a refusal because the subscriber is registered with another key kind.

import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Registry } from '../../dist/store/registry.js';
import { startTestServer, type TestServer } from './helpers.js';

let server: TestServer | null = null;

afterEach(async () => {
  await server?.close();
  server = null;
});

/** A registry that answers every lookup (one at a time or in a batch) with `lookup()`. */
function fakeRegistry(lookup: () => unknown): Registry {
  return {
    lookupForRegistration: lookup,
    lookupManyForRegistration: (ids: string[]) => ids.map(lookup),
    statusOf: () => 'active',
    close: () => {},
  } as unknown as Registry;
}

describe('control server key hygiene', () => {
  it('zeroes the looked-up key once both registration keys are derived from it', async () => {
    const psk = randomBytes(32);
    const lookedUp: Buffer[] = [];
    server = await startTestServer([], {
      registry: fakeRegistry(() => {
        const copy = Buffer.from(psk);
        lookedUp.push(copy);
        return { status: 'active', keyKind: 'psk', psk: copy };
      }),
    });
    const client = await server.register('alice', { psk });
    client.close();
    expect(lookedUp).toHaveLength(1);
    expect(lookedUp[0].equals(Buffer.alloc(32))).toBe(true);
  });

  it('zeroes the looked-up key when the key kind does not match', async () => {
    const lookedUp: Buffer[] = [];
    const registry = fakeRegistry(() => {
      const psk = randomBytes(32);
      lookedUp.push(psk);
      return { status: 'active', keyKind: 'hsm', psk };
    });
    server = await startTestServer([], { registry });
    await expect(server.register('alice', { psk: randomBytes(32) })).rejects.toMatchObject({ code: 'E_PROTOCOL' });
    expect(lookedUp).toHaveLength(1);
    expect(lookedUp[0].equals(Buffer.alloc(32))).toBe(true);
  });
});
