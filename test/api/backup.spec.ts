/**
 * `pacer backup` against a real `pacer api` process that keeps writing, and the restore that
 * docs/operations.md ("Backups") describes: stop the API, put the copy and its token key in place,
 * start an API on it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { ADMIN_TOKEN, request, tokenFor } from '../support/api-server.js';
import { CLI, killed, startApiChild, type ApiChild } from '../support/api-process.js';

const pacer = (args: string[], env: Record<string, string> = {}) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });

describe('pacer backup and restore (real API process, real SQLite files)', function () {
  this.timeout(60_000);
  let dir: string;
  let api: ApiChild | undefined;
  let restored: ApiChild | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacer-backup-'));
  });
  afterEach(async () => {
    await killed(api?.child);
    await killed(restored?.child);
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies a consistent store while the API keeps writing; the restored API serves those classes, and the tokens of then', async () => {
    const db = join(dir, 'pacer.db');
    api = await startApiChild(db);
    const viewer = await tokenFor(api.url, 'viewer');
    // Writes go on during the whole backup: classes are created one after another.
    let writing = true;
    let created = 0;
    const writer = (async () => {
      while (writing) {
        const r: { status: number; body: unknown } = await request(api!.url, 'POST', '/v1/classes', { body: { name: `c${String(created).padStart(5, '0')}`, rate: '1mbit' } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        created++;
      }
    })();
    while (created < 20) await new Promise((r) => setTimeout(r, 10));
    const to = join(dir, 'backup.db');
    const { stdout } = await pacer(['backup', '--to', to, '--db', db], { PACER_API: api.url, PACER_TOKEN: ADMIN_TOKEN });
    const createdDuringBackup = created;
    await new Promise((r) => setTimeout(r, 100));
    writing = false;
    await writer;
    assert.ok(created > createdDuringBackup, 'writes went on after the backup too');

    const revision = Number(/backup of revision (\d+) \((\d+) classes\)/.exec(stdout)?.[1]);
    assert.ok(revision > 0, stdout);
    const copy = new Database(to, { readonly: true });
    try {
      assert.equal(copy.pragma('integrity_check', { simple: true }), 'ok');
      assert.equal(copy.pragma('journal_mode', { simple: true }), 'delete', 'one self-contained file');
      const rows = copy.prepare('SELECT name, revision FROM classes ORDER BY name').all() as { name: string; revision: number }[];
      assert.ok(rows.length >= 20, `${rows.length} classes`);
      assert.match(stdout, new RegExp(`\\(${rows.length} classes\\)`));
      // Consistent as of one revision: exactly the classes the API had created by then.
      const live = (await request(api.url, 'GET', '/v1/classes?limit=10000')).body.items as { name: string; createdRevision: number }[];
      assert.deepEqual(rows.map((r) => r.name), live.filter((c) => c.createdRevision <= revision).map((c) => c.name).sort());
      assert.equal((copy.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: number }).value, revision);
    } finally {
      copy.close();
    }
    assert.equal(statSync(`${to}.token-key`).mode & 0o777, 0o600);
    assert.ok(!existsSync(`${to}.part`), 'no temporary file left');

    // A token made after the backup is not in it.
    const later = await tokenFor(api.url, 'viewer');
    // Restore as docs/operations.md says: stop the API, copy the file and its key, no -wal/-shm of the old store.
    await killed(api.child, 'SIGTERM');
    const restoredDb = join(dir, 'restored', 'pacer.db');
    await promisify(execFile)('mkdir', ['-p', join(dir, 'restored')]);
    copyFileSync(to, restoredDb);
    copyFileSync(`${to}.token-key`, `${restoredDb}.token-key`);
    restored = await startApiChild(restoredDb);
    const list = await request(restored.url, 'GET', '/v1/classes?limit=10000', { token: viewer });
    assert.equal(list.status, 200, 'a token of the backup works on the restored store');
    assert.equal(list.body.revision, revision);
    assert.equal(list.body.items.length, Number(/\((\d+) classes\)/.exec(stdout)?.[1]));
    assert.equal((await request(restored.url, 'GET', '/v1/classes', { token: later })).status, 401, 'a token made after the backup is not');
  });

  it('refuses to overwrite a backup, and to run without an admin token; neither leaves a file', async () => {
    const db = join(dir, 'pacer.db');
    api = await startApiChild(db);
    const env = { PACER_API: api.url, PACER_TOKEN: ADMIN_TOKEN };
    const to = join(dir, 'backup.db');
    await pacer(['backup', '--to', to, '--db', db], env);
    const size = statSync(to).size;
    await assert.rejects(pacer(['backup', '--to', to, '--db', db], env), /backup\.db exists: choose a new --to/);
    assert.equal(statSync(to).size, size);

    const other = join(dir, 'other.db');
    const viewer = await tokenFor(api.url, 'viewer');
    await assert.rejects(pacer(['backup', '--to', other, '--db', db], { ...env, PACER_TOKEN: viewer }), /HTTP 403/);
    await assert.rejects(pacer(['backup', '--to', other, '--db', join(dir, 'nope.db')], env), /no token key .*nope\.db\.token-key beside it/);
    for (const f of [other, `${other}.part`, `${other}.token-key`]) assert.ok(!existsSync(f), `${f} left behind`);
  });

  it('without --db it copies the store and says that the token key was not copied; --json says what it wrote', async () => {
    api = await startApiChild(join(dir, 'pacer.db'));
    const to = join(dir, 'remote.db');
    const { stdout, stderr } = await pacer(['backup', '--to', to], { PACER_API: api.url, PACER_TOKEN: ADMIN_TOKEN });
    assert.match(stdout, /written to .*remote\.db/);
    assert.match(stderr, /the token key was not copied \(no --db\)/);
    assert.ok(existsSync(to) && !existsSync(`${to}.token-key`));
    const json = JSON.parse((await pacer(['backup', '--to', `${to}.2`, '--db', join(dir, 'pacer.db'), '--json'], { PACER_API: api.url, PACER_TOKEN: ADMIN_TOKEN })).stdout);
    assert.deepEqual(json, { file: `${to}.2`, revision: json.revision, classes: 0, tokenKey: `${to}.2.token-key` });
    assert.ok(Number.isInteger(json.revision) && json.revision > 0);
  });
});
