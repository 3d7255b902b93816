/** Secrets at rest and at the door: the admin token's strength, one answer for dead tokens, file modes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApi, request, type TestApi } from '../support/api-server.js';
import { CLI } from '../support/api-process.js';

const mode = (file: string) => statSync(file).mode & 0o777;

describe('secrets', function () {
  this.timeout(20_000);
  let t: TestApi | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  for (const weak of ['aaaaaaaaaaaaaaaaaaaa', 'abababababababababababababab', 'password1password1password1']) {
    it(`pacer api refuses the low-entropy PACER_ADMIN_TOKEN ${weak} at start-up, saying why`, () => {
      dir = mkdtempSync(join(tmpdir(), 'pacer-secrets-'));
      const r = spawnSync(process.execPath, [CLI, 'api', '--listen', '127.0.0.1:0', '--db', join(dir, 'pacer.db')], {
        env: { ...process.env, PACER_ADMIN_TOKEN: weak },
        encoding: 'utf8',
        timeout: 15_000,
      });
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /PACER_ADMIN_TOKEN is too easy to guess: about \d+ bits .* at least 64 are needed; use a random secret/);
    });
  }

  it('a revoked token and an unknown one get the same status, headers and body', async () => {
    t = await startTestApi();
    const created = await request(t.url, 'POST', '/v1/tokens', { body: { name: 'short-lived', role: 'viewer' } });
    assert.equal((await request(t.url, 'DELETE', `/v1/tokens/${created.body.id}`)).status, 200);
    const revoked = await request(t.url, 'GET', '/v1/classes', { token: created.body.token });
    const unknown = await request(t.url, 'GET', '/v1/classes', { token: `pacer_${'x'.repeat(43)}` });
    assert.equal(revoked.status, 401);
    assert.equal(unknown.status, revoked.status);
    assert.deepEqual(unknown.body, revoked.body);
    assert.equal(unknown.headers.get('www-authenticate'), revoked.headers.get('www-authenticate'));
    assert.equal(unknown.headers.get('content-type'), revoked.headers.get('content-type'));
  });

  it('creates the database and its WAL readable by the owner only (0600), and tightens an existing one', async () => {
    const previous = process.umask(0o022);
    try {
      t = await startTestApi();
      assert.equal((await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1mbit' } })).status, 201);
      assert.equal(mode(t.dbFile), 0o600);
      assert.equal(mode(`${t.dbFile}-wal`), 0o600);
      if (existsSync(`${t.dbFile}-shm`)) assert.equal(mode(`${t.dbFile}-shm`), 0o600);
      await t.stop();
      chmodSync(t.dbFile, 0o644);
      t = await startTestApi({ dir: t.dir });
      assert.equal(mode(t.dbFile), 0o600);
    } finally {
      process.umask(previous);
    }
  });
});
