// Lists the crypto backends the cross-backend tests run on. WASM is always there; native is
// there when its addon loads. CI sets SEALCAST_REQUIRE_NATIVE=1 so that a missing addon fails
// the run instead of silently shrinking it to WASM only.

import type { BackendName, CryptoBackend } from '../../dist/crypto/backend.js';
import { loadBackend } from '../../dist/crypto/load.js';
import { loadNativeBackend } from '../../dist/crypto/native.js';

export interface BackendAvailability {
  readonly name: BackendName;
  /** The name, and for native keys forced to a slower ChaCha20-Poly1305 engine, that engine. */
  readonly label: string;
  /** The loaded backend, or null when it could not load (see `unavailableReason`). */
  readonly backend: CryptoBackend | null;
  readonly unavailableReason: string | null;
}

/**
 * Loads every backend. Throws when SEALCAST_REQUIRE_NATIVE=1 and the native addon does not
 * load, so that every test file using this helper fails with the reason.
 */
export async function listBackends(
  { env = process.env, chachaEngines = false }: { env?: NodeJS.ProcessEnv; chachaEngines?: boolean } = {},
): Promise<BackendAvailability[]> {
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
  // With `chachaEngines`, the native backend again with each slower ChaCha20-Poly1305 engine
  // forced, so that every engine a machine may fall back to runs the same crypto tests (AES-GCM
  // keys are the same in all).
  const engines = native === null || !chachaEngines ? [] : (['primitives', 'evp'] as const).map((engine) => ({
    name: 'native' as const,
    label: `native (${engine} engine)`,
    backend: loadNativeBackend(engine),
    unavailableReason: null,
  }));
  return [
    { name: 'native', label: 'native', backend: native, unavailableReason: nativeReason },
    ...engines,
    { name: 'wasm', label: 'wasm', backend: wasm, unavailableReason: null },
  ];
}

/** The title of a describe block for a backend that could not load, saying why it is skipped. */
export function skippedTitle(entry: BackendAvailability): string {
  return `${entry.label} backend — skipped: ${entry.unavailableReason ?? 'not available'}`;
}
