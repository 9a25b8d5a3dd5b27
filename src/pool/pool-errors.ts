// The two errors every part of the pool may have to raise, built in one place so that a caller
// sees the same code and wording whichever path found the condition.

import { SealcastError } from '../errors.js';

export function closedError(): SealcastError {
  return new SealcastError('E_CLOSED', 'the pool is closed');
}

export function noWorkersError(): SealcastError {
  return new SealcastError('E_POOL', 'every pool worker has exited; close this pool and create a new one');
}
