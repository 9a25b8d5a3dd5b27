// PLACEHOLDER until the native helper lands: the native backend is not built yet.
import { SealcastError } from '../errors.js';
import type { CryptoBackend } from './backend.js';

export function loadNativeBackend(): CryptoBackend {
  throw new SealcastError('E_BACKEND', 'the native addon is not built');
}
