// `npm run bench`: every benchmark in turn, each as its own process so one's load or failure
// cannot skew or stop the next. Extra arguments go to the pipeline benchmark (e.g. --quick).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const passThrough = process.argv.slice(2);
const suites = [
  { name: 'crypto', script: 'crypto.mjs', args: [] },
  { name: 'control', script: 'control.mjs', args: [] },
  { name: 'pipeline', script: 'pipeline.mjs', args: passThrough },
];

const failed = [];
for (const suite of suites) {
  console.log(`\n=== bench:${suite.name} ===`);
  const result = spawnSync(process.execPath, [benchDir + suite.script, ...suite.args], {
    stdio: 'inherit',
    // The pipeline benchmark bounds itself (--max-minutes); this is a last resort.
    timeout: 2 * 60 * 60 * 1000,
  });
  if (result.status !== 0) failed.push(`${suite.name} (exit ${result.status ?? result.signal})`);
}
if (failed.length > 0) {
  console.log(`\nbenchmarks that failed: ${failed.join(', ')}; results are in bench/results/`);
  process.exitCode = 1;
} else {
  console.log('\nall benchmarks finished; results are in bench/results/');
}
