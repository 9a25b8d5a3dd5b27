// bin/sealcast.js runs the bundle in dist/bundle/ (scripts/bundle-cli.mjs), so the end-to-end
// tests exercise what users run. A bundle left from an older dist/ would make those tests check
// old code: every bundled module must still be byte-for-byte the dist module it came from.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLE_DIR, readBundleManifest } from '../helpers/bundle-manifest.js';
import { ROOT } from '../helpers/cli-process.js';

describe('the CLI bundle', () => {
  const chunks = readBundleManifest();

  it('is built from the current dist/ (otherwise run npm run build)', () => {
    const stale: string[] = [];
    for (const modules of Object.values(chunks)) {
      for (const { module, sha256 } of modules) {
        const path = join(ROOT, 'dist', module);
        if (!existsSync(path) || createHash('sha256').update(readFileSync(path)).digest('hex') !== sha256) stale.push(module);
      }
    }
    expect(stale).toEqual([]);
  });

  it('has every chunk its manifest names, the CLI entry and the pool worker next to the pool', () => {
    for (const chunk of Object.keys(chunks)) expect(existsSync(join(BUNDLE_DIR, chunk)), chunk).toBe(true);
    expect(chunks['main.js']?.map(({ module }) => module)).toContain('cli/main.js');
    // The pool starts new URL('./worker.js', import.meta.url): the chunk holding the pool must sit
    // beside a worker.js that holds the worker entry.
    expect(chunks['worker.js']?.map(({ module }) => module)).toContain('pool/worker.js');
    expect(Object.values(chunks).flat().map(({ module }) => module)).toContain('pool/pool.js');
  });

  it('is what bin/sealcast.js runs', () => {
    expect(readFileSync(join(ROOT, 'bin', 'sealcast.js'), 'utf8')).toMatch(/^import \{ run \} from '\.\.\/dist\/bundle\/main\.js';$/m);
  });
});
