#!/usr/bin/env node
// The node:dgram ceiling: how fast Node itself moves multicast datagrams, one send() and one
// 'message' event per datagram, with no crypto and no files. Any sealcast built on node:dgram
// pays at least this per datagram, so the row bounds its throughput and CPU from below.
//
//   node node-dgram-blast.mjs send GROUP PORT INTERFACE TTL DATAGRAM_BYTES TOTAL_BYTES
//   node node-dgram-blast.mjs recv GROUP PORT INTERFACE
// The receiver prints "listening" on stderr once joined and a JSON summary on stdout at the end.

import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';

const IN_FLIGHT_MAX = 64;
const END_MARKERS = 20;
const IDLE_EXIT_MS = 2000;
const RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024;

const [role, group, portText, interfaceAddress, ...rest] = process.argv.slice(2);
const port = Number(portText);

if (role === 'send') {
  const [ttlText, sizeText, totalText] = rest;
  const datagramBytes = Number(sizeText);
  const count = Math.ceil(Number(totalText) / datagramBytes);
  const socket = dgram.createSocket('udp4');
  await new Promise((resolve) => socket.bind(0, interfaceAddress, resolve));
  socket.setMulticastInterface(interfaceAddress);
  socket.setMulticastTTL(Number(ttlText));
  const payload = Buffer.alloc(datagramBytes, 0x5a);
  let sent = 0;
  let inFlight = 0;
  await new Promise((resolve, reject) => {
    const pump = () => {
      while (sent < count && inFlight < IN_FLIGHT_MAX) {
        inFlight += 1;
        sent += 1;
        socket.send(payload, port, group, (error) => {
          inFlight -= 1;
          if (error) reject(error);
          else if (sent === count && inFlight === 0) resolve();
          else if (inFlight <= IN_FLIGHT_MAX / 2) pump();
        });
      }
    };
    pump();
  });
  // Short datagrams tell the receivers that the blast is over.
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (let index = 0; index < END_MARKERS; index += 1) {
    await new Promise((resolve) => socket.send(Buffer.from([0]), port, group, resolve));
  }
  socket.close();
} else if (role === 'recv') {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: RECEIVE_BUFFER_BYTES });
  await new Promise((resolve) => socket.bind(port, resolve));
  socket.addMembership(group, interfaceAddress);
  process.stderr.write('listening\n');
  let datagrams = 0;
  let bytes = 0;
  let firstMs = null;
  let lastMs = null;
  let idleTimer = null;
  const finish = () => {
    process.stdout.write(`${JSON.stringify({ datagrams, bytes, seconds: firstMs === null ? 0 : (lastMs - firstMs) / 1000 })}\n`);
    socket.close();
  };
  socket.on('message', (message) => {
    if (message.length === 1) {
      if (firstMs !== null) {
        clearTimeout(idleTimer);
        finish();
      }
      return;
    }
    const now = performance.now();
    firstMs ??= now;
    lastMs = now;
    datagrams += 1;
    bytes += message.length;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(finish, IDLE_EXIT_MS);
  });
} else {
  process.stderr.write('usage: node-dgram-blast.mjs send|recv GROUP PORT INTERFACE ...\n');
  process.exitCode = 2;
}
