/**
 * `pacer backup`: a consistent copy of the API's store, taken while the API serves, and the token
 * key that goes with it (docs/operations.md, "Backups").
 *
 * The running API holds its SQLite file exclusively (api/store/sqlite.ts), so no other process can
 * read it, not even SQLite's own backup: the API takes the copy (GET /v1/backup, admin) and this
 * command writes it to a new file, checks it (`PRAGMA integrity_check`) and only then gives it its
 * name. The token key `<db>.token-key` is never served over HTTP; with `--db` (run on the API's
 * host) it is copied from the disk to `<to>.token-key`, because without it no token of a restored
 * store can be checked.
 */
import { constants, copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import { Command } from 'commander';
import { BACKUP_REVISION_HEADER } from '../routes/backup.js';
import { CliError, PacerClient, withGlobalOptions, type GlobalOptions } from './client.js';
import { out, printJson, run } from './output.js';

interface BackupOptions extends GlobalOptions {
  to: string;
  db?: string;
}

/** The file beside a store that holds its token key (api/store/sqlite.ts). */
export const tokenKeyOf = (dbFile: string): string => `${dbFile}.token-key`;

export function backupCommand(): Command {
  return withGlobalOptions(new Command('backup'))
    .description("copy the API's store while it serves (admin token), with its token key when run on the API's host")
    .requiredOption('--to <file>', 'the backup file to create (never overwritten); the token key goes to <file>.token-key')
    .option('--db <file>', "the API's store (its --db), to copy the token key beside it; without it the key is not copied")
    .addHelpText('after', '\nRestore: stop the API, copy <file> to its --db and <file>.token-key to <db>.token-key, remove <db>-wal and <db>-shm, start it.\n')
    .action(
      run(async (o: BackupOptions) => {
        const keyTo = tokenKeyOf(o.to);
        for (const f of [o.to, keyTo]) if (existsSync(f)) throw new CliError(`${f} exists: choose a new --to (a backup is never overwritten)`);
        const keyFrom = o.db === undefined ? undefined : tokenKeyOf(o.db);
        if (keyFrom !== undefined && !existsSync(keyFrom)) {
          throw new CliError(`--db ${o.db}: there is no token key ${keyFrom} beside it; give the API's --db, on the API's host`);
        }
        const client = PacerClient.fromOptions(o);
        const part = `${o.to}.part`;
        rmSync(part, { force: true }); // what an interrupted run left
        const { headers } = await client.download('/v1/backup', part);
        const revision = Number(headers.get(BACKUP_REVISION_HEADER));
        let classes: number;
        try {
          classes = await checkedCopy(part);
          if (keyFrom !== undefined) copyFileSync(keyFrom, keyTo, constants.COPYFILE_EXCL);
          renameSync(part, o.to);
        } catch (err) {
          rmSync(part, { force: true });
          throw err;
        }
        if (o.json) printJson({ file: o.to, revision, classes, tokenKey: keyFrom === undefined ? null : keyTo });
        else {
          out(`backup of revision ${revision} (${classes} classes) written to ${o.to}`);
          if (keyFrom !== undefined) out(`token key copied to ${keyTo}`);
        }
        if (keyFrom === undefined) {
          process.stderr.write(
            `warning: the token key was not copied (no --db): a store restored without it accepts no token. ` +
              `Copy <db>.token-key from the API's host to ${keyTo} (it does not change), or run this there with --db.\n`,
          );
        }
      }),
    );
}

/**
 * Opens the copy, makes it one self-contained file (journal_mode DELETE: the API's WAL mode came
 * with the pages, and a WAL file needs its -wal and -shm beside it; the API sets WAL again when it
 * opens a restored copy), checks every page and index, and counts its classes; throws if damaged.
 */
async function checkedCopy(file: string): Promise<number> {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('journal_mode = DELETE');
    const result = db.pragma('integrity_check', { simple: true });
    if (result !== 'ok') throw new CliError(`the copy the API sent fails SQLite's integrity check (${String(result)}); nothing was written`);
    return (db.prepare('SELECT count(*) AS n FROM classes').get() as { n: number }).n;
  } finally {
    db.close();
  }
}
