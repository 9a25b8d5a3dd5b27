// Shared fixtures for control-plane tests: an in-memory registry with subscribers, an in-process
// server with a recording logger, and a raw TCP helper for sending arbitrary bytes.

import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { startControlServer, type ControlServer, type ControlServerOptions, type ControlTransportMode } from '../../dist/control/server.js';
import { controlListenerBinding } from '../../dist/control/native-transport.js';
import { registerWithServer, type ControlClient, type RegisterOptions } from '../../dist/control/client.js';
import { generateIdentity, type ServerIdentity } from '../../dist/keys/identity.js';
import { Registry } from '../../dist/store/registry.js';
import type { EpochKeyBundle } from '../../dist/control/key-wrap.js';

export interface RecordingLogger {
  info(message: string): void;
  warn(message: string): void;
  lines: string[];
}

export function recordingLogger(): RecordingLogger {
  const lines: string[] = [];
  return { lines, info: (message) => lines.push(`info ${message}`), warn: (message) => lines.push(`warn ${message}`) };
}

/**
 * The control transports this machine can run: native (Linux, addon built) and node:net. With
 * SEALCAST_REQUIRE_NATIVE=1 (CI) a missing native transport is a failure, not a skip.
 */
export function controlTransports(): Array<'native' | 'net'> {
  const binding = controlListenerBinding();
  if (typeof binding !== 'string') return ['native', 'net'];
  if (process.env.SEALCAST_REQUIRE_NATIVE === '1') throw new Error(`SEALCAST_REQUIRE_NATIVE=1 but the native control transport is unavailable: ${binding}`);
  return ['net'];
}

let currentTransport: ControlTransportMode = 'auto';

/** Runs the same tests once per control transport; startTestServer uses the block's transport. */
export function describeEachTransport(title: string, body: (transport: 'native' | 'net') => void): void {
  for (const transport of controlTransports()) {
    describe(`${title} (${transport} transport)`, () => {
      beforeAll(() => {
        currentTransport = transport;
      });
      afterAll(() => {
        currentTransport = 'auto';
      });
      body(transport);
    });
  }
}

export interface TestServer {
  server: ControlServer;
  registry: Registry;
  identity: ServerIdentity;
  logger: RecordingLogger;
  psks: Map<string, Buffer>;
  epoch: EpochKeyBundle;
  setEpoch(bundle: EpochKeyBundle): void;
  sessionId: Buffer;
  tempDir: string;
  register(clientId: string, extra?: Partial<RegisterOptions>): Promise<ControlClient>;
  close(): Promise<void>;
}

export async function startTestServer(
  clientIds: string[],
  options: Partial<ControlServerOptions> = {},
): Promise<TestServer> {
  const registry = Registry.open(':memory:');
  const psks = new Map<string, Buffer>();
  for (const id of clientIds) {
    const psk = randomBytes(32);
    registry.addPskSubscriber(id, psk);
    psks.set(id, psk);
  }
  const identity = generateIdentity();
  const logger = recordingLogger();
  const sessionId = randomBytes(8);
  const state = { epoch: { epoch: 0, dataKey: randomBytes(32) } as EpochKeyBundle };
  const server = await startControlServer({
    registry,
    identity,
    logger,
    session: { sessionId, group: '239.255.77.10', port: 47000, suite: 'chacha20-poly1305', packetBytes: 1400 },
    currentEpoch: () => state.epoch,
    transport: currentTransport,
    ...options,
  });
  const tempDir = mkdtempSync(join(tmpdir(), 'sealcast-control-'));
  const clients: ControlClient[] = [];
  return {
    server,
    registry,
    identity,
    logger,
    psks,
    get epoch() {
      return state.epoch;
    },
    setEpoch(bundle) {
      state.epoch = bundle;
    },
    sessionId,
    tempDir,
    async register(clientId, extra = {}) {
      const client = await registerWithServer({
        host: '127.0.0.1',
        port: server.address.port,
        clientId,
        psk: psks.get(clientId) ?? randomBytes(32),
        pinnedFingerprint: identity.fingerprint,
        timeoutMs: 5000,
        ...extra,
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.close();
      await server.close();
      registry.close();
      rmSync(tempDir, { recursive: true, force: true });
    },
  } as TestServer;
}

/** Opens a raw TCP connection; resolves once connected. */
export function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Resolves with everything the server sent once it closes the connection, or rejects after
 * `timeoutMs` (a server that keeps a bad connection open fails the test).
 */
export function waitForServerClose(socket: Socket, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server did not close the connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

export function frame(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.byteLength);
  return Buffer.concat([header, body]);
}
