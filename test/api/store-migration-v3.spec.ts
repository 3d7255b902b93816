/**
 * Schema v3 (token expiry) upgrades a real v2 store in place: test/fixtures/store-v2 was written by
 * pacer before expiry existed (its README says how). Its tokens, revoked one included, keep
 * what they were, none expires, and new tokens may.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

const FIXTURE = join(process.cwd(), 'test/fixtures/store-v2');
/** Secrets of the fixture's tokens (test/fixtures/store-v2/README.md). */
const VIEWER = 'pacer_aV3ERMSeV_PMhbtNjDXW4F19jElPT2suFhTwuDDXato';
const AGENT = 'pacer_ZYSRBg4Ppvc0Y8WaGN04gBCBtFhRDfgXQwMI4eRaHOk';
const REVOKED = 'pacer_vxVkSmMl3X4tUKBuEWpUniXWC4MFehYnBPtZMggOlOc';

function inspect(dbFile: string): { version: number; columns: string[] } {
  const db = new Database(dbFile, { readonly: true });
  try {
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      columns: db.prepare<[], { name: string }>('PRAGMA table_info(tokens)').all().map((c) => c.name),
    };
  } finally {
    db.close();
  }
}

describe('store schema v3: token expiry on a v2 store', function () {
  this.timeout(20_000);
  let t: TestApi | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('migrates the v2 file in place, once: old tokens work as before and never expire; new ones may', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-v2-'));
    for (const f of ['pacer.db', 'pacer.db.token-key']) copyFileSync(join(FIXTURE, f), join(dir, f));
    const before = inspect(join(dir, 'pacer.db'));
    assert.equal(before.version, 2);
    assert.ok(!before.columns.includes('expires_at'));

    for (let start = 0; start < 2; start++) {
      t = await startTestApi({ dir });
      const tokens = (await request(t.url, 'GET', '/v1/tokens')).body.items as Array<{ name: string; expiresAt: string | null; revokedAt: string | null }>;
      assert.deepEqual(tokens.map((x) => [x.name, x.expiresAt, x.revokedAt !== null]), [
        ['admin (PACER_ADMIN_TOKEN)', null, false],
        ['ci viewer', null, false],
        ['web-1', null, false],
        ['old', null, true],
      ]);
      assert.equal((await request(t.url, 'GET', '/v1/classes/web', { token: VIEWER })).status, 200);
      assert.equal((await request(t.url, 'PUT', '/v1/hosts/web-1', { token: AGENT, body: { labels: {} } })).status, 200);
      const revoked = await request(t.url, 'GET', '/v1/classes', { token: REVOKED });
      assert.equal(revoked.status, 401);
      assert.equal(revoked.body.detail, 'unknown token, or a revoked one');
      await t.stop();
      // The API holds the file exclusively while it runs: look once it stopped.
      assert.deepEqual(inspect(t.dbFile), { version: 3, columns: [...before.columns, 'expires_at'] });
    }

    t = await startTestApi({ dir });
    const created = await request(t.url, 'POST', '/v1/tokens', { body: { name: 'ci', role: 'editor', ttlSeconds: 3600 } });
    assert.equal(created.status, 201);
    assert.equal(Date.parse(created.body.expiresAt) - Date.parse(created.body.createdAt), 3600_000);
  });
});
