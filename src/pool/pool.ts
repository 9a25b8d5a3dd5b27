// PLACEHOLDER until the pool helper lands.
import { availableParallelism } from 'node:os';

export function defaultPoolThreads(): number {
  return Math.max(1, availableParallelism());
}
