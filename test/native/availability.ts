// Whether the native addon loads. Where it was not built, the native tests are skipped with the
// reason in their title, unless SEALCAST_REQUIRE_NATIVE=1 (CI), where a missing addon fails.

import { loadNativeBinding, type NativeBinding } from '../../dist/crypto/native.js';

export interface NativeAvailability {
  binding: NativeBinding | null;
  reason: string | null;
}

export function probeNative(env: NodeJS.ProcessEnv = process.env): NativeAvailability {
  try {
    return { binding: loadNativeBinding(), reason: null };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (env.SEALCAST_REQUIRE_NATIVE === '1') {
      throw new Error(`SEALCAST_REQUIRE_NATIVE=1 but the native addon did not load: ${reason}`);
    }
    return { binding: null, reason };
  }
}

export function describeTitle(title: string, availability: NativeAvailability): string {
  return availability.binding === null ? `${title} — skipped: ${availability.reason}` : title;
}
