// A frame limit too small for the messages a peer must send would make sending throw inside a
// socket event handler (and crash the process); such limits are refused up front instead, and
// every message either side can send fits the smallest limit allowed.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { registerWithServer } from '../../dist/control/client.js';
import { startControlServer } from '../../dist/control/server.js';
import { encodeFrame, FRAME_BYTES_MAX_MIN } from '../../dist/control/frames.js';
import { encodeMessage, ERROR_TEXT_CHARS_MAX } from '../../dist/control/messages.js';
import { generateIdentity } from '../../dist/keys/identity.js';
import { Registry } from '../../dist/store/registry.js';

describe('control frame limits', () => {
  it('refuses a server frame limit below the minimum', async () => {
    const registry = Registry.open(':memory:');
    try {
      await expect(
        startControlServer({
          registry,
          identity: generateIdentity(),
          session: { sessionId: randomBytes(8), group: '239.255.77.11', port: 47001, suite: 'chacha20-poly1305', packetBytes: 1400 },
          currentEpoch: () => ({ epoch: 0, dataKey: randomBytes(32) }),
          frameBytesMax: 100,
        }),
      ).rejects.toThrow(RangeError);
    } finally {
      registry.close();
    }
  });

  it('refuses a client frame limit below the minimum', () => {
    expect(() => registerWithServer({ host: '127.0.0.1', port: 9, clientId: 'alice', psk: randomBytes(32), frameBytesMax: 100 })).toThrow(RangeError);
  });

  it('fits the largest error message into the smallest limit', () => {
    // Control characters are the costliest text: JSON writes each as a 6-byte escape.
    const text = '\u0001'.repeat(ERROR_TEXT_CHARS_MAX);
    const payload = encodeMessage({ type: 'error', v: 1, reason: 'removed-client', text });
    expect(() => encodeFrame(payload, FRAME_BYTES_MAX_MIN)).not.toThrow();
  });
});
