#!/usr/bin/env node
// The executable is a shell around run(argv): the library never exits the process itself.
// The first SIGINT/SIGTERM asks the running command to stop cleanly (a sender sends what it
// has and closes its control server; a receiver closes its output); a second one exits at once.
import { run } from '../dist/cli/main.js';

const controller = new AbortController();
for (const signalName of ['SIGINT', 'SIGTERM']) {
  process.on(signalName, () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new Error(`interrupted by ${signalName}`));
  });
}
process.exitCode = await run(process.argv.slice(2), { signal: controller.signal });
