// The public library API. The CLI (src/cli) is a thin shell over these exports.
export * from './errors.js';
export * from './crypto/backend.js';
export { loadBackend, backendPreferenceFromEnv, nativeUnavailableReason } from './crypto/load.js';
export type { BackendPreference } from './crypto/load.js';
export { run } from './cli/main.js';
