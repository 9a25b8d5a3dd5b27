// Every error sealcast raises on purpose carries a stable code, so that callers and the CLI can
// act on it without parsing messages. The CLI maps codes to exit codes (see README).

export const ERROR_CODES = [
  'E_ARG', // A bad flag, option or argument value.
  'E_IO', // A file or stream could not be read or written.
  'E_KEY', // A key file is missing, has the wrong size or the wrong mode.
  'E_BACKEND', // The requested crypto backend or suite is not available.
  'E_AUTH', // Authentication failed: wrong key, unknown client, bad proof.
  'E_GAP', // Part of the stream is missing and cannot be repaired.
  'E_VERIFY', // The output does not match the END record's length or digest.
  'E_TIMEOUT', // Something expected did not happen in time.
  'E_PROTOCOL', // A peer sent a malformed or unexpected message.
  'E_POOL', // The worker pool is closed, full or a worker failed.
  'E_CLOSED', // The object was already closed or destroyed.
  'E_INTERNAL', // An invariant was violated: a bug in sealcast.
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class SealcastError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SealcastError';
    this.code = code;
  }
}

export function isSealcastError(value: unknown, code?: ErrorCode): value is SealcastError {
  return value instanceof SealcastError && (code === undefined || value.code === code);
}

/** Asserts an internal invariant; failing means a bug, never bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SealcastError('E_INTERNAL', `assertion failed: ${message}`);
}
