// Glue between a TCP socket and the frame decoder, shared by server and client: incoming bytes
// become validated-size frames, outgoing messages become frames. Decoding stops at the first bad
// frame; the owner decides how to close.

import type { Socket } from 'node:net';
import { FrameDecoder } from './frames.js';
import { encodeMessageFrame, type ClientMessage, type ServerMessage } from './messages.js';

export interface FrameHandlers {
  /** Called for each complete frame, in order. Returning false stops delivery of the rest. */
  onFrame(payload: Buffer): boolean;
  onFrameError(error: Error): void;
}

export function attachFrameDecoder(socket: Socket, frameBytesMax: number, handlers: FrameHandlers): FrameDecoder {
  const decoder = new FrameDecoder(frameBytesMax);
  socket.on('data', (chunk: Buffer) => {
    if (decoder.failed) return;
    const frames: Buffer[] = [];
    let failure: Error | null = null;
    try {
      decoder.pushInto(chunk, frames);
    } catch (error) {
      failure = error as Error;
    }
    // The whole frames before a bad header are delivered first; then the failure.
    for (const frame of frames) {
      if (!handlers.onFrame(frame)) return;
    }
    if (failure !== null) handlers.onFrameError(failure);
  });
  return decoder;
}

export function writeMessage(socket: Socket, message: ClientMessage | ServerMessage, frameBytesMax: number): boolean {
  if (socket.destroyed || !socket.writable) return false;
  return socket.write(encodeMessageFrame(message, frameBytesMax));
}
