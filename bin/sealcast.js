#!/usr/bin/env node
// The executable is a shell around run(argv): the library never exits the process itself.
// The first SIGINT/SIGTERM asks the running command to stop cleanly (a sender sends what it
// has and closes its control server; a receiver closes its output); a second one exits at once.
import { run } from '../dist/bundle/main.js';

const EXIT_IO = 3;

const controller = new AbortController();
for (const signalName of ['SIGINT', 'SIGTERM']) {
  process.on(signalName, () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error(`interrupted by ${signalName}`));
  });
}

// A reader that goes away (`sealcast doctor | head -1`) makes writes to stdout fail with EPIPE,
// and a full disk with ENOSPC. Without a listener Node would crash with a stack trace; with
// this one, the command's own output handling decides (recv stops with E_IO) and a text command
// stops printing. A failure other than EPIPE still makes the exit code say so.
let stdoutError = null;
process.stdout.on('error', (error) => {
  stdoutError ??= error;
});
process.stderr.on('error', () => {});

const exitCode = await run(process.argv.slice(2), { signal: controller.signal });
// Errors of writes still in flight arrive after them: let them land before judging.
await new Promise((resolve) => process.stdout.write('', () => setImmediate(resolve)));
if (exitCode === 0 && stdoutError !== null && stdoutError.code !== 'EPIPE') {
  process.stderr.write(`sealcast: E_IO: writing to stdout failed: ${stdoutError.message}\n`);
  process.exitCode = EXIT_IO;
} else {
  process.exitCode = exitCode;
}
