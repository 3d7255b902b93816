/**
 * /v1/backup: an admin downloads a consistent copy of the store, taken while the API serves
 * (docs/operations.md, "Backups"). The store holds its file exclusively, so no other process can
 * copy it while the API runs: the API takes the copy (SQLite's online backup) and streams it.
 *
 * The token key (`<db>.token-key`) is not served: it is what keeps a copy of the database alone
 * from being worth anything to someone who guesses tokens offline (docs/budgets-api.md), and a
 * reply over HTTP is one more place to leak it. `pacer backup` copies it from the disk beside.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import { allow } from '../http/auth.js';
import type { Store } from '../store/store.js';

/** Media type of an SQLite database file (IANA registration). */
export const SQLITE_MEDIA_TYPE = 'application/vnd.sqlite3';
/** The header that says which revision the copy holds. */
export const BACKUP_REVISION_HEADER = 'Pacer-Backup-Revision';

export function createBackupRouter({ store, scratchDir = tmpdir() }: { store: Store; scratchDir?: string }): Router {
  const router = Router();
  router.use(allow('admin'));
  router.get('/', async (_req, res) => {
    // The copy is made in a file first (SQLite's backup writes pages into a database file), then sent.
    const file = join(scratchDir, `pacer-backup-${process.pid}-${randomBytes(6).toString('hex')}.db`);
    try {
      const { revision } = await store.backup(file);
      res.set({
        'Content-Type': SQLITE_MEDIA_TYPE,
        'Content-Disposition': `attachment; filename="pacer-${revision}.db"`,
        [BACKUP_REVISION_HEADER]: String(revision),
        'Cache-Control': 'no-store',
      });
      await pipeline(createReadStream(file), res);
    } finally {
      rmSync(file, { force: true });
    }
  });
  return router;
}
