/**
 * The `pacer` CLI client, run as a real child process against a real API on a real SQLite file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ADMIN_TOKEN, request, startTestApi, tokenFor, type TestApi } from '../support/api-server.js';
import { toSpec } from '../../api/contract/class.js';
import { SqliteStore } from '../../api/store/sqlite.js';

const execFileAsync = promisify(execFile);
/** dist/test/api/cli.spec.js → dist/api/cli/pacer.js */
const PACER = fileURLToPath(new URL('../../api/cli/pacer.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pacer …`; never throws for a non-zero exit. `env` values of undefined remove the variable. */
async function pacer(args: string[], env: Record<string, string | undefined>): Promise<Run> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, PACER_TOKEN: undefined, PACER_API: undefined, ...env })) {
    if (v !== undefined) merged[k] = v;
  }
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [PACER, ...args], { env: merged, timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e;
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function assertNoStack(r: Run): void {
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `stack trace on stderr:\n${r.stderr}`);
}

/** A port nothing listens on: bind one, then free it. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('pacer CLI (class, host, token) against a real API', function () {
  this.timeout(30_000);
  let t: TestApi;
  let env: Record<string, string>;
  const cli = (...args: string[]) => pacer(args, env);
  const getJson = async (name: string) => {
    const r = await cli('class', 'get', name, '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    t = await startTestApi();
    env = { PACER_TOKEN: ADMIN_TOKEN, PACER_API: t.url };
  });
  after(async () => {
    await t.close();
  });

  describe('class set', () => {
    it('creates a class from tc-style flags', async () => {
      const r = await cli('class', 'set', 'web', '--rate', '2gbit', '--ceil', '5gbit', '--dst', '10.0.0.0/8', '--burst', '64kb');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^created class web \(id \d+, revision \d+\)/);
      assert.match(r.stdout, /Rate:\s+2gbit/);
      assert.match(r.stdout, /Ceil:\s+5gbit/);
      assert.match(r.stdout, /Match dst:\s+10\.0\.0\.0\/8/);
      const c = await getJson('web');
      assert.equal(c.rate.bitsPerSecond, 2_000_000_000);
      assert.equal(c.ceil.text, '5gbit');
      assert.deepEqual(c.match.dst, ['10.0.0.0/8']);
    });

    it('updates only the given field and keeps the others', async () => {
      await cli('class', 'set', 'api', '--rate', '100mbit', '--ceil', '1gbit', '--dst', '192.168.0.0/16', '--mark', '7', '--rto-min', '5ms', '--host-label', 'zone=eu1', '--ecn-threshold', '2ms');
      const before = await getJson('api');
      const r = await cli('class', 'set', 'api', '--rate', '200mbit');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^updated class api \(id \d+, revision \d+\)/);
      const after = await getJson('api');
      assert.equal(after.rate.text, '200mbit');
      assert.equal(after.id, before.id);
      assert.ok(after.revision > before.revision);
      for (const field of ['ceil', 'burst', 'horizon', 'parent', 'weight', 'match', 'hosts', 'tcp', 'ecn', 'description']) {
        assert.deepEqual(after[field], before[field], field);
      }
    });

    it('--ceil none removes the ceil', async () => {
      await cli('class', 'set', 'ceiled', '--rate', '10mbit', '--ceil', '20mbit');
      const r = await cli('class', 'set', 'ceiled', '--ceil', 'none');
      assert.equal(r.code, 0, r.stderr);
      const c = await getJson('ceiled');
      assert.equal(c.ceil, null);
      assert.equal(c.rate.text, '10mbit');
    });

    it('--rto-min none on a class whose only TCP field is rto-min removes the TCP tuning (issue 11)', async () => {
      await cli('class', 'set', 'rto-only', '--rate', '1mbit', '--mark', '21', '--rto-min', '5ms');
      assert.equal((await getJson('rto-only')).tcp.rtoMin.text, '5ms');
      const r = await cli('class', 'set', 'rto-only', '--rto-min', 'none');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await getJson('rto-only')).tcp, null);
      // With two fields, none removes only the one named.
      await cli('class', 'set', 'rto-only', '--rto-min', '5ms', '--delack-max', '1ms');
      assert.equal((await cli('class', 'set', 'rto-only', '--rto-min', 'none')).code, 0);
      const c = await getJson('rto-only');
      assert.equal(c.tcp.rtoMin ?? null, null);
      assert.equal(c.tcp.delackMax.text, '1ms');
    });

    it('given lists replace the old list; --host-label replaces the label set; --no-tcp drops TCP tuning', async () => {
      await cli('class', 'set', 'lists', '--rate', '1mbit', '--mark', '1', '--mark', '0x10', '--dst', '10.1.0.0/16', '--host-label', 'zone=eu1', '--host-label', 'tier=fe', '--rto-min', '10ms');
      let c = await getJson('lists');
      assert.deepEqual(c.match.marks, [1, 16]);
      assert.deepEqual(c.hosts.matchLabels, { tier: 'fe', zone: 'eu1' });
      const r = await cli('class', 'set', 'lists', '--mark', '3', '--host-label', 'zone=us1', '--no-tcp');
      assert.equal(r.code, 0, r.stderr);
      c = await getJson('lists');
      assert.deepEqual(c.match.marks, [3]);
      assert.deepEqual(c.match.dst, ['10.1.0.0/16']);
      assert.deepEqual(c.hosts.matchLabels, { zone: 'us1' });
      assert.equal(c.tcp, null);
      await cli('class', 'set', 'lists', '--dst', 'none');
      assert.deepEqual((await getJson('lists')).match.dst, []);
    });

    // Four CLI runs each (a node start is seconds on a busy host); the API is read over HTTP.
    it('--ecn-threshold sets the CE marking threshold, shows it, changes it, and none removes it', async function () {
      this.timeout(90_000);
      const ecnOf = async (name: string) => (await request(t.url, 'GET', `/v1/classes/${name}`)).body.ecn;
      const r = await cli('class', 'set', 'marked', '--rate', '10mbit', '--horizon', '100ms', '--ecn-threshold', '1ms');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ECN threshold:\s+1ms \(CE on ECT packets that wait longer\)/);
      assert.deepEqual(await ecnOf('marked'), { threshold: { ns: 1_000_000, text: '1ms' } });
      const changed = await cli('class', 'set', 'marked', '--ecn-threshold', '1.5ms');
      assert.equal(changed.code, 0, changed.stderr);
      const c = (await request(t.url, 'GET', '/v1/classes/marked')).body;
      assert.deepEqual(c.ecn, { threshold: { ns: 1_500_000, text: '1500us' } });
      assert.equal(c.horizon.text, '100ms', 'the other fields stay');
      const off = await cli('class', 'set', 'marked', '--ecn-threshold', 'none');
      assert.equal(off.code, 0, off.stderr);
      assert.equal(await ecnOf('marked'), null);
      assert.match((await cli('class', 'get', 'marked')).stdout, /ECN threshold:\s+<none> \(no CE marking\)/);
    });

    it('a bad --ecn-threshold exits 1 naming /ecn/threshold and changes nothing', async function () {
      this.timeout(90_000);
      const created = await request(t.url, 'POST', '/v1/classes', { body: { name: 'marked2', rate: '10mbit', horizon: '100ms', ecn: { threshold: '1ms' } } });
      assert.equal(created.status, 201);
      for (const [value, message] of [['0ms', /\/ecn\/threshold: ecn\.threshold must be between 1us and 10s/], ['200ms', /\/ecn\/threshold: ecn\.threshold 200ms must be below the horizon 100ms/], ['5', /\/ecn\/threshold: duration '5' has no time unit/]] as const) {
        const r = await cli('class', 'set', 'marked2', '--ecn-threshold', value);
        assert.equal(r.code, 1, value);
        assert.match(r.stderr, message);
        assertNoStack(r);
      }
      const { warnings: _, ...before } = created.body;
      assert.deepEqual((await request(t.url, 'GET', '/v1/classes/marked2')).body, before);
      const never = await cli('class', 'set', 'never', '--rate', '10mbit', '--ecn-threshold', '3s');
      assert.equal(never.code, 1);
      assert.match(never.stderr, /must be below the horizon 2s/);
      assert.equal((await request(t.url, 'GET', '/v1/classes/never')).status, 404);
    });

    it('--json prints the class the API returned', async () => {
      const r = await cli('class', 'set', 'jsonic', '--rate', '3mbit', '--json');
      assert.equal(r.code, 0, r.stderr);
      const c = JSON.parse(r.stdout);
      assert.equal(c.name, 'jsonic');
      assert.equal(c.rate.text, '3mbit');
      assert.equal(c.etag, `"${c.revision}"`);
    });

    it('says --rate is needed to create a class', async () => {
      const r = await cli('class', 'set', 'norate', '--ceil', '1gbit');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /does not exist; creating it needs --rate/);
      assert.equal((await cli('class', 'get', 'norate')).code, 1);
    });

    it('a bad unit exits 1 and names /rate, with the server\'s message', async () => {
      const r = await cli('class', 'set', 'badunit', '--rate', '5m');
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^pacer: .*invalid/);
      assert.match(r.stderr, /\/rate: unknown rate unit 'm'/);
      assertNoStack(r);
    });

    it('a non-integer --weight or --mark is refused before any request', async () => {
      const w = await cli('class', 'set', 'web', '--weight', '1.5');
      assert.equal(w.code, 1);
      assert.match(w.stderr, /--weight must be an integer/);
      const m = await cli('class', 'set', 'web', '--mark', 'ten');
      assert.equal(m.code, 1);
      assert.match(m.stderr, /--mark must be an integer/);
      assertNoStack(m);
    });
  });

  describe('class ls / get / rm', () => {
    it('ls prints a table with the class', async () => {
      await cli('class', 'set', 'listed', '--rate', '500mbit', '--ceil', '1gbit', '--dst', '172.16.0.0/12', '--ecn-threshold', '250us');
      const r = await cli('class', 'ls');
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.deepEqual(lines[0]?.split(/\s{2,}/), ['NAME', 'ID', 'RATE', 'CEIL', 'PARENT', 'MATCH', 'HOSTS', 'TCP', 'ECN', 'REVISION']);
      const row = lines.find((l) => l.startsWith('listed '));
      assert.ok(row, r.stdout);
      assert.match(row, /500mbit\s+1gbit\s+<none>\s+dst=172\.16\.0\.0\/12\s+<all>\s+<none>\s+250us\s+\d+$/);
    });

    it('ls --json parses and holds every class', async () => {
      const r = await cli('class', 'ls', '--json');
      assert.equal(r.code, 0, r.stderr);
      const list = JSON.parse(r.stdout);
      assert.equal(typeof list.revision, 'number');
      assert.equal(list.next, null);
      assert.ok(list.items.some((c: { name: string }) => c.name === 'listed'));
    });

    it('ls --label filters by host labels', async () => {
      await cli('class', 'set', 'eu-only', '--rate', '1mbit', '--host-label', 'zone=eu9');
      const eu = await cli('class', 'ls', '--label', 'zone=eu9', '--json');
      const us = await cli('class', 'ls', '--label', 'zone=us9', '--json');
      assert.ok(JSON.parse(eu.stdout).items.some((c: { name: string }) => c.name === 'eu-only'));
      assert.ok(!JSON.parse(us.stdout).items.some((c: { name: string }) => c.name === 'eu-only'));
    });

    it('get shows every field in human form', async () => {
      await cli('class', 'set', 'shown', '--rate', '1500kbit', '--horizon', '200ms', '--cgroup', '/system.slice/nginx.service', '--delack-max', '40ms', '--description', 'front ends');
      const r = await cli('class', 'get', 'shown');
      assert.equal(r.code, 0, r.stderr);
      for (const re of [/Name:\s+shown/, /Rate:\s+1500kbit/, /Horizon:\s+200ms/, /Match cgroups:\s+\/system\.slice\/nginx\.service/, /TCP delack-max:\s+40ms/, /Description:\s+front ends/, /Revision:\s+\d+ \(ETag "\d+"\)/]) {
        assert.match(r.stdout, re);
      }
    });

    it('get of an unknown class exits 1 with the 404 detail', async () => {
      const r = await cli('class', 'get', 'nope');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /class "nope" does not exist/);
      assert.match(r.stderr, /404/);
      assertNoStack(r);
    });

    it('rm deletes a class; --if-match with a stale ETag refuses', async () => {
      const c = JSON.parse((await cli('class', 'set', 'doomed', '--rate', '1mbit', '--json')).stdout);
      await cli('class', 'set', 'doomed', '--rate', '2mbit');
      const stale = await cli('class', 'rm', 'doomed', '--if-match', String(c.revision));
      assert.equal(stale.code, 1);
      assert.match(stale.stderr, /412/);
      const r = await cli('class', 'rm', 'doomed');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /deleted class doomed/);
      assert.equal((await request(t.url, 'GET', '/v1/classes/doomed')).status, 404);
    });
  });

  describe('errors without the API', () => {
    it('no token: says how to set PACER_TOKEN', async () => {
      const r = await pacer(['class', 'ls'], { PACER_API: t.url });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /PACER_TOKEN/);
      assertNoStack(r);
    });

    it('--token-file is read instead of PACER_TOKEN', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pacer-cli-'));
      try {
        const file = join(dir, 'token');
        writeFileSync(file, `${ADMIN_TOKEN}\n`);
        const r = await pacer(['class', 'ls', '--json', '--token-file', file], { PACER_API: t.url });
        assert.equal(r.code, 0, r.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a wrong token: the 401 detail and a hint', async () => {
      const r = await pacer(['class', 'ls'], { PACER_API: t.url, PACER_TOKEN: 'not-a-real-token-at-all' });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /unknown token/);
      assert.match(r.stderr, /PACER_TOKEN/);
    });

    it('unreachable API: "cannot reach" with the URL', async () => {
      const port = await freePort();
      const r = await cli('class', 'ls', '--api', `http://127.0.0.1:${port}`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`cannot reach the pacer API at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
      assertNoStack(r);
    });
  });

  describe('token', () => {
    it('create prints the secret once with a warning; ls lists it; revoke stops it', async () => {
      const created = await cli('token', 'create', '--name', 'ci', '--role', 'editor');
      assert.equal(created.code, 0, created.stderr);
      const secret = created.stdout.trim();
      assert.match(secret, /^pacer_\S+$/);
      assert.match(created.stderr, /shown only now/);
      const id = /created token (tok_[0-9a-f]{12})/.exec(created.stderr)?.[1];
      assert.ok(id, created.stderr);

      const asEditor = await pacer(['class', 'ls', '--json'], { PACER_API: t.url, PACER_TOKEN: secret });
      assert.equal(asEditor.code, 0, asEditor.stderr);

      const ls = await cli('token', 'ls');
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /^ID\s+NAME\s+ROLE\s+HOST/);
      assert.match(ls.stdout, new RegExp(`${id}\\s+ci\\s+editor`));
      assert.doesNotMatch(ls.stdout, new RegExp(secret));

      const revoked = await cli('token', 'revoke', id);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stdout, new RegExp(`revoked token ${id}`));
      const after = await pacer(['class', 'ls'], { PACER_API: t.url, PACER_TOKEN: secret });
      assert.equal(after.code, 1);
      assert.match(after.stderr, /revoked/);
    });

    it('create --json includes the secret; an agent token needs --host', async () => {
      const r = await cli('token', 'create', '--name', 'a1', '--role', 'agent', '--host', 'edge-1', '--json');
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout);
      assert.equal(body.role, 'agent');
      assert.equal(body.host, 'edge-1');
      assert.match(body.token, /^pacer_/);
      const bad = await cli('token', 'create', '--name', 'a2', '--role', 'agent');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /\/host: an agent token is bound to one host/);
    });
  });

  describe('host', () => {
    it('ls and get show a host registered by its agent', async () => {
      const agent = await tokenFor(t.url, 'agent', 'node-1');
      const reg = await request(t.url, 'PUT', '/v1/hosts/node-1', { token: agent, body: { labels: { zone: 'eu1' }, agentVersion: '0.1.0' } });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      const hb = await request(t.url, 'PUT', '/v1/hosts/node-1/status', {
        token: agent,
        body: { appliedRevision: 4, mode: 'shaping', classErrors: [{ class: 'web', error: 'no fq on eth1' }] },
      });
      assert.equal(hb.status, 200, JSON.stringify(hb.body));

      const ls = await cli('host', 'ls');
      assert.equal(ls.code, 0, ls.stderr);
      const lines = ls.stdout.trimEnd().split('\n');
      assert.deepEqual(lines[0]?.split(/\s{2,}/), ['NAME', 'LABELS', 'MODE', 'APPLIED-REVISION', 'LAST-SEEN', 'STALE', 'ERRORS']);
      const row = lines.find((l) => l.startsWith('node-1 '));
      assert.ok(row, ls.stdout);
      assert.match(row, /^node-1\s+zone=eu1\s+shaping\s+4\s+\d+s\s+no\s+1$/);

      const get = await cli('host', 'get', 'node-1');
      assert.equal(get.code, 0, get.stderr);
      assert.match(get.stdout, /Agent version:\s+0\.1\.0/);
      assert.match(get.stdout, /web\s+no fq on eth1/);

      const json = JSON.parse((await cli('host', 'ls', '--json')).stdout);
      assert.equal(json.items.find((h: { name: string }) => h.name === 'node-1').status.mode, 'shaping');

      const missing = await cli('host', 'get', 'node-9');
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /host "node-9" is not registered/);
    });
  });
});

/**
 * A scripted stand-in for the API, for what a real one does only under races or at scale:
 * a 412 between GET and PATCH, and list pagination.
 */
describe('pacer CLI against a scripted API', function () {
  this.timeout(30_000);
  let server: Server;
  let url: string;
  const seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }> = [];
  let revision = 1;
  const klass = () => ({
    name: 'web', id: 1, description: '', rate: { bitsPerSecond: 1e6, text: '1mbit' }, ceil: null, burst: { bytes: 0, text: '0b' },
    horizon: { ns: 2e9, text: '2s' }, parent: null, weight: 1, match: { marks: [], cgroups: [], dst: [] }, hosts: { matchLabels: {} },
    tcp: null, revision, etag: `"${revision}"`, createdRevision: 1, createdAt: '2025-01-01T00:00:00Z', updatedAt: '2025-01-01T00:00:00Z',
  });

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        const json = (status: number, value: unknown, type = 'application/json') => {
          const etag = (value as { etag?: string }).etag;
          res.writeHead(status, { 'content-type': type, ...(etag ? { etag } : {}) });
          res.end(JSON.stringify(value));
        };
        if (req.method === 'GET' && req.url === '/v1/classes/web') {
          const reply = klass();
          // Someone else writes the class right after each of our first two reads.
          if (seen.filter((s) => s.method === 'GET').length <= 2) revision++;
          return json(200, reply);
        }
        if (req.method === 'PATCH' && req.url === '/v1/classes/web') {
          if (req.headers['if-match'] !== `"${revision}"`) {
            return json(412, { type: 'about:blank', title: 'Precondition failed', status: 412, detail: 'class "web" changed' }, 'application/problem+json');
          }
          revision++;
          return json(200, { ...klass(), rate: { bitsPerSecond: 2e6, text: '2mbit' } });
        }
        if (req.method === 'GET' && (req.url === '/v1/classes' || req.url?.startsWith('/v1/classes?'))) {
          const after = new URL(req.url, 'http://x').searchParams.get('after');
          if (after === null) return json(200, { revision: 10, items: [{ ...klass(), name: 'a' }], next: 'a' });
          if (after === 'a') return json(200, { revision: 11, items: [{ ...klass(), name: 'b' }], next: 'b' });
          return json(200, { revision: 12, items: [{ ...klass(), name: 'c' }], next: null });
        }
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<html>bad gateway</html>');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    seen.length = 0;
  });

  it('set re-reads and re-applies its patch after a 412, with If-Match and merge-patch+json', async () => {
    revision = 1;
    const r = await pacer(['class', 'set', 'web', '--rate', '2mbit'], { PACER_API: url, PACER_TOKEN: 'x'.repeat(24) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^updated class web/);
    const patches = seen.filter((s) => s.method === 'PATCH');
    assert.equal(patches.length, 3);
    assert.deepEqual(patches.map((p) => p.headers['if-match']), ['"1"', '"2"', '"3"']);
    for (const p of patches) {
      assert.equal(p.headers['content-type'], 'application/merge-patch+json');
      assert.equal(p.headers.authorization, `Bearer ${'x'.repeat(24)}`);
      assert.deepEqual(JSON.parse(p.body), { rate: '2mbit' });
    }
  });

  it('ls follows next until the last page', async () => {
    const r = await pacer(['class', 'ls', '--json'], { PACER_API: url, PACER_TOKEN: 'x'.repeat(24) });
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout);
    assert.deepEqual(list.items.map((c: { name: string }) => c.name), ['a', 'b', 'c']);
    assert.equal(list.revision, 10);
    assert.deepEqual(seen.map((s) => s.url), ['/v1/classes', '/v1/classes?after=a', '/v1/classes?after=b']);
  });

  it('a non-problem error body is reported by status, without a stack trace', async () => {
    const r = await pacer(['host', 'ls'], { PACER_API: url, PACER_TOKEN: 'x'.repeat(24) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 502/);
    assertNoStack(r);
  });
});

describe('pacer CLI prints stored text with control characters escaped', function () {
  this.timeout(90_000);
  let t: TestApi;
  /** Raw in the terminal: any C0 but newline, DEL, or C1. */
  const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

  before(async () => {
    // The API refuses control characters now; a store written before (or by another server) may hold them.
    const dir = mkdtempSync(join(tmpdir(), 'pacer-cli-ctl-'));
    const dbFile = join(dir, 'pacer.db');
    const store = SqliteStore.open(dbFile);
    const spec = toSpec('evil', { rate: 1_000_000, match: { cgroups: ['/x\u001b[2Jy'] } });
    await store.writeClass('evil', 'test', () => ({ ...spec, description: 'red\u001b[31m over\rwrite nul\u0000 csi\u009b end' }));
    await store.registerHost('h1', { zone: 'eu1' }, '0.1.0\u001b]0;title\u0007');
    await store.setHostStatus('h1', { appliedRevision: 1, mode: 'error', modeDetail: 'm\u001bd', classErrors: [{ class: 'evil', error: 'e\r\u0000' }], lastError: 'line 1\nline 2\u001b[K', attachments: [{ iface: 'eth0', state: 'error', lapses: 1, lastLapse: 'l\u007fl' }] });
    await store.close();
    t = await startTestApi({ dir, dbFile });
  });
  after(async () => {
    await t.close();
  });

  it('class ls/get, host ls/get and --json never write ESC, CR, NUL, DEL or C1 raw', async () => {
    const env = { PACER_TOKEN: ADMIN_TOKEN, PACER_API: t.url };
    const runs = new Map<string, Run>();
    for (const args of [['class', 'ls'], ['class', 'get', 'evil'], ['host', 'ls'], ['host', 'get', 'h1'], ['host', 'get', 'h1', '--json']]) {
      const r = await pacer(args, env);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, RAW_CONTROL, `${args.join(' ')}: ${JSON.stringify(r.stdout)}`);
      assert.doesNotMatch(r.stderr, RAW_CONTROL, args.join(' '));
      runs.set(args.join(' '), r);
    }
    assert.match(runs.get('class get evil')!.stdout, /Description:\s+red\\x1b\[31m over\\x0dwrite nul\\x00 csi\\x9b end/);
    assert.match(runs.get('class ls')!.stdout, /cgroup=\/x\\x1b\[2Jy/);
    const host = runs.get('host get h1')!.stdout;
    assert.match(host, /Agent version:\s+0\.1\.0\\x1b\]0;title\\x07/);
    assert.match(host, /Last error:\s+line 1\\x0aline 2\\x1b\[K/);
    assert.match(host, /e\\x0d\\x00/);
    // --json stays JSON, and parses back to the stored text.
    assert.equal(JSON.parse(runs.get('host get h1 --json')!.stdout).status.attachments[0].lastLapse, 'l\u007fl');
  });
});
