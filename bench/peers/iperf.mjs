// iperf2 raw UDP multicast: the ceiling of the path, with no reliability, encryption or file I/O.
// The client blasts at "-b 100G" for a few seconds; the figure is what the server received
// (datagrams received x datagram size / interval), so loss lowers it.

import { join } from 'node:path';
import { haveCommand, sleep, spawnMeasured, waitFor } from './process.mjs';

const GROUP = '239.255.77.20';
const RECEIVER_READY_MS = 10_000;
const REPORT_WAIT_MS = 3_000;

// "[  1] 0.0000-1.9965 sec   222 MBytes   933 Mbits/sec   0.000 ms 168382/334786 (50%)"
const SERVER_REPORT = /\]\s+([\d.]+)-([\d.]+) sec.*?\s(\d+)\/(\d+)\s+\(/;

export const iperf = {
  tool: 'iperf2',
  mode: 'raw UDP',

  missing() {
    if (!haveCommand('stdbuf')) return 'stdbuf (coreutils) not found';
    return haveCommand('iperf') ? null : 'iperf not found (apt-get install iperf)';
  },

  unsupported({ receivers, privateNamespace }) {
    // iperf joins and sends by the routing table, i.e. the default interface on a host.
    if (!privateNamespace) return 'not root: iperf uses the default interface, so it runs only inside a namespace';
    if (receivers > 1) return 'ceiling row is measured with one receiver';
    return null;
  },

  async run({ sender, receivers, packetBytes, workDir, timeoutMs, durationSec }) {
    const endpoint = receivers[0];
    const server = spawnMeasured({
      label: 'iperf -s',
      namespace: endpoint.namespace,
      cwd: workDir,
      timeoutMs,
      cpuFile: join(workDir, 'iperf-s.cpu'),
      captureStdout: true,
      // Line-buffered stdout: the report must survive the server being killed after the run.
      argv: ['stdbuf', '-oL', 'iperf', '-s', '-u', '-B', GROUP, '-l', String(packetBytes)],
    });
    // iperf prints its banner on stdout; stderr stays empty, so readiness is a fixed pause.
    await waitFor(() => false, 500);
    const client = spawnMeasured({
      label: 'iperf -c',
      namespace: sender.namespace,
      cwd: workDir,
      timeoutMs,
      cpuFile: join(workDir, 'iperf-c.cpu'),
      captureStdout: true,
      argv: ['iperf', '-c', GROUP, '-u', '-b', '100G', '-l', String(packetBytes), '-t', String(durationSec), '-T', '1'],
    });
    const clientResult = await client.done;
    await sleep(REPORT_WAIT_MS / 3);
    server.stop('SIGINT');
    const stopTimer = setTimeout(() => server.stop('SIGKILL'), REPORT_WAIT_MS);
    const serverResult = await server.done;
    clearTimeout(stopTimer);
    const match = SERVER_REPORT.exec(serverResult.stdout);
    let receivedBytes = null;
    let seconds = null;
    let lossPercent = null;
    if (match) {
      seconds = Number(match[2]) - Number(match[1]);
      const lost = Number(match[3]);
      const total = Number(match[4]);
      receivedBytes = (total - lost) * packetBytes;
      lossPercent = total > 0 ? (100 * lost) / total : null;
    }
    return {
      sender: clientResult,
      receivers: [{ ...serverResult, code: 0, expectedStop: true }],
      outputs: null,
      measured: match ? { bytes: receivedBytes, seconds } : null,
      notes: match ? [`${durationSec} s blast, ${lossPercent.toFixed(0)} % lost`] : ['no server report'],
    };
  },
};
