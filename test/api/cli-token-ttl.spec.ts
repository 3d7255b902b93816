/** `pacer token create --ttl` and the EXPIRES column of `pacer token ls`, as real processes against a real API. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ADMIN_TOKEN, request, startTestApi, type TestApi } from '../support/api-server.js';

const CLI = join(process.cwd(), 'dist/api/cli/pacer.js');

describe('pacer token create --ttl, pacer token ls', function () {
  this.timeout(30_000);
  let t: TestApi;
  const pacer = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, PACER_API: t.url, PACER_TOKEN: ADMIN_TOKEN } });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  const count = async () => (await request(t.url, 'GET', '/v1/tokens')).body.items.length as number;

  before(async () => {
    t = await startTestApi();
  });
  after(async () => {
    await t.close();
  });

  it('--ttl 90d makes a token that expires in 90 days, and says when', async () => {
    const r = await pacer('token', 'create', '--name', 'ci', '--role', 'editor', '--ttl', '90d', '--json');
    assert.equal(r.code, 0, r.stderr);
    const created = JSON.parse(r.stdout);
    assert.equal(Date.parse(created.expiresAt) - Date.parse(created.createdAt), 90 * 86_400_000);
    const plain = await pacer('token', 'create', '--name', 'ci-2', '--role', 'viewer', '--ttl', '12h');
    assert.match(plain.stdout, /^pacer_\S+\n$/, 'the secret alone on stdout');
    assert.match(plain.stderr, /created token tok_[0-9a-f]{12} \(name ci-2, role viewer, expires \d{4}-\d\d-\d\dT[\d:.]+Z\)/);
  });

  it('refuses 0, negative, fractional, unitless, unknown-unit and too long --ttl with the accepted form, and creates nothing', async () => {
    const before = await count();
    const cases: Array<[string, RegExp]> = [
      ['0d', /No time at all/],
      ['-5d', /Not a whole number with one unit/],
      ['1.5d', /Not a whole number with one unit/],
      ['90', /Not a whole number with one unit/],
      ['3y', /Not a whole number with one unit/],
      ['3651d', /Longer than 3650d, the most a token may live/],
      ['99999999999999999999w', /Longer than 3650d/],
    ];
    for (const [ttl, why] of cases) {
      const r = await pacer('token', 'create', '--name', 'bad', '--role', 'viewer', '--ttl', ttl);
      assert.equal(r.code, 1, `--ttl ${ttl}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, why, `--ttl ${ttl}`);
      assert.match(r.stderr, /give a whole number and one unit, s, m, h, d or w .* leave --ttl out for a token that never expires/);
    }
    assert.equal(await count(), before);
  });

  it('token ls: EXPIRES is never, the time, or the time and (expired) once past', async () => {
    const short = (await request(t.url, 'POST', '/v1/tokens', { body: { name: 'short', role: 'viewer', ttlSeconds: 1 } })).body;
    while (Date.now() <= Date.parse(short.expiresAt)) await sleep(100);
    const lasting = (await request(t.url, 'POST', '/v1/tokens', { body: { name: 'lasting', role: 'viewer', ttlSeconds: 3600 } })).body;
    const r = await pacer('token', 'ls');
    assert.equal(r.code, 0, r.stderr);
    const [head, ...rows] = r.stdout.trimEnd().split('\n');
    const at = head!.indexOf('EXPIRES');
    assert.ok(at > 0, head);
    const expires = (id: string) => rows.find((row) => row.startsWith(id))!.slice(at).split(/\s{3,}/)[0];
    const admin = (await request(t.url, 'GET', '/v1/tokens')).body.items.find((x: { role: string }) => x.role === 'admin');
    assert.equal(expires(admin.id), 'never');
    assert.equal(expires(lasting.id), lasting.expiresAt);
    assert.equal(expires(short.id), `${short.expiresAt} (expired)`);
  });
});
