// End to end on loopback with real processes: `sealcast send --control` runs the control server
// beside the data plane; `sealcast recv --server` registers, gets the group, session and key from
// it, and writes the stream. All control traffic goes through a capturing TCP proxy and the test
// also joins the multicast group, so both planes' bytes can be searched for keys.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { run } from '../../dist/cli/main.js';
import { registerWithServer } from '../../dist/control/client.js';
import { deriveKey } from '../../dist/keys/kdf.js';

const SEALCAST = fileURLToPath(new URL('../../bin/sealcast.js', import.meta.url));
const AUTH_EXIT = 6;
const TIMEOUT_EXIT = 9;

let dir = '';
const children: ChildProcess[] = [];
const closers: Array<() => void> = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealcast-e2e-control-'));
});
afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.length = 0;
  for (const close of closers.splice(0)) close();
  rmSync(dir, { recursive: true, force: true });
});

interface Finished {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

interface Running {
  child: ChildProcess;
  stderrText(): string;
  done: Promise<Finished>;
}

function sealcast(args: string[], timeoutMs = 60_000): Running {
  const child = spawn(process.execPath, [SEALCAST, ...args], {
    cwd: dir,
    env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<Finished>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(stdout), stderr });
    });
  });
  return { child, stderrText: () => stderr, done };
}

async function waitFor<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function cli(args: string[]): Promise<number> {
  const sink = new PassThrough();
  sink.resume();
  return run(args, { stdout: sink, stderr: sink });
}

async function captureProxy(targetPort: number, bytes: Buffer[]): Promise<number> {
  const sockets = new Set<Socket>();
  const proxy: Server = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port: targetPort });
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => {});
    }
    inbound.on('data', (chunk: Buffer) => (bytes.push(Buffer.from(chunk)), outbound.write(chunk)));
    outbound.on('data', (chunk: Buffer) => (bytes.push(Buffer.from(chunk)), inbound.write(chunk)));
    inbound.on('end', () => outbound.end());
    outbound.on('end', () => inbound.end());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    proxy.close();
  });
  return (proxy.address() as { port: number }).port;
}

async function captureMulticast(address: string, port: number, bytes: Buffer[]): Promise<void> {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => socket.bind(port, resolve));
  socket.addMembership(address, '127.0.0.1');
  socket.setRecvBufferSize(8 * 1024 * 1024);
  socket.on('message', (message) => bytes.push(Buffer.from(message)));
  closers.push(() => socket.close());
}

function leaks(haystack: Buffer, secret: Buffer): boolean {
  for (let start = 0; start + 8 <= secret.byteLength; start += 4) if (haystack.includes(secret.subarray(start, start + 8))) return true;
  const text = haystack.toString('latin1');
  return [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')].some((form) => text.includes(form.slice(0, 16)));
}

describe('send --control / recv --server end to end', () => {
  it('three subscribers get exact output; unknown, wrong-key and removed clients get E_AUTH and write nothing; no key in any traffic', async () => {
    const db = join(dir, 'registry.db');
    for (const name of ['alice', 'bob', 'carol', 'spy', 'dave']) {
      expect(await cli(['subscribers', 'add', name, '--db', db, '--psk-out', join(dir, `${name}.psk`)])).toBe(0);
    }
    expect(await cli(['subscribers', 'remove', 'dave', '--db', db])).toBe(0);
    writeFileSync(join(dir, 'wrong.psk'), randomBytes(32), { mode: 0o600 });
    const input = randomBytes(2 * 1024 * 1024 + 12345);
    writeFileSync(join(dir, 'input.bin'), input);

    const group = { address: `239.255.${randomInt(100, 200)}.${randomInt(1, 250)}`, port: randomInt(40_000, 60_000) };
    const controlBytes: Buffer[] = [];
    const dataBytes: Buffer[] = [];
    await captureMulticast(group.address, group.port, dataBytes);

    // 3 receivers + the test's own subscriber, which learns the data key to search for it.
    const sender = sealcast([
      'send', 'input.bin', '--group', `${group.address}:${group.port}`, '--control', '127.0.0.1:0', '--db', db,
      '--wait-for', '4', '--wait-timeout', '60', '--server-key', join(dir, 'server.pem'), '--rate', '50M',
    ]);
    const [, controlPort, fingerprint] = await waitFor(
      () => /control server on 127\.0\.0\.1:(\d+), fingerprint (SHA256:[A-Za-z0-9_-]{43})/.exec(sender.stderrText()),
      'the sender to print its control address',
    );
    const proxyPort = await captureProxy(Number(controlPort), controlBytes);
    const server = `127.0.0.1:${proxyPort}`;

    // Refused clients, while the sender waits: each exits with E_AUTH and creates no output.
    const refused = [
      { id: 'mallory', psk: 'wrong.psk', pattern: /E_AUTH: .*does not know the subscriber id "mallory"/ },
      { id: 'alice', psk: 'wrong.psk', pattern: /E_AUTH: .*rejected the registration of "alice": wrong pre-shared key/ },
      { id: 'dave', psk: 'dave.psk', pattern: /E_AUTH: .*"dave" was removed/ },
    ];
    for (const { id, psk, pattern } of refused) {
      const out = join(dir, `refused-${id}-${psk}.out`);
      const result = await sealcast(['recv', '--server', server, '--id', id, '--psk-file', psk, '--server-fingerprint', fingerprint, '-o', out]).done;
      expect(result.code, result.stderr).toBe(AUTH_EXIT);
      expect(result.stderr).toMatch(pattern);
      expect(result.stdout.byteLength).toBe(0);
      expect(existsSync(out)).toBe(false);
    }
    // The sender is still waiting: nothing was sent to anyone refused.
    expect(sender.stderrText()).not.toMatch(/sealcast send: session /);

    const receivers = ['alice', 'bob', 'carol'].map((id) =>
      sealcast(['recv', '--server', server, '--id', id, '--psk-file', `${id}.psk`, '--server-fingerprint', fingerprint]),
    );
    await waitFor(() => ['alice', 'bob', 'carol'].every((id) => sender.stderrText().includes(`(${id}) registered`)), 'three registrations');
    // --wait-for 4 holds the start while only three subscribers hold the key.
    expect(sender.stderrText()).not.toMatch(/sealcast send: session /);

    const spyPsk = readFileSync(join(dir, 'spy.psk'));
    const spy = await registerWithServer({ host: '127.0.0.1', port: proxyPort, clientId: 'spy', psk: spyPsk, pinnedFingerprint: fingerprint, timeoutMs: 20_000 });
    const dataKey = Buffer.from(spy.initialKey.dataKey);
    const sessionId = spy.session.sessionId;
    expect(spy.session).toMatchObject({ group: group.address, port: group.port });

    const sent = await sender.done;
    expect(sent.code, sent.stderr).toBe(0);
    for (const [index, receiver] of receivers.entries()) {
      const result = await receiver.done;
      expect(result.code, `${['alice', 'bob', 'carol'][index]}: ${result.stderr}`).toBe(0);
      expect(result.stdout.equals(input)).toBe(true);
      expect(result.stderr).toMatch(/registered as \w+ .*pinned/);
    }
    spy.close();

    const control = Buffer.concat(controlBytes);
    const data = Buffer.concat(dataBytes);
    expect(control.toString('latin1')).toContain('"type":"welcome"');
    // The capture is a search space, not a receiver: it may lose datagrams, but must hold most.
    expect(data.byteLength).toBeGreaterThan(input.byteLength / 2);
    const secrets: Array<[string, Buffer]> = [
      ['data key', dataKey],
      ['packet key', deriveKey('packetKey', dataKey, sessionId, [0, 'chacha20-poly1305'])],
    ];
    for (const name of ['alice', 'bob', 'carol', 'spy', 'wrong']) {
      const psk = readFileSync(join(dir, `${name}.psk`));
      secrets.push([`${name} psk`, psk]);
      if (name !== 'wrong') secrets.push([`${name} wrap key`, deriveKey('clientWrapKey', psk, sessionId, [name])]);
    }
    const logs = Buffer.from(sent.stderr + (await Promise.all(receivers.map((receiver) => receiver.done))).map((result) => result.stderr).join(''));
    for (const [name, secret] of secrets) {
      expect(leaks(control, secret), `${name} in control traffic`).toBe(false);
      expect(leaks(data, secret), `${name} in multicast traffic`).toBe(false);
      expect(leaks(logs, secret), `${name} in the logs`).toBe(false);
    }
  });

  it('--wait-for fails with E_TIMEOUT when too few subscribers register, and sends nothing', async () => {
    const db = join(dir, 'registry.db');
    expect(await cli(['subscribers', 'add', 'alice', '--db', db, '--psk-out', join(dir, 'alice.psk')])).toBe(0);
    writeFileSync(join(dir, 'input.bin'), randomBytes(10_000));
    const group = { address: `239.255.${randomInt(100, 200)}.${randomInt(1, 250)}`, port: randomInt(40_000, 60_000) };
    const dataBytes: Buffer[] = [];
    await captureMulticast(group.address, group.port, dataBytes);
    const sender = sealcast([
      'send', 'input.bin', '--group', `${group.address}:${group.port}`, '--control', '127.0.0.1:0', '--db', db,
      '--wait-for', '2', '--wait-timeout', '3', '--server-key', join(dir, 'server.pem'),
    ]);
    const [, controlPort, fingerprint] = await waitFor(
      () => /control server on 127\.0\.0\.1:(\d+), fingerprint (SHA256:[A-Za-z0-9_-]{43})/.exec(sender.stderrText()),
      'the sender to print its control address',
    );
    const receiver = sealcast(['recv', '--server', `127.0.0.1:${controlPort}`, '--id', 'alice', '--psk-file', 'alice.psk', '--server-fingerprint', fingerprint, '--idle-timeout', '2']);
    const sent = await sender.done;
    expect(sent.code, sent.stderr).toBe(TIMEOUT_EXIT);
    expect(sent.stderr).toMatch(/E_TIMEOUT: only 1 of 2 subscribers held the key after 3 s/);
    expect(dataBytes).toHaveLength(0);
    receiver.child.kill('SIGTERM');
    await receiver.done;
  });

  it('a subscriber registering mid-stream starts at the next packet it can open (exit 11, an exact suffix)', async () => {
    const db = join(dir, 'registry.db');
    for (const name of ['early', 'late']) {
      expect(await cli(['subscribers', 'add', name, '--db', db, '--psk-out', join(dir, `${name}.psk`)])).toBe(0);
    }
    const input = randomBytes(3 * 1024 * 1024);
    writeFileSync(join(dir, 'input.bin'), input);
    const group = { address: `239.255.${randomInt(100, 200)}.${randomInt(1, 250)}`, port: randomInt(40_000, 60_000) };
    const sender = sealcast([
      'send', 'input.bin', '--group', `${group.address}:${group.port}`, '--control', '127.0.0.1:0', '--db', db,
      '--wait-for', '1', '--server-key', join(dir, 'server.pem'), '--rate', '8M',
      // The other end-to-end runs take the default (native where it can be): this one node:net.
      '--control-transport', 'net',
    ]);
    const [, controlPort, fingerprint] = await waitFor(
      () => /control server on 127\.0\.0\.1:(\d+), fingerprint (SHA256:[A-Za-z0-9_-]{43})/.exec(sender.stderrText()),
      'the sender to print its control address',
    );
    const server = `127.0.0.1:${controlPort}`;
    // The early receiver pins nothing: it trusts on first use and records the server.
    const early = sealcast(['recv', '--server', server, '--id', 'early', '--psk-file', 'early.psk']);
    // Join once the stream is visibly under way at the early receiver.
    await waitFor(() => /receiving session/.test(early.stderrText()), 'the early receiver to start');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const late = sealcast(['recv', '--server', server, '--id', 'late', '--psk-file', 'late.psk', '--server-fingerprint', fingerprint]);
    const [earlyResult, lateResult, sent] = await Promise.all([early.done, late.done, sender.done]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(earlyResult.code, earlyResult.stderr).toBe(0);
    expect(earlyResult.stdout.equals(input)).toBe(true);
    expect(earlyResult.stderr).toMatch(/warning: first contact with the control server at 127\.0\.0\.1:\d+: trusting its fingerprint SHA256:/);
    expect(readFileSync(join(dir, 'config', 'sealcast', 'known_servers'), 'utf8')).toBe(`${server} ${fingerprint}\n`);
    expect(lateResult.code, lateResult.stderr).toBe(11);
    expect(lateResult.stderr).toMatch(/joined mid-stream/);
    expect(lateResult.stdout.byteLength).toBeGreaterThan(0);
    expect(lateResult.stdout.byteLength).toBeLessThan(input.byteLength);
    expect(lateResult.stdout.equals(input.subarray(input.byteLength - lateResult.stdout.byteLength))).toBe(true);
  });

  it('refuses to mix key modes and names what is missing', async () => {
    const result = await sealcast(['recv', '--server', '127.0.0.1:1', '--id', 'a']).done;
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--server needs --id NAME and --psk-file FILE/);
    const both = await sealcast(['send', 'x', '--group', '239.255.1.1:5000', '--key-file', 'k', '--control', '127.0.0.1:0', '--db', 'd']).done;
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --key-file/);
  });
});
