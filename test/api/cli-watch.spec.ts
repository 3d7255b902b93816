/** `pacer class watch` against a real API: history, live changes, and a 410 recovery. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { startTestApi, request, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';

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

  it('a revision outside the kept history continues from a fresh list instead of failing', async () => {
    t = await startTestApi({ historyLimit: 10 });
    for (let i = 0; i < 260; i++) await request(t.url, 'POST', '/v1/classes', { body: { name: `c${i}`, rate: '1mbit' } });
    const { stderr } = await promisify(execFile)(process.execPath, [CLI, 'class', 'watch', '--since', '1', '--until-ready'], { env: env() });
    assert.match(stderr, /compacted.*continuing from revision \d+/s);
    assert.match(stderr, /caught up at revision/);
  });
});
