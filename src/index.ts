// The public library API. The CLI (src/cli) is a thin shell over these exports.
export * from './errors.js';
export * from './crypto/backend.js';
export { loadBackend, backendPreferenceFromEnv, nativeUnavailableReason } from './crypto/load.js';
export type { BackendPreference } from './crypto/load.js';
export { run } from './cli/main.js';
export { startControlServer } from './control/server.js';
export type { ControlServer, ControlServerOptions, ControlSessionOptions, ControlLogger, KeyHolder } from './control/server.js';
export { registerWithServer } from './control/client.js';
export type { ControlClient, RegisterOptions, DeliveredKey, ServerTrust } from './control/client.js';
export type { EpochKeyBundle } from './control/key-wrap.js';
export type { SessionParams, KeyKind } from './control/messages.js';
export { Registry } from './store/registry.js';
export type { SubscriberRecord } from './store/registry.js';
export { loadOrCreateIdentity, generateIdentity, fingerprintOf, parseFingerprint, defaultServerKeyPath } from './keys/identity.js';
export type { ServerIdentity } from './keys/identity.js';
export { defaultKnownServersPath } from './keys/known-servers.js';
export { generatePsk, readPskFile, writePskFile } from './keys/psk.js';
