/**
 * The default store: one SQLite file through better-sqlite3 (12.x; 13.x needs Node 22).
 *
 * Durability: WAL with synchronous=FULL, so a transaction is fsynced before commit returns, and
 * the API acknowledges a write only after that. Group commit: the writes that arrive in the same
 * turn of the event loop (while the previous fsync blocked it) share one transaction and one
 * fsync; each is a savepoint of its own, so one write's failure does not touch the others. A
 * process killed at any moment leaves each change whole or absent, and none acknowledged is lost.
 *
 * The file is opened with locking_mode=EXCLUSIVE: this process is its only reader and writer, so
 * the classes are mirrored in memory (reads never touch the disk) and commit notifications are
 * complete. A second `pacer api` on the same file fails at start with a clear error.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, statfsSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ClassRecord, ClassSpec } from '../contract/class.js';
import { classToJson } from '../contract/class.js';
import type { Change } from '../contract/change.js';
import { MemoryClassIndex } from '../contract/consistency.js';
import type { HostRecord, HostStatus } from '../contract/host.js';
import type { Role, TokenRecord } from '../contract/token.js';
import type { AuditQuery, ClassDecision, NewToken, Store } from './store.js';
import { keyedDigest, migrate, schemaVersion } from './migrations.js';
import { InsufficientStorage } from '../errors.js';

export interface SqliteStoreOptions {
  /** How many revisions of history (watch + audit) to keep. Older ones are compacted. */
  historyLimit?: number;
  /** Observes the duration of each store operation, for metrics. */
  onTiming?: (operation: string, seconds: number) => void;
  now?: () => Date;
}

interface ClassRow {
  name: string;
  id: number;
  spec: string;
  revision: number;
  created_revision: number;
  created_at: string;
  updated_at: string;
}
interface ChangeRow {
  revision: number;
  at: string;
  actor: string;
  kind: Change['kind'];
  action: Change['action'];
  name: string;
  before: string | null;
  after: string | null;
}
interface HostRow {
  name: string;
  labels: string;
  agent_version: string | null;
  registered_at: string;
  last_seen_at: string;
  status: string | null;
}
interface TokenRow {
  id: string;
  name: string;
  role: Role;
  host: string | null;
  hash: Buffer;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
  expires_at: string | null;
}

/** Compaction runs once per this many revisions, so it costs nothing on most writes. */
const COMPACT_EVERY = 256;
/** Free space below which the store counts as full (see storageError and unwritable). */
const SPACE_MARGIN = 1024 * 1024;

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly classes = new MemoryClassIndex<ClassRecord>();
  private readonly commits = new EventEmitter();
  private readonly historyLimit: number;
  private readonly now: () => Date;
  private readonly timing: (operation: string, seconds: number) => void;
  private currentRevision = 0;
  private compacted = 0;
  private nextClassId = 1;
  private readonly stmt;
  /** Writes waiting for the next group commit. */
  private queue: Array<{ run: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
  /** Within a group commit: how to undo the in-memory effects if the commit fails, and what to publish if it succeeds. */
  private undo: Array<() => void> = [];
  private toPublish: Change[] = [];
  /** Why writes fail, while the disk is full; undefined otherwise. */
  private full: string | undefined;
  private readonly file: string;
  /** Backups in flight, awaited by close(). */
  private readonly backups = new Set<Promise<unknown>>();

  static open(file: string, options: SqliteStoreOptions = {}): SqliteStore {
    let db: Database.Database | undefined;
    try {
      createOwnerOnly(file);
      // No busy wait: with an exclusive lock, a busy file means another process holds it.
      db = new Database(file, { timeout: 0 });
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      const tokenKey = loadTokenKey(`${file}.token-key`, schemaVersion(db) < 2);
      migrate(db, { tokenKey });
      return new SqliteStore(db, file, tokenKey, options);
    } catch (e) {
      db?.close();
      const err = e as Error & { code?: string };
      if (err.code === 'SQLITE_BUSY') {
        throw new Error(`cannot open store ${file}: it is in use by another process (another pacer api?)`);
      }
      throw new Error(`cannot open store ${file}: ${err.message}`);
    }
  }

  private constructor(
    db: Database.Database,
    file: string,
    private readonly tokenKey: Buffer,
    options: SqliteStoreOptions,
  ) {
    this.db = db;
    this.file = file;
    this.historyLimit = options.historyLimit ?? 100_000;
    this.now = options.now ?? (() => new Date());
    this.timing = options.onTiming ?? (() => {});
    this.commits.setMaxListeners(0);
    this.stmt = {
      meta: db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('UPDATE meta SET value = ? WHERE key = ?'),
      upsertClass: db.prepare(
        `INSERT INTO classes (name, id, spec, revision, created_revision, created_at, updated_at)
         VALUES (@name, @id, @spec, @revision, @created_revision, @created_at, @updated_at)
         ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, revision = excluded.revision, updated_at = excluded.updated_at`,
      ),
      deleteClass: db.prepare('DELETE FROM classes WHERE name = ?'),
      insertChange: db.prepare(
        'INSERT INTO changes (revision, at, actor, kind, action, name, before, after) VALUES (@revision, @at, @actor, @kind, @action, @name, @before, @after)',
      ),
      classChangesSince: db.prepare<[number, number], ChangeRow>(
        "SELECT * FROM changes WHERE kind = 'class' AND revision > ? ORDER BY revision LIMIT ?",
      ),
      compact: db.prepare('DELETE FROM changes WHERE revision <= ?'),
      upsertHost: db.prepare(
        `INSERT INTO hosts (name, labels, agent_version, registered_at, last_seen_at, status)
         VALUES (@name, @labels, @agent_version, @at, @at, NULL)
         ON CONFLICT(name) DO UPDATE SET labels = excluded.labels, agent_version = excluded.agent_version, last_seen_at = excluded.last_seen_at`,
      ),
      setHostStatus: db.prepare('UPDATE hosts SET status = ?, last_seen_at = ? WHERE name = ?'),
      getHost: db.prepare<[string], HostRow>('SELECT * FROM hosts WHERE name = ?'),
      listHosts: db.prepare<[], HostRow>('SELECT * FROM hosts ORDER BY name'),
      deleteHost: db.prepare('DELETE FROM hosts WHERE name = ?'),
      insertToken: db.prepare(
        'INSERT INTO tokens (id, name, role, host, hash, created_at, created_by, revoked_at, expires_at) VALUES (@id, @name, @role, @host, @hash, @created_at, @created_by, NULL, @expires_at)',
      ),
      tokenByHash: db.prepare<[Buffer], TokenRow>('SELECT * FROM tokens WHERE hash = ?'),
      tokenById: db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE id = ?'),
      listTokens: db.prepare<[], TokenRow>('SELECT * FROM tokens ORDER BY created_at, id'),
      revokeToken: db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ?'),
    };
    const meta = (key: string) => this.stmt.meta.get(key)?.value ?? 0;
    this.currentRevision = meta('revision');
    this.compacted = meta('compacted_through');
    this.nextClassId = meta('next_class_id');
    for (const row of db.prepare<[], ClassRow>('SELECT * FROM classes').all()) {
      this.classes.set(rowToClass(row));
    }
  }

  private timed<T>(operation: string, fn: () => T): T {
    const start = process.hrtime.bigint();
    try {
      return fn();
    } finally {
      this.timing(operation, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  async revision(): Promise<number> {
    return this.currentRevision;
  }

  async compactedThrough(): Promise<number> {
    return this.compacted;
  }

  async listClasses(): Promise<{ revision: number; classes: ClassRecord[] }> {
    return { revision: this.currentRevision, classes: [...this.classes.values()] };
  }

  async getClass(name: string): Promise<ClassRecord | undefined> {
    return this.classes.get(name);
  }

  /**
   * Queues a write for the next group commit. `run` executes inside the transaction (in its own
   * savepoint): it writes rows, then moves the in-memory view and registers how to undo that.
   */
  private enqueue<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.queue.splice(0);
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    this.undo = [];
    this.toPublish = [];
    try {
      this.timed('commit', () =>
        this.db.transaction(() => {
          for (const item of batch) {
            try {
              // A nested better-sqlite3 transaction is a SAVEPOINT: a failing write rolls back alone.
              results.push({ ok: true, value: this.db.transaction(item.run)() });
            } catch (error) {
              results.push({ ok: false, error });
            }
          }
        })(),
      );
    } catch (error) {
      // The commit itself failed (disk full, I/O error): nothing is durable, so nothing moved.
      for (const undo of this.undo.reverse()) undo();
      for (const item of batch) item.reject(this.storageError(error));
      return;
    }
    this.full = undefined;
    for (const change of this.toPublish) this.commits.emit('commit', change);
    batch.forEach((item, i) => {
      const r = results[i]!;
      if (r.ok) item.resolve(r.value);
      else item.reject(this.storageError(r.error));
    });
  }

  /**
   * A write that failed for want of space becomes InsufficientStorage (507), and the store is
   * marked full until a write or a probe succeeds. SQLite reports ENOSPC as SQLITE_FULL; an
   * SQLITE_IOERR_* counts as full only when the file system really has no space left.
   */
  private storageError(error: unknown): unknown {
    const code = (error as { code?: unknown })?.code;
    if (typeof code !== 'string') return error;
    const full = code === 'SQLITE_FULL' || (code.startsWith('SQLITE_IOERR') && this.noSpaceLeft());
    if (!full) return error;
    this.full = `the store's disk is full (${code}: ${(error as Error).message}); free space in ${dirname(this.file)}: writes are refused until then, and resume by themselves`;
    return new InsufficientStorage(`the store is full: this write was not kept and nothing of it was applied. ${this.full}`);
  }

  /** Less than SPACE_MARGIN available to this process on the store's file system. */
  private noSpaceLeft(): boolean {
    try {
      const fs = statfsSync(dirname(this.file));
      return fs.bavail * fs.bsize < SPACE_MARGIN;
    } catch {
      return false;
    }
  }

  /**
   * While full: ready again once the file system has SPACE_MARGIN free and a probe write commits.
   * The probe alone is not enough: it fits in the WAL pages that the failed write left behind.
   */
  async unwritable(): Promise<string | undefined> {
    if (this.full === undefined || this.noSpaceLeft()) return this.full;
    try {
      // Rewrites one row unchanged: it needs a page in the WAL, as any write does.
      this.db.transaction(() => this.stmt.setMeta.run(this.currentRevision, 'revision'))();
      this.full = undefined;
    } catch (error) {
      if (!(this.storageError(error) instanceof InsufficientStorage)) throw error;
    }
    return this.full;
  }

  writeClass(name: string, actor: string, decide: ClassDecision): Promise<{ change: Change; record: ClassRecord | undefined }> {
    return this.enqueue(() =>
      this.timed('writeClass', () => {
        const current = this.classes.get(name);
        const spec = decide(current, this.classes);
        const revision = this.currentRevision + 1;
        const at = this.now().toISOString();
        const record: ClassRecord | undefined =
          spec === null
            ? undefined
            : {
                ...spec,
                name,
                id: current?.id ?? this.nextClassId,
                revision,
                createdRevision: current?.createdRevision ?? revision,
                createdAt: current?.createdAt ?? at,
                updatedAt: at,
              };
        const change: Change = {
          revision,
          at,
          actor,
          kind: 'class',
          action: record === undefined ? 'deleted' : current === undefined ? 'created' : 'updated',
          name,
          before: current === undefined ? null : classToJson(current),
          after: record === undefined ? null : classToJson(record),
        };
        if (record === undefined) this.stmt.deleteClass.run(name);
        else this.stmt.upsertClass.run(classToRow(record));
        const created = current === undefined && record !== undefined;
        if (created) {
          if (record.id > 0xffffffff) throw new Error('class ids are exhausted (u32)');
          this.stmt.setMeta.run(record.id + 1, 'next_class_id');
        }
        this.commitChange(change);
        // Rows are written; now the in-memory view, with its undo for a failed commit.
        const nextClassId = this.nextClassId;
        if (record === undefined) this.classes.delete(name);
        else this.classes.set(record);
        if (created) this.nextClassId = record.id + 1;
        this.undo.push(() => {
          if (current === undefined) this.classes.delete(name);
          else this.classes.set(current);
          this.nextClassId = nextClassId;
        });
        return { change, record };
      }),
    );
  }

  /** Inside a write: appends the change, bumps the revision and compacts old history. */
  private commitChange(change: Change): void {
    this.stmt.insertChange.run({
      ...change,
      before: change.before === null ? null : JSON.stringify(change.before),
      after: change.after === null ? null : JSON.stringify(change.after),
    });
    this.stmt.setMeta.run(change.revision, 'revision');
    const floor = change.revision - this.historyLimit;
    const compacted = this.compacted;
    if (floor > this.compacted && change.revision % COMPACT_EVERY === 0) {
      this.stmt.compact.run(floor);
      this.stmt.setMeta.run(floor, 'compacted_through');
      this.compacted = floor;
    }
    const revision = this.currentRevision;
    this.currentRevision = change.revision;
    this.undo.push(() => {
      this.currentRevision = revision;
      this.compacted = compacted;
    });
    this.toPublish.push(change);
  }

  async classChangesSince(since: number, limit: number): Promise<Change[]> {
    return this.timed('classChangesSince', () => this.stmt.classChangesSince.all(since, limit).map(rowToChange));
  }

  async audit(query: AuditQuery): Promise<Change[]> {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: query.limit };
    if (query.before !== undefined) {
      where.push('revision < @before');
      params.before = query.before;
    }
    if (query.kind !== undefined) {
      where.push('kind = @kind');
      params.kind = query.kind;
    }
    if (query.name !== undefined) {
      where.push('name = @name');
      params.name = query.name;
    }
    const sql = `SELECT * FROM changes ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY revision DESC LIMIT @limit`;
    return this.timed('audit', () => this.db.prepare<[Record<string, unknown>], ChangeRow>(sql).all(params).map(rowToChange));
  }

  onCommit(listener: (change: Change) => void): () => void {
    this.commits.on('commit', listener);
    return () => this.commits.off('commit', listener);
  }

  registerHost(name: string, labels: Record<string, string>, agentVersion: string | null): Promise<HostRecord> {
    return this.enqueue(() =>
      this.timed('registerHost', () => {
        this.stmt.upsertHost.run({ name, labels: JSON.stringify(labels), agent_version: agentVersion, at: this.now().toISOString() });
        return rowToHost(this.stmt.getHost.get(name)!);
      }),
    );
  }

  setHostStatus(name: string, status: HostStatus): Promise<HostRecord | undefined> {
    return this.enqueue(() =>
      this.timed('setHostStatus', () => {
        const result = this.stmt.setHostStatus.run(JSON.stringify(status), this.now().toISOString(), name);
        if (result.changes === 0) return undefined;
        return rowToHost(this.stmt.getHost.get(name)!);
      }),
    );
  }

  async listHosts(): Promise<HostRecord[]> {
    return this.timed('listHosts', () => this.stmt.listHosts.all().map(rowToHost));
  }

  async getHost(name: string): Promise<HostRecord | undefined> {
    const row = this.timed('getHost', () => this.stmt.getHost.get(name));
    return row && rowToHost(row);
  }

  deleteHost(name: string): Promise<boolean> {
    return this.enqueue(() => this.timed('deleteHost', () => this.stmt.deleteHost.run(name).changes > 0));
  }

  createToken(token: NewToken, actor: string): Promise<TokenRecord> {
    return this.enqueue(() =>
      this.timed('createToken', () => {
        const now = this.now();
        const at = now.toISOString();
        const expiresAt = token.ttlSeconds === null ? null : new Date(now.getTime() + token.ttlSeconds * 1000).toISOString();
        const record: TokenRecord = { id: token.id, name: token.name, role: token.role, host: token.host, createdAt: at, createdBy: actor, revokedAt: null, expiresAt };
        const { ttlSeconds: _, ...columns } = token;
        this.stmt.insertToken.run({ ...columns, hash: keyedDigest(this.tokenKey, token.hash), created_at: at, created_by: actor, expires_at: expiresAt });
        this.commitChange({ revision: this.currentRevision + 1, at, actor, kind: 'token', action: 'created', name: token.id, before: null, after: record });
        return record;
      }),
    );
  }

  async findTokenByHash(hash: Buffer): Promise<(TokenRecord & { hash: Buffer }) | undefined> {
    // The row holds the keyed digest; it was found by equality with that, so `hash` is the one.
    const row = this.timed('findToken', () => this.stmt.tokenByHash.get(keyedDigest(this.tokenKey, hash)));
    return row && { ...rowToToken(row), hash };
  }

  async listTokens(): Promise<TokenRecord[]> {
    return this.timed('listTokens', () => this.stmt.listTokens.all().map(rowToToken));
  }

  revokeToken(id: string, actor: string, guard: (token: TokenRecord, active: TokenRecord[]) => void): Promise<TokenRecord | undefined> {
    return this.enqueue(() =>
      this.timed('revokeToken', () => {
        const row = this.stmt.tokenById.get(id);
        if (!row) return undefined;
        const before = rowToToken(row);
        if (before.revokedAt !== null) return before;
        guard(before, this.stmt.listTokens.all().map(rowToToken).filter((t) => t.revokedAt === null));
        const at = this.now().toISOString();
        const after: TokenRecord = { ...before, revokedAt: at };
        this.stmt.revokeToken.run(at, id);
        this.commitChange({ revision: this.currentRevision + 1, at, actor, kind: 'token', action: 'revoked', name: id, before, after });
        return after;
      }),
    );
  }

  /**
   * SQLite's online backup, through this connection: no other process can read the file while
   * the API holds it (locking_mode=EXCLUSIVE), so the copy must be taken here. better-sqlite3
   * copies pages a batch per turn of the event loop, so requests go on meanwhile; a page this
   * connection changes during the copy is copied again (SQLite does that for a backup whose
   * source connection writes), so the copy is the store as of the moment the last page went.
   * The revision is read when the copy is complete: no commit can land between the last step and
   * that read (a group commit runs in its own setImmediate turn; the last step and the read share one).
   */
  async backup(toFile: string): Promise<{ revision: number }> {
    const copied = this.db.backup(toFile).then(() => {
      const revision = this.currentRevision;
      const fd = openSync(toFile, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return { revision };
    });
    this.backups.add(copied);
    try {
      return await copied;
    } finally {
      this.backups.delete(copied);
    }
  }

  async close(): Promise<void> {
    // A backup in flight reads through this connection: let it end first (it fails if it cannot).
    await Promise.allSettled([...this.backups]);
    if (this.queue.length > 0) this.flush(); // commit what was accepted before closing
    this.commits.removeAllListeners();
    if (this.db.open) this.db.close();
  }
}

/**
 * The store holds token digests: it is created readable by its owner only (0600), and an existing
 * one (with its -wal and -shm) loses any group and other bits. SQLite gives a new -wal the mode of
 * the database file (os_unix.c, findCreateFileMode); with locking_mode=EXCLUSIVE there is no -shm.
 */
function createOwnerOnly(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  ownerOnly(file, `${file}-wal`, `${file}-shm`);
}

/** Takes group and other bits off those of `files` that exist. */
function ownerOnly(...files: string[]): void {
  for (const f of files) {
    try {
      if ((statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/**
 * The key of the store's token digests, in a file beside the database, mode 0600: 32 random bytes.
 * It is created (and made durable before anything is keyed with it) only when `mayCreate`, that is
 * while the store's digests are not keyed yet; a keyed store without its key cannot check any
 * token, and says so rather than making a new key.
 */
function loadTokenKey(keyFile: string, mayCreate: boolean): Buffer {
  let key: Buffer | undefined;
  try {
    ownerOnly(keyFile);
    key = readFileSync(keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (key?.length === 32) return key;
  if (!mayCreate) {
    throw new Error(
      key === undefined
        ? `the token key ${keyFile} is missing, and this store's token digests are keyed with it: restore it from a backup (without it no token can be checked)`
        : `the token key ${keyFile} is ${key.length} bytes, not 32: restore it from a backup`,
    );
  }
  // Nothing is keyed yet: a missing key, or one cut short by a crash while it was written, is made anew.
  key = randomBytes(32);
  const fd = openSync(keyFile, 'w', 0o600);
  try {
    writeSync(fd, key);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  ownerOnly(keyFile);
  const dir = openSync(dirname(keyFile), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  return key;
}

function classToRow(c: ClassRecord): ClassRow {
  const spec: ClassSpec = {
    name: c.name,
    description: c.description,
    rate: c.rate,
    ceil: c.ceil,
    burst: c.burst,
    horizon: c.horizon,
    parent: c.parent,
    weight: c.weight,
    match: c.match,
    hosts: c.hosts,
    tcp: c.tcp,
    ecn: c.ecn,
  };
  return {
    name: c.name,
    id: c.id,
    spec: JSON.stringify(spec),
    revision: c.revision,
    created_revision: c.createdRevision,
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

function rowToClass(row: ClassRow): ClassRecord {
  const spec = JSON.parse(row.spec) as ClassSpec;
  // Rows written before the ECN threshold existed have no field: off.
  return { ...spec, ecn: spec.ecn ?? null, id: row.id, revision: row.revision, createdRevision: row.created_revision, createdAt: row.created_at, updatedAt: row.updated_at };
}

function rowToChange(row: ChangeRow): Change {
  return {
    revision: row.revision,
    at: row.at,
    actor: row.actor,
    kind: row.kind,
    action: row.action,
    name: row.name,
    before: row.before === null ? null : JSON.parse(row.before),
    after: row.after === null ? null : JSON.parse(row.after),
  };
}

function rowToHost(row: HostRow): HostRecord {
  return {
    name: row.name,
    labels: JSON.parse(row.labels),
    agentVersion: row.agent_version,
    registeredAt: row.registered_at,
    lastSeenAt: row.last_seen_at,
    status: row.status === null ? null : JSON.parse(row.status),
  };
}

function rowToToken(row: TokenRow): TokenRecord {
  return { id: row.id, name: row.name, role: row.role, host: row.host, createdAt: row.created_at, createdBy: row.created_by, revokedAt: row.revoked_at, expiresAt: row.expires_at };
}
