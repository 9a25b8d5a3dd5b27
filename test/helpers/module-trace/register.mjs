// Loaded with `node --import` by tests that check which modules a command loads: registers
// hooks.mjs, which prints every file URL that is resolved to stderr, one `module-trace URL` line each.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
