// Parsers for the data-plane flags. Each turns one flag's text into a value or throws E_ARG
// naming the flag and what it accepts.

import { isWireSuiteName, WIRE_SUITES, type WireSuiteName } from '../crypto/backend.js';
import { SealcastError } from '../errors.js';
import { DATAGRAM_BYTES_MAX, DATAGRAM_BYTES_MIN_CONFIGURABLE } from '../packet/format.js';
import { requireGroup, requireInterface, type MulticastGroup } from '../pipeline/multicast.js';

const RATE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9 };
export const RATE_BITS_PER_SECOND_MIN = 10_000;
export const RATE_BITS_PER_SECOND_MAX = 100e9;

/** "400M", "1G", "1.5G", "800k", "2000000" (bits per second; an optional "bit/s", "bps" or "b" suffix). */
export function parseRate(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:bit\/s|bps|b)?\s*$/i.exec(text);
  if (match === null) {
    throw new SealcastError('E_ARG', `--rate must be bits per second like 400M, 1G, 1.5G or 800k, got "${text}"`);
  }
  const bits = Number(match[1]) * RATE_UNITS[match[2].toLowerCase()];
  if (!(bits >= RATE_BITS_PER_SECOND_MIN && bits <= RATE_BITS_PER_SECOND_MAX)) {
    throw new SealcastError('E_ARG', `--rate must be between 10k and 100G bits per second, got "${text}"`);
  }
  return Math.round(bits);
}

const BYTE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
export const REPAIR_WINDOW_BYTES_MAX = 4 * 1024 ** 3;

/** "64M", "512k", "1G", "0" (bytes, binary units; an optional "B" or "iB" suffix) for --repair-window. */
export function parseRepairWindow(text: string): number {
  const match = /^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  const bytes = match === null ? NaN : Number(match[1]) * BYTE_UNITS[match[2].toLowerCase()];
  if (!(bytes >= 0 && bytes <= REPAIR_WINDOW_BYTES_MAX)) {
    throw new SealcastError('E_ARG', `--repair-window must be a size like 64M, 512k or 0 (no repair), at most 4G, got "${text}"`);
  }
  return bytes;
}

/** "239.1.2.3:5000" -> { address, port }, checked to be an IPv4 multicast group. */
export function parseGroup(text: string): MulticastGroup {
  const match = /^(.+):(\d{1,5})$/.exec(text.trim());
  if (match === null) throw new SealcastError('E_ARG', `--group must be ADDR:PORT like 239.255.0.1:5000, got "${text}"`);
  const address = match[1].replace(/^\[(.*)\]$/, '$1');
  const group = { address, port: Number(match[2]) };
  requireGroup(group);
  return group;
}

export function parseInterface(text: string): string {
  requireInterface(text.trim());
  return text.trim();
}

export function parseTtl(text: string): number {
  return parseInteger(text, '--ttl', 0, 255);
}

export function parsePacketSize(text: string): number {
  return parseInteger(text, '--packet-size', DATAGRAM_BYTES_MIN_CONFIGURABLE, DATAGRAM_BYTES_MAX);
}

export function parseSuite(text: string): WireSuiteName {
  const name = text.trim().toLowerCase();
  if (!isWireSuiteName(name)) throw new SealcastError('E_ARG', `--suite must be one of ${WIRE_SUITES.join(', ')}, got "${text}"`);
  return name;
}

/** Seconds (decimals allowed) -> milliseconds; 0 is allowed where `allowZero`. */
export function parseSeconds(text: string, flag: string, allowZero: boolean): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0) || value > 86_400) {
    throw new SealcastError('E_ARG', `${flag} must be a number of seconds${allowZero ? ' (0 = wait forever)' : ' above 0'} up to 86400, got "${text}"`);
  }
  return Math.round(value * 1000);
}

export function parseInteger(text: string, flag: string, min: number, max: number): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new SealcastError('E_ARG', `${flag} must be an integer between ${min} and ${max}, got "${text}"`);
  const value = Number(text);
  if (value < min || value > max) throw new SealcastError('E_ARG', `${flag} must be an integer between ${min} and ${max}, got ${value}`);
  return value;
}

/** Formats bits per second the way --rate takes them. */
export function formatRate(bitsPerSecond: number): string {
  if (bitsPerSecond >= 1e9) return `${+(bitsPerSecond / 1e9).toFixed(3)}G`;
  if (bitsPerSecond >= 1e6) return `${+(bitsPerSecond / 1e6).toFixed(3)}M`;
  return `${+(bitsPerSecond / 1e3).toFixed(3)}k`;
}
