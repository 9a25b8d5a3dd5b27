// Builds the native addon at install time. A failed build is not fatal: sealcast then runs on
// the WASM backend, and `sealcast doctor` says so. SEALCAST_REQUIRE_NATIVE=1 (set by CI) makes
// a failed build fail the install, so CI never silently tests only the fallback.
//
// The addon compiles against the headers of the Node that runs this script (including the
// OpenSSL headers Node ships) and links nothing else. node-gyp downloads headers when it has
// none, so this script points it at local headers and skips the build rather than download.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** A compiler that hangs must not hang `npm install` forever. */
const BUILD_TIMEOUT_MS = 10 * 60 * 1000;

const require = createRequire(import.meta.url);
const required = process.env.SEALCAST_REQUIRE_NATIVE === '1';

function giveUp(message) {
  console.warn(`sealcast: ${message}; sealcast will run on the WASM backend (ChaCha20-Poly1305 only).`);
  process.exit(required ? 1 : 0);
}

function hasNodeHeaders(nodeDir) {
  return existsSync(join(nodeDir, 'include', 'node', 'node_api.h')) && existsSync(join(nodeDir, 'include', 'node', 'openssl', 'evp.h'));
}

/** The node-gyp arguments that select local headers, or null when there are none. */
function headerArguments() {
  // npm passes `nodedir` from .npmrc (or --nodedir) as npm_config_nodedir, which node-gyp reads.
  const configured = process.env.npm_config_nodedir;
  if (configured) return hasNodeHeaders(configured) ? [] : null;
  // A distribution's Node keeps its headers under its own prefix (/usr/include/node).
  const prefix = dirname(dirname(process.execPath));
  if (hasNodeHeaders(prefix)) return [`--nodedir=${prefix}`];
  return null;
}

let gypScript;
try {
  gypScript = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  giveUp('node-gyp is not installed, so the native backend is not built');
}
const headers = headerArguments();
if (headers === null) {
  giveUp(
    `Node's headers (node_api.h and openssl/evp.h) were not found under ${process.env.npm_config_nodedir ?? dirname(dirname(process.execPath))}; set npm_config_nodedir to a directory holding include/node`,
  );
}
const result = spawnSync(process.execPath, [gypScript, 'rebuild', ...headers], {
  stdio: 'inherit',
  timeout: BUILD_TIMEOUT_MS,
});
if (result.error !== undefined || result.status !== 0) {
  const why = result.error !== undefined ? result.error.message : `node-gyp exited with ${result.status ?? result.signal}`;
  giveUp(`building the native addon failed (${why})`);
}
