// Builds the native addon at install time. A failed build is not fatal: sealcast then runs on
// the WASM backend, and `sealcast doctor` says so. SEALCAST_REQUIRE_NATIVE=1 (set by CI) makes
// a failed build fail the install, so CI never silently tests only the fallback.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let gypScript;
try {
  gypScript = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gypScript = null;
}
const required = process.env.SEALCAST_REQUIRE_NATIVE === '1';
if (gypScript === null) {
  console.warn('sealcast: node-gyp is not installed; the native backend is not built (WASM fallback in use).');
  process.exit(required ? 1 : 0);
}
const result = spawnSync(process.execPath, [gypScript, 'rebuild'], { stdio: 'inherit' });
if (result.status !== 0) {
  console.warn('sealcast: building the native addon failed; sealcast will run on the WASM backend (ChaCha20-Poly1305 only).');
  process.exit(required ? 1 : 0);
}
