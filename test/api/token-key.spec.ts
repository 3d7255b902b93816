/**
 * Token digests at rest are keyed: HMAC-SHA-256, under a key kept beside the database (0600), of
 * the secret's SHA-256. A store from before is migrated in place; a keyed store without its key
 * refuses to start.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { startTestApi, request, tokenFor, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const storedHashes = (dbFile: string) => {
  const db = new Database(dbFile, { readonly: true });
  try {
    return db.prepare<[], { hash: Buffer }>('SELECT hash FROM tokens').all().map((r) => r.hash.toString('hex'));
  } finally {
    db.close();
  }
};

describe('keyed token digests', function () {
  this.timeout(20_000);
  let t: TestApi | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('keeps HMAC-SHA-256 of the digest under a 32-byte key beside the database, mode 0600', async () => {
    t = await startTestApi();
    const viewer = await tokenFor(t.url, 'viewer');
    await t.stop();
    const keyFile = `${t.dbFile}.token-key`;
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const key = readFileSync(keyFile);
    assert.equal(key.length, 32);
    const hashes = storedHashes(t.dbFile);
    for (const secret of [ADMIN_TOKEN, viewer]) {
      assert.ok(!hashes.includes(sha256(secret).toString('hex')), 'no plain SHA-256 is stored');
      assert.ok(hashes.includes(createHmac('sha256', key).update(sha256(secret)).digest('hex')));
    }
    t = await startTestApi({ dir: t.dir });
    assert.equal((await request(t.url, 'GET', '/v1/classes', { token: viewer })).status, 200);
  });

  it('migrates a store with plain SHA-256 digests, once, and its tokens keep working', async () => {
    t = await startTestApi();
    const viewer = await tokenFor(t.url, 'viewer');
    await t.stop();
    // Make it the store of before: plain digests, schema version 1, no key.
    const db = new Database(t.dbFile);
    const oldKey = readFileSync(`${t.dbFile}.token-key`);
    for (const secret of [ADMIN_TOKEN, viewer]) {
      db.prepare('UPDATE tokens SET hash = ? WHERE hash = ?').run(sha256(secret), createHmac('sha256', oldKey).update(sha256(secret)).digest());
    }
    db.exec('ALTER TABLE tokens DROP COLUMN expires_at'); // schema v3's: v1 had no token expiry
    db.pragma('user_version = 1');
    db.close();
    rmSync(`${t.dbFile}.token-key`);
    assert.ok(storedHashes(t.dbFile).includes(sha256(viewer).toString('hex')));

    for (let start = 0; start < 2; start++) {
      t = await startTestApi({ dir: t.dir });
      assert.equal((await request(t.url, 'GET', '/v1/classes', { token: viewer })).status, 200);
      assert.equal((await request(t.url, 'GET', '/v1/tokens')).status, 200);
      await t.stop();
    }
    const key = readFileSync(`${t.dbFile}.token-key`);
    assert.ok(storedHashes(t.dbFile).includes(createHmac('sha256', key).update(sha256(viewer)).digest('hex')));
    t = await startTestApi({ dir: t.dir });
  });

  it('a keyed store whose key is gone refuses to start, saying what to restore', async () => {
    t = await startTestApi();
    await t.stop();
    rmSync(`${t.dbFile}.token-key`);
    await assert.rejects(startTestApi({ dir: t.dir }), /the token key .*pacer\.db\.token-key is missing, and this store's token digests are keyed with it: restore it from a backup/);
    rmSync(t.dir, { recursive: true, force: true });
    t = undefined;
  });
});
