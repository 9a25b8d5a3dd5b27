// Random packet sequences for the receive path's in-order tests (gather and open): mostly
// in-order runs, with the irregular packets a receiver meets now and then.

import fc from 'fast-check';
import { PacketType } from '../../dist/packet/format.js';

export interface StreamPacket {
  type: number;
  streamOffset: number;
  payloadBytes: number;
  /** A packet that does not authenticate: it did not open (gather) or is forged (open). */
  broken: boolean;
}

export interface StreamArbitraryOptions {
  /** The common payload size, drawn about half the time. */
  typicalPayloadBytes: number;
  payloadBytesMax: number;
  packetsMax: number;
}

/**
 * A start offset and packets that continue the stream one after another, except about one in
 * nine: broken, END, starting one datagram later (a hole) or one byte earlier (a repeat).
 */
export function streamArbitrary(options: StreamArbitraryOptions): fc.Arbitrary<{ startOffset: number; packets: StreamPacket[] }> {
  return fc
    .tuple(
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.array(
        fc.record({
          payloadBytes: fc.oneof(fc.constant(options.typicalPayloadBytes), fc.integer({ min: 0, max: options.payloadBytesMax })),
          irregular: fc.oneof(
            { weight: 8, arbitrary: fc.constant('none' as const) },
            { weight: 1, arbitrary: fc.constantFrom('broken' as const, 'end' as const, 'skip' as const, 'repeat' as const) },
          ),
        }),
        { minLength: 0, maxLength: options.packetsMax },
      ),
    )
    .map(([startOffset, entries]) => {
      let offset = startOffset;
      const packets: StreamPacket[] = entries.map((entry) => {
        const packet: StreamPacket = { type: PacketType.DATA, streamOffset: offset, payloadBytes: entry.payloadBytes, broken: false };
        if (entry.irregular === 'broken') packet.broken = true;
        if (entry.irregular === 'end') packet.type = PacketType.END;
        if (entry.irregular === 'skip') packet.streamOffset = offset + 1400;
        if (entry.irregular === 'repeat') packet.streamOffset = Math.max(0, offset - 1);
        offset = packet.streamOffset + entry.payloadBytes;
        return packet;
      });
      return { startOffset, packets };
    });
}
