// Chooses the crypto backend: native when its addon loads, WASM otherwise. SEALCAST_BACKEND
// (native | wasm | auto) overrides the choice; asking for native when it cannot load fails
// loudly rather than falling back.

import { SealcastError } from '../errors.js';
import type { BackendName, CryptoBackend } from './backend.js';
import { loadNativeBackend } from './native.js';
import { loadWasmBackend } from './wasm.js';

export type BackendPreference = BackendName | 'auto';

export function backendPreferenceFromEnv(env: NodeJS.ProcessEnv = process.env): BackendPreference {
  const value = (env.SEALCAST_BACKEND ?? 'auto').trim().toLowerCase();
  if (value === '' || value === 'auto') return 'auto';
  if (value === 'native' || value === 'wasm') return value;
  throw new SealcastError('E_ARG', `SEALCAST_BACKEND must be native, wasm or auto, got "${env.SEALCAST_BACKEND}"`);
}

/** Why the native addon did not load, or null when it did. */
export function nativeUnavailableReason(): string | null {
  try {
    loadNativeBackend();
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export async function loadBackend(preference: BackendPreference = backendPreferenceFromEnv()): Promise<CryptoBackend> {
  if (preference === 'wasm') return loadWasmBackend();
  if (preference === 'native') return loadNativeBackend();
  try {
    return loadNativeBackend();
  } catch {
    return loadWasmBackend();
  }
}
