// One end-to-end transfer as separate processes: N receivers join first (the test waits until
// each says it is listening), then one sender sends a file or stdin. Receivers alternate
// between writing with -o and writing to stdout.

import { join } from 'node:path';
import { jsonSummary, randomGroup, spawnCli, type Finished } from './cli-process.js';

const TEST_RATE_DEFAULT = '80M';

export interface TransferOptions {
  dir: string;
  input: string;
  keyFile: string;
  receiverKeyFile?: string;
  fromStdin?: boolean;
  backend?: 'native' | 'wasm';
  suite?: string;
  receivers?: number;
  rate?: string;
  packetSize?: number;
  timeoutMs: number;
  extraReceiverArgs?: string[];
  extraSenderArgs?: string[];
}

export interface TransferResult {
  group: string;
  sender: Finished;
  senderSummary: Record<string, any>;
  receivers: Array<{ finished: Finished; output: string; summary: Record<string, any> }>;
}

export async function transfer(options: TransferOptions): Promise<TransferResult> {
  const group = randomGroup();
  const env = options.backend ? { SEALCAST_BACKEND: options.backend } : {};
  const receiverCount = options.receivers ?? 2;
  const receivers = [];
  for (let index = 0; index < receiverCount; index++) {
    const output = join(options.dir, `out-${index}.bin`);
    const viaStdout = index % 2 === 1;
    const args = ['recv', '--group', group, '--key-file', options.receiverKeyFile ?? options.keyFile, '--json', '--start-timeout', '30', '--idle-timeout', '5', ...(options.extraReceiverArgs ?? [])];
    if (!viaStdout) args.push('-o', output);
    const running = spawnCli(args, { env, stdout: viaStdout ? output : 'ignore', timeoutMs: options.timeoutMs });
    receivers.push({ running, output });
  }
  await Promise.all(receivers.map(({ running }) => running.waitForStderr(/listening on/)));
  const senderArgs = ['send', options.fromStdin ? '-' : options.input, '--group', group, '--key-file', options.keyFile, '--json'];
  if (options.suite) senderArgs.push('--suite', options.suite);
  // Tests run two files at once on two cores and there is no loss repair yet, so a starved
  // receiver would fail with E_GAP for reasons that are not the code under test: send at a rate
  // that leaves room, unless the test chooses one.
  senderArgs.push('--rate', options.rate ?? TEST_RATE_DEFAULT);
  if (options.packetSize) senderArgs.push('--packet-size', String(options.packetSize));
  senderArgs.push(...(options.extraSenderArgs ?? []));
  const sender = spawnCli(senderArgs, { env, stdinFile: options.fromStdin ? options.input : undefined, timeoutMs: options.timeoutMs });
  const senderFinished = await sender.finished;
  const finishedReceivers = await Promise.all(
    receivers.map(async ({ running, output }) => {
      const finished = await running.finished;
      return { finished, output, summary: safeSummary(finished.stderr) };
    }),
  );
  return { group, sender: senderFinished, senderSummary: safeSummary(senderFinished.stderr), receivers: finishedReceivers };
}

function safeSummary(stderr: string): Record<string, any> {
  try {
    return jsonSummary(stderr);
  } catch {
    return {};
  }
}
