import { defineConfig } from 'vitest/config';

// Tests exercise the compiled library in dist/ (built by `npm test` first), because worker
// threads and real CLI processes can only load JavaScript.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: end-to-end tests start several processes each, so run files two at a time.
    maxWorkers: 2,
  },
});
