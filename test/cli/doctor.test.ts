import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadCommands, run } from '../../dist/cli/main.js';
import { backendPreferenceFromEnv, chachaEngineFromEnv, loadBackend } from '../../dist/crypto/load.js';
import { loadNativeBinding, nativeKeyHandle } from '../../dist/crypto/native.js';

const BIN = new URL('../../bin/sealcast.js', import.meta.url).pathname;
const binding = (() => {
  try {
    return loadNativeBinding();
  } catch {
    return null;
  }
})();

function capture() {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function runCaptured(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  const stdout = capture();
  const stderr = capture();
  const exitCode = await run(argv, { stdout: stdout.stream, stderr: stderr.stream, env });
  return { exitCode, stdout: stdout.text(), stderr: stderr.text() };
}

describe('sealcast doctor', () => {
  it('reports the backend, suites, OpenSSL and pool size in-process', async () => {
    const result = await runCaptured(['doctor', '--json']);
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(['native', 'wasm']).toContain(report.backend);
    expect(report.wireSuites).toContain('chacha20-poly1305');
    expect(report.poolThreads).toBeGreaterThanOrEqual(1);
    if (report.backend === 'native') {
      expect(report.openSsl).toMatch(/OpenSSL \d+\.\d+/);
      expect(report.wireSuites).toContain('aes-256-gcm');
      expect(['lanes', 'primitives', 'evp']).toContain(report.chachaEngine);
    } else {
      expect(report.openSsl).toBeNull();
      expect(report.chachaEngine).toBeNull();
    }
    if (process.env.SEALCAST_REQUIRE_NATIVE === '1') expect(report.backend).toBe('native');
  });

  it('runs as a real process and honours SEALCAST_BACKEND=wasm', () => {
    const child = spawnSync(process.execPath, [BIN, 'doctor'], {
      env: { ...process.env, SEALCAST_BACKEND: 'wasm' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.status).toBe(0);
    expect(child.stdout).toMatch(/^backend:\s+wasm$/m);
    expect(child.stdout).toMatch(/^suites:\s+chacha20-poly1305$/m);
    expect(child.stdout).toMatch(/^pool threads:\s+\d+$/m);
  });

  it('fails loudly on an unknown SEALCAST_BACKEND value', () => {
    const child = spawnSync(process.execPath, [BIN, 'doctor'], {
      env: { ...process.env, SEALCAST_BACKEND: 'gpu' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.status).toBe(2);
    expect(child.stderr).toContain('E_ARG');
    expect(child.stderr).toContain('SEALCAST_BACKEND');
  });
});

describe('sealcast CLI shell', () => {
  it('prints help with exit 0 and lists doctor', async () => {
    const result = await runCaptured(['--help']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('doctor');
  });

  it('loads only the named command, and every command for help, version or an unknown name', async () => {
    expect(await loadCommands(['recv', '--group', '239.1.2.3:4000'])).toHaveLength(1);
    expect(await loadCommands(['send'])).toHaveLength(1);
    for (const argv of [[], ['--help'], ['-V'], ['frobnicate'], ['--group', 'recv']]) expect(await loadCommands(argv)).toHaveLength(5);
    const help = await runCaptured(['recv', '--help']);
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('Usage: sealcast recv');
    expect(help.stdout).toContain('--output <file>');
    const all = await runCaptured(['--help']);
    for (const name of ['doctor', 'subscribers', 'keygen', 'send', 'recv']) expect(all.stdout).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
  });

  it('rejects an unknown command with exit 2', async () => {
    const result = await runCaptured(['frobnicate']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/unknown command/);
  });

  it('prints usage and exits 2 with no arguments', async () => {
    const result = await runCaptured([]);
    expect(result.exitCode).toBe(2);
  });

  it('a reader that goes away (EPIPE) ends a text command quietly, not with a crash', async () => {
    // The read end of stdout is closed before the child writes, so every write fails with EPIPE.
    const child = spawn(process.execPath, [BIN, 'doctor'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (exitCode) => resolve(exitCode)));
    expect(stderr).not.toMatch(/Unhandled|EPIPE/);
    expect(code).toBe(0);
  }, 20_000);

  it.skipIf(!existsSync('/dev/full'))('a stdout that cannot be written (ENOSPC) gives E_IO and exit 3', () => {
    const full = openSync('/dev/full', 'w');
    try {
      const result = spawnSync(process.execPath, [BIN, 'doctor'], { stdio: ['ignore', full, 'pipe'], timeout: 20_000 });
      expect(result.status).toBe(3);
      expect(result.stderr.toString()).toMatch(/E_IO: writing to stdout failed: ENOSPC/);
    } finally {
      closeSync(full);
    }
  });
});

describe('backendPreferenceFromEnv', () => {
  it('accepts native, wasm, auto and empty', () => {
    expect(backendPreferenceFromEnv({ SEALCAST_BACKEND: 'native' })).toBe('native');
    expect(backendPreferenceFromEnv({ SEALCAST_BACKEND: ' WASM ' })).toBe('wasm');
    expect(backendPreferenceFromEnv({ SEALCAST_BACKEND: '' })).toBe('auto');
    expect(backendPreferenceFromEnv({})).toBe('auto');
  });

  it('rejects other values with E_ARG', () => {
    expect(() => backendPreferenceFromEnv({ SEALCAST_BACKEND: 'gpu' })).toThrow(/SEALCAST_BACKEND/);
  });
});

describe('chachaEngineFromEnv (SEALCAST_CHACHA_ENGINE)', () => {
  it('accepts auto, primitives, evp and empty', () => {
    expect(chachaEngineFromEnv({ SEALCAST_CHACHA_ENGINE: 'primitives' })).toBe('primitives');
    expect(chachaEngineFromEnv({ SEALCAST_CHACHA_ENGINE: ' EVP ' })).toBe('evp');
    expect(chachaEngineFromEnv({ SEALCAST_CHACHA_ENGINE: '' })).toBe('auto');
    expect(chachaEngineFromEnv({})).toBe('auto');
  });

  it('rejects other values with E_ARG, in-process and as a real process (exit 2)', () => {
    expect(() => chachaEngineFromEnv({ SEALCAST_CHACHA_ENGINE: 'lanes' })).toThrow(/SEALCAST_CHACHA_ENGINE must be auto, primitives or evp/);
    const result = spawnSync(process.execPath, [BIN, 'doctor'], { env: { ...process.env, SEALCAST_CHACHA_ENGINE: 'fast' }, timeout: 20_000 });
    expect(result.status).toBe(2);
    expect(result.stderr.toString()).toMatch(/E_ARG: SEALCAST_CHACHA_ENGINE must be/);
  });

  it.skipIf(binding === null)('caps the engine of the native backend\'s keys, and doctor reports it', async () => {
    const expected = { primitives: binding!.CHACHA_PRIMITIVES_AVAILABLE ? 'primitives' : 'evp', evp: 'evp' } as const;
    for (const engine of ['primitives', 'evp'] as const) {
      const backend = await loadBackend('native', engine);
      const key = backend.createKey('chacha20-poly1305', new Uint8Array(32).fill(7));
      expect(nativeKeyHandle(key)?.engine).toBe(expected[engine]);
      key.destroy();
      const result = spawnSync(process.execPath, [BIN, 'doctor', '--json'], { env: { ...process.env, SEALCAST_CHACHA_ENGINE: engine }, timeout: 20_000 });
      expect(result.status).toBe(0);
      expect(JSON.parse(result.stdout.toString()).chachaEngine).toBe(expected[engine]);
    }
  }, 30_000);
});
