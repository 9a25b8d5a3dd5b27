// Random packet contents for the differential and parity tests: payloads from 0 to 65 000
// bytes (weighted towards packet sizes), header-like AADs, random nonces.

import type { SuiteName } from '../../dist/crypto/backend.js';
import type { Random } from './random.js';
import { NONCE_BYTES, type SlotContent } from './slab.js';

export const PAYLOAD_BYTES_MAX = 65_000;
/** Sizes around block and tag boundaries, mixed into the random ones when asked. */
export const EDGE_PAYLOAD_BYTES = [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1399, 1400, 4096, 8191, PAYLOAD_BYTES_MAX];

function randomAadBytes(random: Random): number {
  // Mostly header-sized, sometimes empty, sometimes much larger than a header.
  const kind = random.int(0, 9);
  if (kind === 0) return 0;
  if (kind === 1) return random.int(65, 2048);
  return random.int(1, 64);
}

function randomPayloadBytes(random: Random): number {
  const kind = random.int(0, 3);
  if (kind === 0) return random.int(0, 64);
  if (kind === 1) return random.int(0, 1500);
  return random.int(0, PAYLOAD_BYTES_MAX);
}

export function randomSlots(random: Random, count: number, includeEdges: boolean): SlotContent[] {
  const slots: SlotContent[] = [];
  for (let index = 0; index < count; index++) {
    const payloadBytes = includeEdges && index < EDGE_PAYLOAD_BYTES.length ? EDGE_PAYLOAD_BYTES[index] : randomPayloadBytes(random);
    slots.push({ aad: random.bytes(randomAadBytes(random)), payload: random.bytes(payloadBytes), nonce: random.bytes(NONCE_BYTES) });
  }
  // Edge sizes should not always sit at the start of the batch.
  for (let index = slots.length - 1; index > 0; index--) {
    const other = random.int(0, index);
    [slots[index], slots[other]] = [slots[other], slots[index]];
  }
  return slots;
}

export function keyBytesFor(suite: SuiteName): number {
  return suite === 'aes-128-gcm' ? 16 : suite === 'aes-192-gcm' ? 24 : 32;
}
