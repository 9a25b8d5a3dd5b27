#!/usr/bin/env node
// A test relay: joins group A on loopback and re-multicasts every datagram to group B (TTL 0),
// except what it is told to withhold, duplicate or reorder. It lets tests lose, repeat and
// reorder real packets without any hook in the sender.
//
//   node relay.mjs --from 239.1.1.1:5000 --to 239.1.1.2:5001 [--drop-data-seq 5,9]
//                  [--duplicate] [--swap-pairs] [--max-seconds 60]
// Prints "relay ready" on stderr once joined, and a JSON line of counts when it stops.

import dgram from 'node:dgram';
import { parseArgs, splitGroup } from './args.mjs';

const args = parseArgs(process.argv.slice(2));
const [fromAddress, fromPort] = splitGroup(args.from);
const [toAddress, toPort] = splitGroup(args.to);
const dropSequences = new Set((args['drop-data-seq'] ?? '').split(',').filter(Boolean).map(Number));
const duplicate = args.duplicate === true;
const swapPairs = args['swap-pairs'] === true;
const maxSeconds = Number(args['max-seconds'] ?? 60);

const DATA = 1;
const counts = { received: 0, forwarded: 0, dropped: 0, duplicated: 0, swapped: 0 };
let heldForSwap = null;

const output = dgram.createSocket({ type: 'udp4', reuseAddr: true });
const input = dgram.createSocket({ type: 'udp4', reuseAddr: true });

output.bind(0, '127.0.0.1', () => {
  output.setMulticastInterface('127.0.0.1');
  output.setMulticastTTL(0);
  output.setMulticastLoopback(true);
  input.bind({ port: fromPort, address: fromAddress }, () => {
    input.addMembership(fromAddress, '127.0.0.1');
    try {
      input.setRecvBufferSize(8 * 1024 * 1024);
    } catch {
      // A smaller buffer still works for the small transfers the tests relay.
    }
    process.stderr.write('relay ready\n');
  });
});

input.on('message', (datagram) => {
  counts.received++;
  const isData = datagram.length >= 36 && datagram[3] === DATA;
  if (isData && dropSequences.has(readSequence(datagram))) {
    counts.dropped++;
    return;
  }
  if (swapPairs && isData) {
    if (heldForSwap === null) {
      heldForSwap = datagram;
      return;
    }
    forward(datagram);
    forward(heldForSwap);
    heldForSwap = null;
    counts.swapped++;
    return;
  }
  if (heldForSwap !== null) {
    forward(heldForSwap);
    heldForSwap = null;
  }
  forward(datagram);
});

function forward(datagram) {
  output.send(datagram, toPort, toAddress);
  counts.forwarded++;
  if (duplicate) {
    output.send(datagram, toPort, toAddress);
    counts.duplicated++;
  }
}

function readSequence(datagram) {
  return datagram.readUInt32BE(20) * 2 ** 32 + datagram.readUInt32BE(24);
}

function stop() {
  process.stderr.write(`${JSON.stringify(counts)}\n`);
  input.close();
  output.close();
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, maxSeconds * 1000);
