// fast-check generators shared by the control-plane property tests.

import fc from 'fast-check';

/** Exactly `n` random bytes, as a Buffer. */
export const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((array) => Buffer.from(array));

/** Session parameters as a challenge carries them. */
export const sessionParams = () =>
  fc.record({
    sessionId: bytes(8),
    group: fc.constantFrom('239.1.2.3', 'ff15::1234', '232.255.77.10'),
    port: fc.integer({ min: 1, max: 65535 }),
    suite: fc.constantFrom('chacha20-poly1305' as const, 'aes-256-gcm' as const),
    packetBytes: fc.integer({ min: 64, max: 65507 }),
  });
