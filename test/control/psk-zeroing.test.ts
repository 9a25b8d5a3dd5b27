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

describe('control server key hygiene', () => {
  it('zeroes the looked-up key when the key kind does not match', async () => {
    const lookedUp: Buffer[] = [];
    const registry = {
      lookupForRegistration: () => {
        const psk = randomBytes(32);
        lookedUp.push(psk);
        return { status: 'active', keyKind: 'hsm', psk };
      },
      statusOf: () => 'active',
      close: () => {},
    } as unknown as Registry;
    server = await startTestServer([], { registry });
    await expect(server.register('alice', { psk: randomBytes(32) })).rejects.toMatchObject({ code: 'E_PROTOCOL' });
    expect(lookedUp).toHaveLength(1);
    expect(lookedUp[0].equals(Buffer.alloc(32))).toBe(true);
  });
});
