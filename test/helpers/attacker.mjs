#!/usr/bin/env node
// A test attacker: joins the group on loopback, captures real packets of the transfer, then
// sends forged, bit-flipped, replayed, truncated and random datagrams into the group (TTL 0)
// while the transfer runs. Prints "attacker ready" once joined and a JSON line of what it sent.
//
//   node attacker.mjs --group 239.1.1.1:5000 [--each 40] [--after-packets 200] [--max-seconds 60]

import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { parseArgs, splitGroup } from './args.mjs';

const args = parseArgs(process.argv.slice(2));
const [address, port] = splitGroup(args.group);
const each = Number(args.each ?? 40);
const afterPackets = Number(args['after-packets'] ?? 200);
const maxSeconds = Number(args['max-seconds'] ?? 60);

const HEADER = 36;
const DATA = 1;
const sent = { forged: 0, offsetFlipped: 0, epochFlipped: 0, sessionFlipped: 0, replayed: 0, truncated: 0, random: 0 };
const captured = [];
let seen = 0;
let attacking = false;

const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
socket.bind({ port, address }, () => {
  socket.addMembership(address, '127.0.0.1');
  socket.setMulticastInterface('127.0.0.1');
  socket.setMulticastTTL(0);
  socket.setMulticastLoopback(true);
  process.stderr.write('attacker ready\n');
});

socket.on('message', (datagram) => {
  if (attacking) return; // From here on the group also carries our own datagrams.
  if (datagram.length < HEADER + 16 || datagram[0] !== 0x53 || datagram[1] !== 0x43 || datagram[3] !== DATA) return;
  seen++;
  if (captured.length < 64) captured.push(Buffer.from(datagram));
  if (seen >= afterPackets && captured.length > 0) {
    attacking = true;
    void attack();
  }
});

async function attack() {
  for (let round = 0; round < each; round++) {
    const real = captured[round % captured.length];
    // A forgery: a real header pushed to a future offset and sequence, with a random body and tag.
    const forged = Buffer.from(real);
    forged.writeUInt32BE(0x0010_0000 + round, 28);
    forged.writeUInt32BE(0x0010_0000 + round, 20);
    randomBytes(forged.length - HEADER).copy(forged, HEADER);
    await send(forged, 'forged');
    // Single bit flips of a real packet: in the stream offset (high word), the epoch, the session.
    await send(flipBit(real, 28 + randomInt(0, 3), 1 << randomInt(0, 8)), 'offsetFlipped');
    await send(flipBit(real, 16, 0x80), 'epochFlipped');
    await send(flipBit(real, 8 + randomInt(0, 8), 1 << randomInt(0, 8)), 'sessionFlipped');
    // A replay: the exact bytes of a packet the receiver already has.
    await send(Buffer.from(real), 'replayed');
    // A truncated real packet.
    await send(real.subarray(0, randomInt(1, real.length)), 'truncated');
    // Noise.
    await send(randomBytes(randomInt(1, 1500)), 'random');
  }
  process.stderr.write(`${JSON.stringify(sent)}\n`);
  socket.close();
  process.exit(0);
}

function flipBit(datagram, index, mask) {
  const copy = Buffer.from(datagram);
  copy[index] ^= mask;
  return copy;
}

function send(datagram, kind) {
  return new Promise((resolve) => {
    socket.send(datagram, port, address, () => {
      sent[kind]++;
      resolve();
    });
  });
}

setTimeout(() => {
  process.stderr.write(`${JSON.stringify({ ...sent, timedOut: true })}\n`);
  process.exit(2);
}, maxSeconds * 1000);
