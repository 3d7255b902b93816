/**
 * Versioned schema migrations, run in order at start inside one transaction each.
 * The schema version is SQLite's `user_version`. Append new migrations; never edit old ones.
 */
import { createHmac } from 'node:crypto';
import type Database from 'better-sqlite3';

/** What a migration may need beyond the database. */
export interface MigrationContext {
  /** The store's token key (sqlite.ts, tokenKey), for keyed token digests. */
  tokenKey: Buffer;
}

/** How the store keeps a token: HMAC-SHA-256 under its key of the SHA-256 of the secret. */
export function keyedDigest(key: Buffer, digest: Buffer): Buffer {
  return createHmac('sha256', key).update(digest).digest();
}

const MIGRATIONS: ReadonlyArray<{ version: number; sql?: string; run?: (db: Database.Database, context: MigrationContext) => void }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
      INSERT INTO meta (key, value) VALUES ('revision', 0), ('compacted_through', 0), ('next_class_id', 1);
      CREATE TABLE classes (
        name TEXT PRIMARY KEY,
        id INTEGER NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        revision INTEGER NOT NULL,
        created_revision INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) STRICT;
      CREATE TABLE changes (
        revision INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        action TEXT NOT NULL,
        name TEXT NOT NULL,
        before TEXT,
        after TEXT
      ) STRICT;
      CREATE INDEX changes_by_kind ON changes (kind, revision);
      CREATE INDEX changes_by_name ON changes (name, revision);
      CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        labels TEXT NOT NULL,
        agent_version TEXT,
        registered_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        status TEXT
      ) STRICT;
      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        host TEXT,
        hash BLOB NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT
      ) STRICT;
    `,
  },
  {
    // Token digests were SHA-256 of the secret; keyed now, and derivable without the secrets.
    version: 2,
    run: (db, { tokenKey }) => {
      const update = db.prepare('UPDATE tokens SET hash = ? WHERE id = ?');
      for (const row of db.prepare<[], { id: string; hash: Buffer }>('SELECT id, hash FROM tokens').all()) {
        update.run(keyedDigest(tokenKey, row.hash), row.id);
      }
    },
  },
  {
    // Tokens may expire (issue 11): NULL, the value every token made before has, never expires.
    version: 3,
    sql: 'ALTER TABLE tokens ADD COLUMN expires_at TEXT;',
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Database.Database, context: MigrationContext): void {
  const current = schemaVersion(db);
  if (current > SCHEMA_VERSION) {
    throw new Error(`the store has schema version ${current}, newer than this pacer understands (${SCHEMA_VERSION}); upgrade pacer`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      if (m.sql) db.exec(m.sql);
      m.run?.(db, context);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
}
