// Where the control plane's server and client report what happens to them. A module of its own
// so that the client (every receiver) does not load the server, its registry and SQLite just to
// have a logger that says nothing.

export interface ControlLogger {
  info(message: string): void;
  warn(message: string): void;
}

export const silentLogger: ControlLogger = { info: () => {}, warn: () => {} };
