/** `pacer class watch` against a real API: history, live changes, a long replay, and a 410. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { startTestApi, request, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';
import { apiWithHistory } from '../support/watch-load.js';

const CLI = join(process.cwd(), 'dist/api/cli/pacer.js');

describe('pacer class watch', function () {
  this.timeout(30_000);
  let t: TestApi;
  const env = () => ({ ...process.env, PACER_TOKEN: ADMIN_TOKEN, PACER_API: t.url });

  afterEach(async () => {
    await t.close();
  });

  it('--since 0 --until-ready prints the kept history, one JSON event per line, then exits', async () => {
    t = await startTestApi();
    const c = (await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1gbit' } })).body;
    await request(t.url, 'PATCH', '/v1/classes/web', { body: { rate: '2gbit' }, headers: { 'if-match': c.etag } });
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, 'class', 'watch', '--since', '0', '--until-ready', '--json'], { env: env() });
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => [e.action, e.name, e.class.rate.text]), [['created', 'web', '1gbit'], ['updated', 'web', '2gbit']]);
    assert.match(stderr, /caught up at revision \d+/);
  });

  it('follows live changes in human form', async () => {
    t = await startTestApi();
    const child = spawn(process.execPath, [CLI, 'class', 'watch'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const ready = new Promise<void>((resolve) => child.stderr!.on('data', (d: Buffer) => /caught up/.test(d.toString()) && resolve()));
      const line = new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
      await ready;
      await request(t.url, 'POST', '/v1/classes', { body: { name: 'db', rate: '500mbit', ceil: '1gbit' } });
      assert.match(await line, /^revision \d+\s+created\s+db\s+rate 500mbit ceil 1gbit$/);
    } finally {
      child.kill();
    }
  });

  it('an update says which fields changed (issue 11)', async () => {
    t = await startTestApi();
    const c = (await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1gbit', description: 'front' } })).body;
    await request(t.url, 'PATCH', '/v1/classes/web', { body: { rate: '2gbit', ceil: '5gbit' }, headers: { 'if-match': c.etag } });
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'class', 'watch', '--since', '0', '--until-ready'], { env: env() });
    const lines = stdout.trim().split('\n');
    assert.match(lines[0]!, /^revision \d+\s+created\s+web\s+rate 1gbit$/);
    assert.match(lines[1]!, /^revision \d+\s+updated\s+web\s+ceil <none> → 5gbit; rate 1gbit → 2gbit$/);
  });

  it('a revision outside the kept history: says where to continue from and exits non-zero, without retrying', async () => {
    t = await startTestApi({ historyLimit: 10 });
    await Promise.all(Array.from({ length: 260 }, (_, i) => request(t.url, 'POST', '/v1/classes', { body: { name: `c${i}`, rate: '1mbit' } })));
    const latest = (await request(t.url, 'GET', '/v1/classes?limit=1')).body.revision;
    const failed = await promisify(execFile)(process.execPath, [CLI, 'class', 'watch', '--since', '1'], { env: env(), timeout: 20_000 }).then(
      () => assert.fail('pacer class watch --since 1 exited 0'),
      (err: { code: number; stderr: string; killed: boolean }) => err,
    );
    assert.equal(failed.killed, false, 'pacer class watch kept running (retrying?) instead of exiting');
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /no longer has the changes after revision 1: revision 1 is older than the history kept/);
    assert.match(failed.stderr, new RegExp(`pacer class watch --since ${latest}`));
    assert.doesNotMatch(failed.stderr, /retrying|caught up/);
  });

  it('--since 0 over 10,004 kept changes prints them all and catches up', async () => {
    t = await apiWithHistory(10_004);
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, 'class', 'watch', '--since', '0', '--until-ready', '--json'], { env: env(), maxBuffer: 64 << 20, timeout: 25_000 });
    const revisions = stdout.trim().split('\n').map((l) => JSON.parse(l).revision);
    assert.equal(revisions.length, 10_004);
    assert.equal(revisions.at(-1), 10_004);
    assert.doesNotMatch(stderr, /connection lost/);
    assert.match(stderr, /caught up at revision 10004/);
  });
});
