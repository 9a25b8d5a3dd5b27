// Process exit codes, one per error code, documented in README.md ("Exit codes").

import type { ErrorCode } from '../errors.js';

export const EXIT_OK = 0;
/** The receiver joined mid-stream: what it wrote is authenticated but starts after offset 0. */
export const EXIT_PARTIAL = 11;
/** The command was stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

export const EXIT_CODE_BY_ERROR: Readonly<Record<ErrorCode, number>> = {
  E_INTERNAL: 1,
  E_ARG: 2,
  E_IO: 3,
  E_KEY: 4,
  E_BACKEND: 5,
  E_AUTH: 6,
  E_GAP: 7,
  E_VERIFY: 8,
  E_TIMEOUT: 9,
  E_PROTOCOL: 10,
  E_POOL: 12,
  E_CLOSED: 1,
};
