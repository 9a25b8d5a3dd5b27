// What the control server needs of a transport: a listener that hands over each new connection
// as a link, and links that carry whole frames. Two transports implement it: node:net
// (net-transport.ts, everywhere) and the native epoll listener (native-transport.ts, Linux),
// which accepts, reads, frames and writes for all connections in batches.

export type LinkLevel = 'info' | 'warn';

/** 'auto' picks native where it can be used (Linux, addon built, numeric address), else net. */
export type ControlTransportMode = 'auto' | 'native' | 'net';
export const CONTROL_TRANSPORT_MODES: readonly ControlTransportMode[] = ['auto', 'native', 'net'];

/** How the owner of a link hears from it. */
export interface LinkEvents {
  /** One whole frame's payload, valid only during the call. False: deliver nothing more. */
  onFrame(payload: Buffer): boolean;
  /** A bad frame header (empty or oversized): input has stopped; the owner answers and ends. */
  onFrameError(message: string): void;
  /** The link ended without the owner asking (peer end, socket error, not reading): it is gone. */
  onLost(text: string, level: LinkLevel): void;
}

export interface ControlLink {
  /** "address:port" of the peer, or "a disconnected peer" once that is no longer known. */
  readonly remote: string;
  /** Sends one encoded frame (header included). Ignored once the link is ended or destroyed. */
  send(frame: Buffer): void;
  /**
   * Sends one frame whose payload is `text` in UTF-8, framed by the transport (the native one
   * writes it straight into its send batch). RangeError when it exceeds the frame limit.
   */
  sendText(text: string): void;
  /** Keeps the idle connection watched by TCP keepalive (a registered client stays connected). */
  keepAlive(): void;
  /** Sends what is queued, ends our side, and closes within CLOSE_FLUSH_MS at the latest. */
  end(): void;
  /** Closes at once; what the kernel already holds is still delivered. */
  destroy(): void;
}

/** Decides about a new link: its event handlers, or null when it was refused (and ended). */
export type LinkAcceptor = (link: ControlLink) => LinkEvents | null;

export interface ControlTransport {
  readonly name: 'net' | 'native';
  /** Where it listens (the real port when 0 was asked for). */
  readonly address: { host: string; port: number };
  /** Stops accepting and closes every link. */
  close(): Promise<void>;
}

export interface TransportOptions {
  host: string;
  port: number;
  backlog: number;
  /** Links at once, those still draining a refusal included; past it a connection is closed unheard. */
  linksMax: number;
  frameBytesMax: number;
  /** A peer whose unread output grows past this is not reading: it is disconnected. */
  pendingBytesMax: number;
  /**
   * Native only: after a wake-up that found work, wait this long (ms, 0 to 100) before looking
   * again, so that under load one wake-up carries many connections' messages.
   */
  coalesceMs: number;
  /** Told about failures of the listener itself (not of single links). */
  warn(message: string): void;
}

/**
 * A closing connection is destroyed as soon as its last message is handed to the kernel (which
 * still delivers it), or after this long if the peer does not let it drain, so that closed
 * connections never pile up as open descriptors.
 */
export const CLOSE_FLUSH_MS = 1000;
