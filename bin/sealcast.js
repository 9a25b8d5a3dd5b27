#!/usr/bin/env node
// The executable is a shell around run(argv): the library never exits the process itself.
import { run } from '../dist/cli/main.js';

process.exitCode = await run(process.argv.slice(2));
