// Chooses the crypto backend: native when its addon loads, WASM otherwise. SEALCAST_BACKEND
// (native | wasm | auto) overrides the choice; asking for native when it cannot load fails
// loudly rather than falling back. SEALCAST_CHACHA_ENGINE (auto | primitives | evp) caps how the
// native backend computes ChaCha20-Poly1305 (see NativeBinding.AeadKey).

import { SealcastError } from '../errors.js';
import type { BackendName, CryptoBackend } from './backend.js';
import { loadNativeBackend, type NativeChachaEngine } from './native.js';
import { loadWasmBackend } from './wasm.js';

export type BackendPreference = BackendName | 'auto';

export function backendPreferenceFromEnv(env: NodeJS.ProcessEnv = process.env): BackendPreference {
  const value = (env.SEALCAST_BACKEND ?? 'auto').trim().toLowerCase();
  if (value === '' || value === 'auto') return 'auto';
  if (value === 'native' || value === 'wasm') return value;
  throw new SealcastError('E_ARG', `SEALCAST_BACKEND must be native, wasm or auto, got "${env.SEALCAST_BACKEND}"`);
}

export function chachaEngineFromEnv(env: NodeJS.ProcessEnv = process.env): NativeChachaEngine {
  const value = (env.SEALCAST_CHACHA_ENGINE ?? 'auto').trim().toLowerCase();
  if (value === '' || value === 'auto') return 'auto';
  if (value === 'primitives' || value === 'evp') return value;
  throw new SealcastError('E_ARG', `SEALCAST_CHACHA_ENGINE must be auto, primitives or evp, got "${env.SEALCAST_CHACHA_ENGINE}"`);
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

export async function loadBackend(
  preference: BackendPreference = backendPreferenceFromEnv(),
  chachaEngine: NativeChachaEngine = chachaEngineFromEnv(),
): Promise<CryptoBackend> {
  if (preference === 'wasm') return loadWasmBackend();
  if (preference === 'native') return loadNativeBackend(chachaEngine);
  try {
    return loadNativeBackend(chachaEngine);
  } catch (error) {
    // A bad engine name is the caller's mistake, not a reason to fall back to WASM.
    if (error instanceof RangeError) throw error;
    return loadWasmBackend();
  }
}
