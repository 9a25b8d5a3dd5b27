// Lists the crypto backends the cross-backend tests run on. WASM is always there; native is
// there when its addon loads. CI sets SEALCAST_REQUIRE_NATIVE=1 so that a missing addon fails
// the run instead of silently shrinking it to WASM only.

import type { BackendName, CryptoBackend } from '../../dist/crypto/backend.js';
import { loadBackend } from '../../dist/crypto/load.js';

export interface BackendAvailability {
  readonly name: BackendName;
  /** The loaded backend, or null when it could not load (see `unavailableReason`). */
  readonly backend: CryptoBackend | null;
  readonly unavailableReason: string | null;
}

/**
 * Loads every backend. Throws when SEALCAST_REQUIRE_NATIVE=1 and the native addon does not
 * load, so that every test file using this helper fails with the reason.
 */
export async function listBackends(env: NodeJS.ProcessEnv = process.env): Promise<BackendAvailability[]> {
  const wasm = await loadBackend('wasm');
  let native: CryptoBackend | null = null;
  let nativeReason: string | null = null;
  try {
    native = await loadBackend('native');
  } catch (error) {
    nativeReason = error instanceof Error ? error.message : String(error);
  }
  if (native === null && env.SEALCAST_REQUIRE_NATIVE === '1') {
    throw new Error(`SEALCAST_REQUIRE_NATIVE=1 but the native backend did not load: ${nativeReason}`);
  }
  return [
    { name: 'native', backend: native, unavailableReason: nativeReason },
    { name: 'wasm', backend: wasm, unavailableReason: null },
  ];
}

/** The title of a describe block for a backend that could not load, saying why it is skipped. */
export function skippedTitle(entry: BackendAvailability): string {
  return `${entry.name} backend — skipped: ${entry.unavailableReason ?? 'not available'}`;
}
