// udpcast (udp-sender / udp-receiver): reliable multicast, unencrypted, the plain-throughput peer.
// Flags follow /work/shared/PEERS.md: --nopointopoint (else a lone receiver gets unicast),
// explicit rendezvous and data groups (else control goes to broadcast), a 100 ms hello interval
// (else every session stalls 2 s) and a 4 MiB receive buffer (else receivers get dropped
// mid-transfer while the sender still exits 0, which only the digest check would catch).

import { join } from 'node:path';
import { haveCommand, spawnMeasured, waitFor } from './process.mjs';

const PORT_BASE = 9000;
const RENDEZVOUS_GROUP = '239.255.77.1';
const DATA_GROUP = '239.255.77.2';
// udpcast adds a 14-byte header to each data block; the block is sized so datagrams are
// packetBytes long, which is what every tool in one row gets.
const HEADER_BYTES = 14;
const RECEIVER_READY_MS = 10_000;

export const udpcast = {
  tool: 'udpcast',
  mode: 'plain',

  missing() {
    for (const command of ['udp-sender', 'udp-receiver']) {
      if (!haveCommand(command)) return `${command} not found (apt-get install udpcast)`;
    }
    return null;
  },

  unsupported({ path, receivers }) {
    // udp-receiver binds its unicast port exclusively, so one host holds one receiver.
    if (path === 'loopback' && receivers > 1) return 'udp-receiver binds its port exclusively: one receiver per host, so >1 receiver runs only on the bridge path';
    return null;
  },

  async run({ sender, receivers, inputPath, packetBytes, workDir, timeoutMs }) {
    const blockBytes = packetBytes - HEADER_BYTES;
    const timeoutSec = String(Math.max(10, Math.ceil(timeoutMs / 1000)));
    const receiverProcesses = receivers.map((endpoint, index) => {
      const outputPath = join(workDir, `udpcast-out-${index + 1}.bin`);
      const child = spawnMeasured({
        label: `udp-receiver ${index + 1}`,
        namespace: endpoint.namespace,
        cwd: workDir,
        timeoutMs,
        cpuFile: join(workDir, `udpcast-r${index + 1}.cpu`),
        argv: ['udp-receiver', '--interface', endpoint.device, '--portbase', String(PORT_BASE), '--nokbd',
          '--file', outputPath, '--rcvbuf', '4194304', '--start-timeout', timeoutSec, '--receive-timeout', '30',
          '--mcast-rdv-address', RENDEZVOUS_GROUP, '--exitWait', '0'],
      });
      return { child, outputPath };
    });
    for (const { child } of receiverProcesses) {
      await waitFor(() => child.stderrSoFar().includes('UDP receiver for'), RECEIVER_READY_MS);
    }
    const senderProcess = spawnMeasured({
      label: 'udp-sender',
      namespace: sender.namespace,
      cwd: workDir,
      timeoutMs,
      cpuFile: join(workDir, 'udpcast-s.cpu'),
      argv: ['udp-sender', '--interface', sender.device, '--portbase', String(PORT_BASE), '--nopointopoint',
        '--min-receivers', String(receivers.length), '--nokbd', '--start-timeout', timeoutSec,
        '--rexmit-hello-interval', '100', '--mcast-rdv-address', RENDEZVOUS_GROUP,
        '--mcast-data-address', DATA_GROUP, '-b', String(blockBytes), '--file', inputPath],
    });
    const senderResult = await senderProcess.done;
    const receiverResults = await Promise.all(receiverProcesses.map(({ child }) => child.done));
    return {
      startedAtMs: senderProcess.startedAtMs,
      sender: senderResult,
      receivers: receiverResults,
      outputs: receiverProcesses.map(({ outputPath }) => outputPath),
      // Done means every receiver has its whole file: the sender has collected all acknowledgements
      // and every receiver has exited (it exits right after, with --exitWait 0).
      endedAtMs: Math.max(senderResult.endedAtMs, ...receiverResults.map((result) => result.endedAtMs)),
      settings: { blockBytes },
      notes: [`-b ${blockBytes}`],
    };
  },
};
