// The subscriber registry: an embedded SQLite database (better-sqlite3) in WAL mode with
// synchronous=FULL, so that a subscriber that was reported as added survives a crash or power
// loss, and every change is one transaction, so a killed process leaves the file consistent.
// The file holds pre-shared keys: it is created with mode 0600 and refused when others can read
// it. secure_delete overwrites the pages of removed keys instead of leaving them in free space.

import { closeSync, constants as fsConstants, fstatSync, openSync, type Stats } from 'node:fs';
import Database from 'better-sqlite3';
import { SealcastError } from '../errors.js';
import { requireUint8Array } from '../crypto/validate.js';
import { KEY_KINDS, isValidClientId, type KeyKind } from '../control/messages.js';

export const REGISTRY_SCHEMA_VERSION = 1;
export const PSK_BYTES = 32;
export const BUSY_TIMEOUT_MS_DEFAULT = 10_000;

const SCHEMA_V1 = `
CREATE TABLE schema_version (
  version INTEGER NOT NULL
) STRICT;

-- One row per subscriber. key_kind says which per-client key the subscriber registers with;
-- the columns of the other kinds stay NULL until those kinds are served.
CREATE TABLE subscribers (
  id TEXT PRIMARY KEY,
  key_kind TEXT NOT NULL CHECK (key_kind IN (${KEY_KINDS.map((kind) => `'${kind}'`).join(', ')})),
  psk BLOB CHECK (psk IS NULL OR length(psk) = ${PSK_BYTES}),
  public_key BLOB,
  certificate BLOB,
  hsm_key_label TEXT,
  created_at_ms INTEGER NOT NULL,
  removed_at_ms INTEGER,
  CHECK (key_kind <> 'psk' OR psk IS NOT NULL OR removed_at_ms IS NOT NULL)
) STRICT;

-- Subscription intervals and the bytes sent while a subscriber held a key (charging).
CREATE TABLE usage_records (
  id INTEGER PRIMARY KEY,
  subscriber_id TEXT NOT NULL,
  session_id BLOB NOT NULL,
  epoch INTEGER,
  started_at_ms INTEGER NOT NULL,
  ended_at_ms INTEGER,
  bytes_sent INTEGER NOT NULL DEFAULT 0,
  receipt BLOB,
  receipt_verified INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX usage_records_by_subscriber ON usage_records (subscriber_id, started_at_ms);

-- Withdrawals and removals: who left, when, and the deletion proof when there was one.
CREATE TABLE withdrawals (
  id INTEGER PRIMARY KEY,
  subscriber_id TEXT NOT NULL,
  session_id BLOB,
  epoch INTEGER,
  kind TEXT NOT NULL CHECK (kind IN ('withdrawal', 'removal', 'revocation', 'expiry')),
  requested_at_ms INTEGER NOT NULL,
  proof BLOB,
  proof_verified INTEGER NOT NULL DEFAULT 0,
  recorded_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX withdrawals_by_subscriber ON withdrawals (subscriber_id, recorded_at_ms);
`;

export type SubscriberStatus = 'active' | 'removed';

export interface SubscriberRecord {
  id: string;
  keyKind: KeyKind;
  status: SubscriberStatus;
  createdAtMs: number;
  removedAtMs: number | null;
}

/** What the control server needs to check a registration. The caller zeroes `psk` when done. */
export type RegistrationLookup =
  | { status: 'unknown' }
  | { status: 'removed'; keyKind: KeyKind }
  | { status: 'active'; keyKind: KeyKind; psk: Buffer | null };

export interface RegistryOptions {
  /** How long a writer waits for another process's lock before failing (E_IO). */
  busyTimeoutMs?: number;
  readonly?: boolean;
}

interface SubscriberRow {
  id: string;
  key_kind: KeyKind;
  created_at_ms: number;
  removed_at_ms: number | null;
}

function toRecord(row: SubscriberRow): SubscriberRecord {
  return {
    id: row.id,
    keyKind: row.key_kind,
    status: row.removed_at_ms === null ? 'active' : 'removed',
    createdAtMs: row.created_at_ms,
    removedAtMs: row.removed_at_ms,
  };
}

function requireSubscriberId(id: unknown): asserts id is string {
  if (!isValidClientId(id)) {
    throw new SealcastError('E_ARG', `subscriber name must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got ${JSON.stringify(String(id).slice(0, 80))}`);
  }
}

/** Creates the file with mode 0600 if it is missing, and refuses one that others can read. */
function prepareDatabaseFile(path: string, readonly: boolean): void {
  if (!readonly) {
    try {
      closeSync(openSync(path, 'wx', 0o600));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new SealcastError('E_IO', `cannot create the registry ${path}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
  // SQLite opens the file by its path, so the check is made on a descriptor of that path, opened
  // without following a symbolic link and without blocking on a FIFO: what is checked is the
  // regular file itself, not whatever a link points to.
  let stats: Stats;
  let descriptor: number | undefined;
  try {
    descriptor = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    stats = fstatSync(descriptor);
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code === 'ELOOP' ? 'it is a symbolic link' : (error as Error).message;
    throw new SealcastError('E_IO', `cannot open the registry ${path}: ${why}`, { cause: error });
  } finally {
    if (descriptor !== undefined) closeSync(descriptor);
  }
  if (!stats.isFile()) throw new SealcastError('E_IO', `cannot open the registry ${path}: it is not a regular file`);
  const mode = stats.mode;
  if ((mode & 0o077) !== 0) {
    throw new SealcastError(
      'E_KEY',
      `the registry ${path} holds pre-shared keys but has mode ${(mode & 0o777).toString(8)}; restrict it with: chmod 600 ${path}`,
    );
  }
}

export class Registry {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly statements: {
    insert: Database.Statement;
    readd: Database.Statement;
    get: Database.Statement;
    list: Database.Statement;
    remove: Database.Statement;
    recordRemoval: Database.Statement;
    lookup: Database.Statement;
    status: Database.Statement;
  };
  private lookupMany: ((ids: readonly string[]) => RegistrationLookup[]) | null = null;
  private closed = false;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
    this.statements = {
      insert: db.prepare('INSERT INTO subscribers (id, key_kind, psk, created_at_ms) VALUES (?, ?, ?, ?)'),
      readd: db.prepare(
        'UPDATE subscribers SET key_kind = ?, psk = ?, created_at_ms = ?, removed_at_ms = NULL WHERE id = ? AND removed_at_ms IS NOT NULL',
      ),
      get: db.prepare('SELECT id, key_kind, created_at_ms, removed_at_ms FROM subscribers WHERE id = ?'),
      list: db.prepare('SELECT id, key_kind, created_at_ms, removed_at_ms FROM subscribers ORDER BY id'),
      remove: db.prepare(
        'UPDATE subscribers SET removed_at_ms = ?, psk = NULL, public_key = NULL, certificate = NULL, hsm_key_label = NULL WHERE id = ? AND removed_at_ms IS NULL',
      ),
      recordRemoval: db.prepare(
        "INSERT INTO withdrawals (subscriber_id, kind, requested_at_ms, recorded_at_ms) VALUES (?, 'removal', ?, ?)",
      ),
      lookup: db.prepare('SELECT key_kind, psk, removed_at_ms FROM subscribers WHERE id = ?'),
      status: db.prepare('SELECT removed_at_ms FROM subscribers WHERE id = ?'),
    };
  }

  /** Opens (and on first use creates) the registry at `path`; `:memory:` is allowed for tests. */
  static open(path: string, options: RegistryOptions = {}): Registry {
    if (typeof path !== 'string' || path.length === 0) throw new TypeError(`registry path must be a non-empty string, got ${String(path)}`);
    const busyTimeoutMs = options.busyTimeoutMs ?? BUSY_TIMEOUT_MS_DEFAULT;
    const readonly = options.readonly ?? false;
    if (path !== ':memory:') prepareDatabaseFile(path, readonly);
    let db: Database.Database;
    try {
      db = new Database(path, { readonly, fileMustExist: readonly, timeout: busyTimeoutMs });
    } catch (error) {
      throw new SealcastError('E_IO', `cannot open the registry ${path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.pragma('secure_delete = ON');
      }
      db.pragma('foreign_keys = ON');
      migrate(db, path, readonly);
      return new Registry(path, db);
    } catch (error) {
      db.close();
      if (error instanceof SealcastError) throw error;
      throw new SealcastError('E_IO', `cannot prepare the registry ${path}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Adds a subscriber with a pre-shared key. A removed subscriber of the same name is
   * re-activated with the new key; an active one is refused (E_ARG). The key is copied into the
   * database; the caller still owns and zeroes its buffer.
   */
  addPskSubscriber(id: string, psk: Uint8Array, nowMs: number = Date.now()): SubscriberRecord {
    this.requireOpen();
    requireSubscriberId(id);
    requireUint8Array(psk, 'psk');
    if (psk.byteLength !== PSK_BYTES) throw new RangeError(`psk must be ${PSK_BYTES} bytes, got ${psk.byteLength}`);
    const add = this.db.transaction(() => {
      const existing = this.statements.get.get(id) as SubscriberRow | undefined;
      if (existing && existing.removed_at_ms === null) {
        throw new SealcastError('E_ARG', `subscriber ${id} already exists in ${this.path}`);
      }
      if (existing) this.statements.readd.run('psk', psk, nowMs, id);
      else this.statements.insert.run(id, 'psk', psk, nowMs);
      return toRecord(this.statements.get.get(id) as SubscriberRow);
    });
    return this.write(() => add.immediate());
  }

  getSubscriber(id: string): SubscriberRecord | undefined {
    this.requireOpen();
    requireSubscriberId(id);
    const row = this.statements.get.get(id) as SubscriberRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  listSubscribers(): SubscriberRecord[] {
    this.requireOpen();
    return (this.statements.list.all() as SubscriberRow[]).map(toRecord);
  }

  /**
   * Marks a subscriber removed, erases its key material and records the removal. Throws E_ARG
   * when there is no such active subscriber.
   */
  removeSubscriber(id: string, nowMs: number = Date.now()): SubscriberRecord {
    this.requireOpen();
    requireSubscriberId(id);
    const remove = this.db.transaction(() => {
      const result = this.statements.remove.run(nowMs, id);
      if (result.changes === 0) {
        const existing = this.statements.get.get(id) as SubscriberRow | undefined;
        throw new SealcastError('E_ARG', existing ? `subscriber ${id} was already removed` : `no subscriber named ${id} in ${this.path}`);
      }
      this.statements.recordRemoval.run(id, nowMs, nowMs);
      return toRecord(this.statements.get.get(id) as SubscriberRow);
    });
    return this.write(() => remove.immediate());
  }

  /** Looks a client up for registration. The returned psk is a fresh copy the caller zeroes. */
  lookupForRegistration(id: string): RegistrationLookup {
    this.requireOpen();
    const row = this.statements.lookup.get(id) as { key_kind: KeyKind; psk: Buffer | null; removed_at_ms: number | null } | undefined;
    if (!row) return { status: 'unknown' };
    if (row.removed_at_ms !== null) return { status: 'removed', keyKind: row.key_kind };
    return { status: 'active', keyKind: row.key_kind, psk: row.psk };
  }

  /**
   * lookupForRegistration for many ids inside one read transaction: the file locks and checks
   * SQLite takes per transaction are paid once for the batch, not once per id.
   */
  lookupManyForRegistration(ids: readonly string[]): RegistrationLookup[] {
    this.requireOpen();
    if (ids.length <= 1) return ids.map((id) => this.lookupForRegistration(id));
    this.lookupMany ??= this.db.transaction((batch: readonly string[]) => batch.map((id) => this.lookupForRegistration(id)));
    return this.lookupMany(ids);
  }

  /** Whether a subscriber may hold keys, without reading its key material. */
  statusOf(id: string): 'unknown' | SubscriberStatus {
    this.requireOpen();
    const row = this.statements.status.get(id) as { removed_at_ms: number | null } | undefined;
    if (!row) return 'unknown';
    return row.removed_at_ms === null ? 'active' : 'removed';
  }

  /** Count of withdrawal and removal records (the audit trail); used by tests and reports. */
  countWithdrawals(id?: string): number {
    this.requireOpen();
    const row = (id === undefined
      ? this.db.prepare('SELECT count(*) AS n FROM withdrawals').get()
      : this.db.prepare('SELECT count(*) AS n FROM withdrawals WHERE subscriber_id = ?').get(id)) as { n: number };
    return row.n;
  }

  schemaVersion(): number {
    this.requireOpen();
    return (this.db.prepare('SELECT version FROM schema_version').get() as { version: number }).version;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private write<T>(action: () => T): T {
    try {
      return action();
    } catch (error) {
      if (error instanceof SealcastError) throw error;
      const code = (error as { code?: string }).code;
      if (code === 'SQLITE_BUSY') {
        throw new SealcastError('E_IO', `the registry ${this.path} stayed locked by another process; try again`, { cause: error });
      }
      throw new SealcastError('E_IO', `cannot write the registry ${this.path}: ${(error as Error).message}`, { cause: error });
    }
  }

  private requireOpen(): void {
    if (this.closed) throw new SealcastError('E_CLOSED', `the registry ${this.path} is closed`);
  }
}

function migrate(db: Database.Database, path: string, readonly: boolean): void {
  const hasVersionTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get() !== undefined;
  if (hasVersionTable) {
    checkVersion(db, path);
    return;
  }
  if (readonly) throw new SealcastError('E_IO', `${path} is not a sealcast registry (no schema_version table)`);
  // Several processes may open a new file at once: the immediate transaction serialises them, and
  // the ones that lose the race find the schema already there.
  db.transaction(() => {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get() !== undefined;
    if (exists) return;
    const others = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number };
    if (others.n > 0) throw new SealcastError('E_IO', `${path} is an SQLite database but not a sealcast registry`);
    db.exec(SCHEMA_V1);
    db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(REGISTRY_SCHEMA_VERSION);
  }).immediate();
  checkVersion(db, path);
}

function checkVersion(db: Database.Database, path: string): void {
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  if (!row) throw new SealcastError('E_IO', `the registry ${path} has an empty schema_version table`);
  if (row.version !== REGISTRY_SCHEMA_VERSION) {
    throw new SealcastError(
      'E_IO',
      `the registry ${path} has schema version ${row.version}; this sealcast understands version ${REGISTRY_SCHEMA_VERSION}`,
    );
  }
}
