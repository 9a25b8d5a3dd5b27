// Reads dist/bundle/modules.json (written by scripts/bundle-cli.mjs): which dist modules each
// chunk of the CLI bundle holds, and a SHA-256 of each as it was bundled.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli-process.js';

export const BUNDLE_DIR = join(ROOT, 'dist', 'bundle');

export interface BundledModule {
  /** Path under dist/, with forward slashes: `control/client.js`. */
  module: string;
  sha256: string;
}

export function readBundleManifest(): Record<string, BundledModule[]> {
  const manifest = JSON.parse(readFileSync(join(BUNDLE_DIR, 'modules.json'), 'utf8')) as { chunks: Record<string, BundledModule[]> };
  return manifest.chunks;
}

/**
 * The dist modules behind a list of loaded file URLs: a bundle chunk stands for the modules it
 * holds, a file under dist/ outside the bundle for itself. Other files (node_modules) are left out.
 */
export function modulesLoaded(urls: readonly string[]): string[] {
  const chunks = readBundleManifest();
  const modules = new Set<string>();
  for (const url of urls) {
    const inBundle = /\/dist\/bundle\/([^/]+\.js)$/.exec(url);
    if (inBundle !== null) {
      const held = chunks[inBundle[1]!];
      if (held === undefined) throw new Error(`${url} is not a chunk of dist/bundle/modules.json: rebuild (npm run build)`);
      for (const { module } of held) modules.add(module);
      continue;
    }
    const inDist = /\/dist\/(.+\.js)$/.exec(url);
    if (inDist !== null) modules.add(inDist[1]!);
  }
  return [...modules];
}
