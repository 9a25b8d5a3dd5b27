// Writes the receiver's plaintext to a Writable with backpressure. UDP cannot be paused, so when
// the target says "wait" (write() returned false) chunks queue here, up to a fixed bound; a
// target that stays slower than the stream past that bound is an error, never unbounded memory.

import type { Writable } from 'node:stream';
import { SealcastError } from '../errors.js';

export const DEFAULT_OUTPUT_QUEUE_BYTES_MAX = 64 * 1024 * 1024;

export class OutputWriter {
  readonly #target: Writable;
  readonly #queueBytesMax: number;
  readonly #queue: Uint8Array[] = [];
  /** For each queued chunk, what to call once the target has written it (or undefined). */
  readonly #queueDone: Array<(() => void) | undefined> = [];
  #queuedBytes = 0;
  /** Bytes handed to the target whose write callback has not fired yet. */
  #inFlightBytes = 0;
  #waitingForDrain = false;
  #overrun = false;
  #error: Error | null = null;
  #idleWaiters: Array<() => void> = [];

  constructor(target: Writable, queueBytesMax = DEFAULT_OUTPUT_QUEUE_BYTES_MAX) {
    this.#target = target;
    this.#queueBytesMax = queueBytesMax;
    target.on('error', this.#onError);
  }

  get error(): Error | null {
    return this.#error;
  }

  /** Bytes waiting for the target (not yet handed to it). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get queueBytesMax(): number {
    return this.#queueBytesMax;
  }

  /** True once the target failed or the queue bound was passed: waiting for it is pointless. */
  get broken(): boolean {
    return this.#error !== null || this.#overrun;
  }

  /**
   * Takes ownership of `chunk` until `onWritten` is called (after the target's write callback;
   * not called when the target failed). Throws E_IO when the target failed or the bound is exceeded.
   */
  write(chunk: Uint8Array, onWritten?: () => void): void {
    if (this.#error) throw new SealcastError('E_IO', `writing the output failed: ${this.#error.message}`, { cause: this.#error });
    this.#queue.push(chunk);
    this.#queueDone.push(onWritten);
    this.#queuedBytes += chunk.byteLength;
    this.#pump();
    if (this.#queuedBytes > this.#queueBytesMax) {
      this.#overrun = true;
      throw new SealcastError(
        'E_IO',
        `the output is not keeping up with the stream (${this.#queuedBytes} bytes waiting, bound ${this.#queueBytesMax}); write to a faster target or lower the sender's --rate`,
      );
    }
  }

  /** Resolves when everything written so far reached the target (its callbacks fired). */
  async idle(): Promise<void> {
    while (this.#queue.length > 0 || this.#inFlightBytes > 0) {
      if (this.#error) break;
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
    if (this.#error) throw new SealcastError('E_IO', `writing the output failed: ${this.#error.message}`, { cause: this.#error });
  }

  detach(): void {
    this.#target.off('error', this.#onError);
    this.#target.off('drain', this.#onDrain);
  }

  #pump(): void {
    while (!this.#waitingForDrain && this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      const onWritten = this.#queueDone.shift();
      this.#queuedBytes -= chunk.byteLength;
      this.#inFlightBytes += chunk.byteLength;
      const more = this.#target.write(chunk, (error) => {
        this.#inFlightBytes -= chunk.byteLength;
        if (error) this.#onError(error);
        else onWritten?.();
        this.#wakeIdle();
      });
      if (!more) {
        this.#waitingForDrain = true;
        this.#target.once('drain', this.#onDrain);
      }
    }
  }

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#pump();
    this.#wakeIdle();
  };

  readonly #onError = (error: Error): void => {
    this.#error ??= error;
    this.#wakeIdle();
  };

  #wakeIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
