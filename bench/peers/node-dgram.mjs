// The node:dgram ceiling row: node-dgram-blast.mjs sends the file's size in datagrams of the
// row's size, one send() each, and one receiver counts them. No crypto, no file I/O, no loss
// repair: what is left is the cost of moving datagrams through Node, which every sealcast
// process pays too. Throughput is what the receiver got over the time it was receiving.

import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnMeasured, waitFor } from './process.mjs';

const BLAST = join(dirname(fileURLToPath(import.meta.url)), 'node-dgram-blast.mjs');
const GROUP = '239.255.77.40';
const PORT = '47040';
const RECEIVER_READY_MS = 15_000;

export const nodeDgram = {
  tool: 'node:dgram',
  mode: 'raw UDP',
  showsCpu: true,

  missing() {
    return null;
  },

  unsupported({ receivers }) {
    if (receivers > 1) return 'ceiling row is measured with one receiver';
    return null;
  },

  async run({ sender, receivers, input, packetBytes, workDir, timeoutMs, path }) {
    const endpoint = receivers[0];
    const receiver = spawnMeasured({
      label: 'node:dgram recv',
      namespace: endpoint.namespace,
      cwd: workDir,
      timeoutMs,
      cpuFile: join(workDir, 'dgram-r.cpu'),
      captureStdout: true,
      argv: [process.execPath, BLAST, 'recv', GROUP, PORT, endpoint.address],
    });
    await waitFor(() => receiver.stderrSoFar().includes('listening'), RECEIVER_READY_MS);
    const senderChild = spawnMeasured({
      label: 'node:dgram send',
      namespace: sender.namespace,
      cwd: workDir,
      timeoutMs,
      cpuFile: join(workDir, 'dgram-s.cpu'),
      argv: [process.execPath, BLAST, 'send', GROUP, PORT, sender.address, path === 'loopback' ? '0' : '1', String(packetBytes), String(input.bytes)],
    });
    const senderResult = await senderChild.done;
    const receiverResult = await receiver.done;
    let summary = null;
    try {
      summary = JSON.parse(receiverResult.stdout.trim().split('\n').at(-1));
    } catch {
      summary = null;
    }
    const sentDatagrams = Math.ceil(input.bytes / packetBytes);
    const lossPercent = summary ? (100 * (sentDatagrams - summary.datagrams)) / sentDatagrams : null;
    return {
      sender: senderResult,
      receivers: [receiverResult],
      outputs: null,
      measured: summary && summary.seconds > 0 ? { bytes: summary.bytes, seconds: summary.seconds, cpuBytes: input.bytes } : null,
      notes: summary ? [`${sentDatagrams} datagrams, ${lossPercent.toFixed(0)} % lost`] : ['no receiver summary'],
    };
  },
};
