/**
 * Versioned schema migrations, run in order at start inside one transaction each.
 * The schema version is SQLite's `user_version`. Append new migrations; never edit old ones.
 */
import type Database from 'better-sqlite3';

const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
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
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(`the store has schema version ${current}, newer than this pacer understands (${SCHEMA_VERSION}); upgrade pacer`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
}
