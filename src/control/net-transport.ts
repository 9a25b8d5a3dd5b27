// The node:net control transport: a Node socket per connection and the JS frame decoder. It
// runs everywhere; on Linux the native transport (native-transport.ts) does the same work with
// less per-connection cost.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SealcastError } from '../errors.js';
import { attachFrameDecoder } from './framed-socket.js';
import { encodeTextFrame } from './messages.js';
import { CLOSE_FLUSH_MS, type ControlLink, type ControlTransport, type LinkAcceptor, type LinkEvents, type TransportOptions } from './link.js';

function endSoon(socket: Socket): void {
  const timer = setTimeout(() => socket.destroy(), CLOSE_FLUSH_MS);
  timer.unref();
  socket.end(() => {
    clearTimeout(timer);
    socket.destroy();
  });
}

class NetLink implements ControlLink {
  private remoteText: string | null = null;
  events: LinkEvents | null = null;
  private finished = false;

  constructor(
    readonly socket: Socket,
    private readonly pendingBytesMax: number,
    private readonly frameBytesMax: number,
  ) {}

  get remote(): string {
    if (this.remoteText === null) {
      // A socket whose handle is gone no longer knows its peer; say so rather than "undefined".
      if (this.socket.remoteAddress === undefined) return 'a disconnected peer';
      this.remoteText = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
    }
    return this.remoteText;
  }

  send(frame: Buffer): void {
    if (this.finished || this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(frame);
    if (this.socket.writableLength > this.pendingBytesMax) {
      const pending = this.socket.writableLength;
      this.lost(`client is not reading (${pending} bytes pending)`, 'warn');
    }
  }

  sendText(text: string): void {
    this.send(encodeTextFrame(text, this.frameBytesMax));
  }

  keepAlive(): void {
    this.socket.setKeepAlive(true, 30_000);
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.socket.destroyed) endSoon(this.socket);
  }

  destroy(): void {
    this.finished = true;
    this.socket.destroy();
  }

  /** The link failed on its own: tell the owner once, then close. */
  lost(text: string, level: 'info' | 'warn'): void {
    if (this.finished) return;
    this.destroy();
    this.events?.onLost(text, level);
  }
}

class NetTransport implements ControlTransport {
  readonly name = 'net' as const;
  address = { host: '', port: 0 };
  private readonly server: Server;
  private links = 0;

  constructor(
    private readonly options: TransportOptions,
    private readonly accept: LinkAcceptor,
  ) {
    this.server = createServer({ noDelay: true }, (socket) => this.onConnection(socket));
  }

  async listen(): Promise<void> {
    const { host, port, backlog } = this.options;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        reject(new SealcastError('E_IO', `cannot listen on ${host}:${port}: ${error.message}`, { cause: error }));
      };
      this.server.once('error', onError);
      this.server.listen({ host, port, backlog }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.server.on('error', (error) => this.options.warn(`control server: ${error.message}`));
    const info = this.server.address() as AddressInfo;
    this.address = { host: info.address, port: info.port };
  }

  private onConnection(socket: Socket): void {
    socket.on('error', () => {});
    if (this.links >= this.options.linksMax) {
      socket.destroy();
      return;
    }
    this.links++;
    socket.once('close', () => this.links--);
    const link = new NetLink(socket, this.options.pendingBytesMax, this.options.frameBytesMax);
    const events = this.accept(link);
    if (events === null) return;
    link.events = events;
    attachFrameDecoder(socket, this.options.frameBytesMax, {
      onFrame: (payload) => events.onFrame(payload),
      onFrameError: (error) => events.onFrameError(error.message),
    });
    socket.on('error', (error) => link.lost(`socket error: ${error.message}`, 'info'));
    socket.on('end', () => link.lost('peer closed the connection', 'info'));
    socket.on('close', () => link.lost('connection closed', 'info'));
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function startNetTransport(options: TransportOptions, accept: LinkAcceptor): Promise<ControlTransport> {
  const transport = new NetTransport(options, accept);
  await transport.listen();
  return transport;
}
