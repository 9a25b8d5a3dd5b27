// Length-prefixed frames on the control connection: a 4-byte big-endian payload length, then the
// payload. The decoder is a pure state machine over the bytes it is given: it never holds more
// than one frame header plus one frame body, and it fails for good on the first bad header, so a
// peer cannot make it buffer without bound or resynchronise it onto attacker-chosen bytes.

import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';

export const FRAME_HEADER_BYTES = 4;
/** Default and hard ceiling of a control frame's payload: messages are small JSON objects. */
export const FRAME_BYTES_MAX_DEFAULT = 64 * 1024;
export const FRAME_BYTES_MAX_LIMIT = 16 * 1024 * 1024;
/**
 * The smallest frame limit a server or client may be configured with: every message either side
 * sends fits in it (the largest is an error whose 500-character text is all JSON escapes), so
 * sending can never fail for size and throw out of a socket event handler.
 */
export const FRAME_BYTES_MAX_MIN = 4 * 1024;

/** Checks a configured frame limit for a server or client; RangeError naming the value otherwise. */
export function requireFrameBytesMax(value: number): number {
  if (!Number.isInteger(value) || value < FRAME_BYTES_MAX_MIN || value > FRAME_BYTES_MAX_LIMIT) {
    throw new RangeError(`frameBytesMax must be an integer between ${FRAME_BYTES_MAX_MIN} and ${FRAME_BYTES_MAX_LIMIT}, got ${value}`);
  }
  return value;
}

export function encodeFrame(payload: Uint8Array, frameBytesMax: number = FRAME_BYTES_MAX_DEFAULT): Buffer {
  requireUint8Array(payload, 'payload');
  if (payload.byteLength === 0) throw new RangeError('a frame payload must not be empty');
  if (payload.byteLength > frameBytesMax) {
    throw new RangeError(`frame payload of ${payload.byteLength} bytes exceeds the maximum of ${frameBytesMax} bytes`);
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frame.writeUInt32BE(payload.byteLength, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

type DecoderState = 'header' | 'body' | 'failed';

/**
 * Turns a byte stream into frames. `push` returns the frames completed by a chunk; it throws
 * SealcastError('E_PROTOCOL') for an empty or oversized frame, after which the decoder stays
 * failed and the connection must be closed.
 */
export class FrameDecoder {
  readonly frameBytesMax: number;
  private state: DecoderState = 'header';
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  private body: Buffer | null = null;
  private bodyFilled = 0;
  private failure: string | null = null;

  constructor(frameBytesMax: number = FRAME_BYTES_MAX_DEFAULT) {
    if (!Number.isInteger(frameBytesMax) || frameBytesMax < 1 || frameBytesMax > FRAME_BYTES_MAX_LIMIT) {
      throw new RangeError(`frameBytesMax must be an integer between 1 and ${FRAME_BYTES_MAX_LIMIT}, got ${frameBytesMax}`);
    }
    this.frameBytesMax = frameBytesMax;
  }

  /** Bytes held for an incomplete frame; never more than the header plus frameBytesMax. */
  get bufferedBytes(): number {
    return this.headerFilled + this.bodyFilled;
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  /** True when no partial frame is pending, i.e. the stream may end here cleanly. */
  get idle(): boolean {
    return this.state === 'header' && this.headerFilled === 0;
  }

  /**
   * Returns the frames completed by `chunk`. A frame that lies whole inside the chunk is a view of
   * it; the caller must not change the chunk while it still uses such a frame.
   */
  push(chunk: Uint8Array): Buffer[] {
    const frames: Buffer[] = [];
    this.pushInto(chunk, frames);
    return frames;
  }

  /**
   * As push, but appends the frames to `frames`; when it throws, `frames` still holds every whole
   * frame that came before the bad header, so the caller can act on those first.
   */
  pushInto(chunk: Uint8Array, frames: Buffer[]): void {
    requireUint8Array(chunk, 'chunk');
    if (this.state === 'failed') throw new SealcastError('E_PROTOCOL', `frame decoder already failed: ${this.failure}`);
    let position = 0;
    while (position < chunk.byteLength) {
      if (this.state === 'header' && this.headerFilled === 0 && chunk.byteLength - position >= FRAME_HEADER_BYTES) {
        // A frame that lies whole inside the chunk (the usual case for small control messages) is
        // handed out as a view of the chunk, without copying it.
        const length = ((chunk[position] << 24) | (chunk[position + 1] << 16) | (chunk[position + 2] << 8) | chunk[position + 3]) >>> 0;
        if (length === 0) this.fail('empty frame (length 0)');
        if (length > this.frameBytesMax) this.fail(`frame of ${length} bytes exceeds the maximum of ${this.frameBytesMax} bytes`);
        if (chunk.byteLength - position - FRAME_HEADER_BYTES >= length) {
          frames.push(Buffer.from(chunk.buffer, chunk.byteOffset + position + FRAME_HEADER_BYTES, length));
          position += FRAME_HEADER_BYTES + length;
          continue;
        }
      }
      if (this.state === 'header') {
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFilled, chunk.byteLength - position);
        this.header.set(chunk.subarray(position, position + take), this.headerFilled);
        this.headerFilled += take;
        position += take;
        if (this.headerFilled < FRAME_HEADER_BYTES) break;
        const length = this.header.readUInt32BE(0);
        this.headerFilled = 0;
        if (length === 0) this.fail('empty frame (length 0)');
        if (length > this.frameBytesMax) this.fail(`frame of ${length} bytes exceeds the maximum of ${this.frameBytesMax} bytes`);
        this.body = Buffer.allocUnsafe(length);
        this.bodyFilled = 0;
        this.state = 'body';
      } else {
        const body = this.body as Buffer;
        const take = Math.min(body.byteLength - this.bodyFilled, chunk.byteLength - position);
        body.set(chunk.subarray(position, position + take), this.bodyFilled);
        this.bodyFilled += take;
        position += take;
        if (this.bodyFilled === body.byteLength) {
          frames.push(body);
          this.body = null;
          this.bodyFilled = 0;
          this.state = 'header';
        }
      }
    }
  }

  private fail(reason: string): never {
    this.state = 'failed';
    this.failure = reason;
    this.body = null;
    this.bodyFilled = 0;
    throw new SealcastError('E_PROTOCOL', reason);
  }
}
