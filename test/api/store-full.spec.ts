/**
 * A full disk under a real API: the store lives on a 2 MiB tmpfs this test mounts (root only).
 * A write that does not fit answers 507 and changes nothing; /readyz says why it is not ready;
 * when space returns, readiness and writes come back without a restart.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

/** Writes 64 KiB chunks, then ever smaller ones, until the file system refuses even one byte. */
function fillUp(file: string): void {
  let chunk = 64 * 1024;
  let i = 0;
  while (chunk >= 1) {
    try {
      writeFileSync(`${file}.${i++}`, Buffer.alloc(chunk, 1));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      chunk = Math.floor(chunk / 2);
    }
  }
}

describe('a full disk under the store', function () {
  let mountPoint: string | undefined;
  let t: TestApi | undefined;

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
    mountPoint = mkdtempSync(join(tmpdir(), 'pacer-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'pacer-full', mountPoint]);
  });
  after(async () => {
    await t?.stop();
    if (mountPoint) {
      execFileSync('umount', [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  it('answers 507 and changes nothing, /readyz says not ready, and both recover when space returns', async () => {
    const dir = join(mountPoint!, 'db');
    mkdirSync(dir);
    t = await startTestApi({ dir });
    assert.equal((await request(t.url, 'POST', '/v1/classes', { body: { name: 'before', rate: '1mbit' } })).status, 201);
    const before = await request(t.url, 'GET', '/v1/classes');

    const filler = join(mountPoint!, 'filler');
    fillUp(filler);
    // A class with a long description needs new WAL pages, which the full file system cannot give.
    const big = { name: 'web', rate: '1mbit', description: 'x'.repeat(900) };
    const refused = await request(t.url, 'POST', '/v1/classes', { body: big });
    assert.equal(refused.status, 507, JSON.stringify(refused.body));
    assert.match(refused.headers.get('content-type')!, /application\/problem\+json/);
    assert.equal(refused.body.title, 'Insufficient storage');
    assert.match(refused.body.detail, /the store is full/);
    assert.match(refused.body.detail, /nothing of it was applied/);

    const unready = await request(t.url, 'GET', '/readyz');
    assert.equal(unready.status, 503);
    assert.match(unready.body.detail, /not ready: the store's disk is full/);

    const during = await request(t.url, 'GET', '/v1/classes');
    assert.deepEqual(during.body, before.body, 'the refused write changed nothing');
    assert.equal((await request(t.url, 'GET', '/v1/classes/web')).status, 404);
    const audit = await request(t.url, 'GET', '/v1/audit');
    assert.equal(audit.body.items.filter((c: { name: string }) => c.name === 'web').length, 0);

    execFileSync('sh', ['-c', `rm -f ${filler}.*`]);
    const ready = await request(t.url, 'GET', '/readyz');
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.revision, before.body.revision, 'the probe write moved no revision');
    const accepted = await request(t.url, 'POST', '/v1/classes', { body: big });
    assert.equal(accepted.status, 201, JSON.stringify(accepted.body));
    assert.equal(accepted.body.revision, before.body.revision + 1);

    // The same again, recovering by a write first this time: the write clears the full state.
    fillUp(filler);
    assert.equal((await request(t.url, 'POST', '/v1/classes', { body: { ...big, name: 'api' } })).status, 507);
    execFileSync('sh', ['-c', `rm -f ${filler}.*`]);
    assert.equal((await request(t.url, 'POST', '/v1/classes', { body: { ...big, name: 'api' } })).status, 201);
    assert.equal((await request(t.url, 'GET', '/readyz')).status, 200);
  });
});
