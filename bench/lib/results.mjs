// Writes a benchmark's results as bench/results/<name>.json (gitignored).

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_DIRECTORY = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

/** Returns the path written. */
export function writeResults(name, object) {
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) throw new RangeError(`results name must be a plain file name, got "${name}"`);
  mkdirSync(RESULTS_DIRECTORY, { recursive: true });
  const path = join(RESULTS_DIRECTORY, `${name}.json`);
  writeFileSync(path, JSON.stringify(object, null, 2) + '\n');
  return path;
}
