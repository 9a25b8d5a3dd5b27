// Multicast sockets with safe defaults: the multicast interface is loopback unless the user names
// another one, and on loopback the TTL is 0 so no datagram can be routed off the machine.

import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { SealcastError } from '../errors.js';

export interface MulticastGroup {
  address: string;
  port: number;
}

export const DEFAULT_INTERFACE = '127.0.0.1';
/** What sealcast asks the kernel for; Linux caps it at net.core.rmem_max / wmem_max. */
export const SOCKET_BUFFER_BYTES_WANTED = 8 * 1024 * 1024;

export function isMulticastIPv4(address: string): boolean {
  if (!isIPv4(address)) return false;
  const first = Number(address.split('.')[0]);
  return first >= 224 && first <= 239;
}

export function isLoopbackIPv4(address: string): boolean {
  return isIPv4(address) && address.startsWith('127.');
}

/** Checks that a group is an IPv4 multicast address and a usable port; E_ARG otherwise. */
export function requireGroup(group: MulticastGroup): void {
  if (isIPv6(group.address)) {
    throw new SealcastError('E_ARG', `IPv6 groups are not supported yet (got ${group.address}); use an IPv4 group in 224.0.0.0/4`);
  }
  if (!isMulticastIPv4(group.address)) {
    throw new SealcastError('E_ARG', `group ${group.address} is not an IPv4 multicast address (224.0.0.0 – 239.255.255.255)`);
  }
  if (!Number.isInteger(group.port) || group.port < 1 || group.port > 65535) {
    throw new SealcastError('E_ARG', `port must be between 1 and 65535, got ${group.port}`);
  }
}

export function requireInterface(address: string): void {
  if (!isIPv4(address)) throw new SealcastError('E_ARG', `interface must be the IPv4 address of a local interface, got "${address}"`);
}

/** TTL 0 on loopback keeps datagrams on this host; a real interface defaults to 1 (this subnet only). */
export function defaultTtl(interfaceAddress: string): number {
  return isLoopbackIPv4(interfaceAddress) ? 0 : 1;
}

/** The kernel's cap on socket receive buffers, or undefined where /proc does not say. */
export function readRmemMax(): number | undefined {
  return readProcNumber('/proc/sys/net/core/rmem_max');
}

export function readWmemMax(): number | undefined {
  return readProcNumber('/proc/sys/net/core/wmem_max');
}

function readProcNumber(path: string): number | undefined {
  try {
    const value = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

export interface SenderSocketOptions {
  group: MulticastGroup;
  interfaceAddress: string;
  ttl: number;
  sendBufferBytes?: number;
}

/** A UDP socket connected to the group, so each send skips the address lookup. */
export async function openSenderSocket(options: SenderSocketOptions): Promise<dgram.Socket> {
  requireGroup(options.group);
  requireInterface(options.interfaceAddress);
  if (!Number.isInteger(options.ttl) || options.ttl < 0 || options.ttl > 255) {
    throw new SealcastError('E_ARG', `ttl must be between 0 and 255, got ${options.ttl}`);
  }
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, options.interfaceAddress, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.setMulticastInterface(options.interfaceAddress);
    socket.setMulticastTTL(options.ttl);
    socket.setMulticastLoopback(true);
    setBufferQuietly(() => socket.setSendBufferSize(Math.min(options.sendBufferBytes ?? SOCKET_BUFFER_BYTES_WANTED, readWmemMax() ?? SOCKET_BUFFER_BYTES_WANTED)));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(options.group.port, options.group.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    socket.close();
    throw new SealcastError('E_IO', `cannot open a multicast socket on ${options.interfaceAddress} to ${options.group.address}:${options.group.port}: ${(error as Error).message}`, { cause: error });
  }
  return socket;
}

export interface ReceiverSocketOptions {
  group: MulticastGroup;
  interfaceAddress: string;
  recvBufferBytes?: number;
}

/**
 * A socket bound to the group's port (shared with other receivers on this host through
 * SO_REUSEADDR) and joined to the group on the interface. On Linux it binds to the group address
 * itself, so datagrams sent to other groups on the same port are not delivered to it.
 */
export async function openReceiverSocket(options: ReceiverSocketOptions): Promise<{ socket: dgram.Socket; recvBufferBytes: number }> {
  requireGroup(options.group);
  requireInterface(options.interfaceAddress);
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      const address = process.platform === 'linux' ? options.group.address : '0.0.0.0';
      socket.bind({ port: options.group.port, address, exclusive: false }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.addMembership(options.group.address, options.interfaceAddress);
  } catch (error) {
    socket.close();
    throw new SealcastError('E_IO', `cannot join ${options.group.address}:${options.group.port} on ${options.interfaceAddress}: ${(error as Error).message}`, { cause: error });
  }
  const wanted = options.recvBufferBytes ?? SOCKET_BUFFER_BYTES_WANTED;
  setBufferQuietly(() => socket.setRecvBufferSize(Math.min(wanted, readRmemMax() ?? wanted)));
  let recvBufferBytes = 0;
  try {
    recvBufferBytes = socket.getRecvBufferSize();
  } catch {
    recvBufferBytes = 0;
  }
  return { socket, recvBufferBytes };
}

function setBufferQuietly(set: () => void): void {
  try {
    set();
  } catch {
    // A smaller buffer than asked for still works; the receiver reports its actual size.
  }
}
