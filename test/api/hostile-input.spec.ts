/**
 * Issue 17: errors that must stay 4xx, hostile bodies and headers, inputs that must not reach the
 * store, and messages that say what is accepted. Real HTTP against a real API on a real SQLite file.
 */
import assert from 'node:assert/strict';
import { escapeStatusText, toSpec, type HostStatus } from '../../api/contract/index.js';
import { startTestApi, request, type Reply, type TestApi } from '../support/api-server.js';

const PROBLEM = 'application/problem+json; charset=utf-8';
/** C0 (with tab and newline), DEL and C1: each one alone makes a free-text field invalid. */
const CONTROL_SAMPLES = ['\u0000', '\t', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u009b'];

function assertProblem(r: Reply, status: number, detail?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.headers.get('content-type'), PROBLEM);
  assert.equal(r.body.status, status);
  if (detail) assert.match(r.body.detail, detail);
}

function errorAt(r: Reply, path: string): string {
  const e = (r.body.errors ?? []).find((x: { path: string }) => x.path === path);
  assert.ok(e, `no error at ${path}: ${JSON.stringify(r.body)}`);
  return e.message;
}

/** `{"a":{"a":…{}…}}`, `levels` objects deep (the body itself is level 1). */
function nested(levels: number): string {
  return '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);
}

describe('hostile input over real HTTP on a real SQLite file', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);
  const create = (body: object) => call('POST', '/v1/classes', { body });
  const revision = async () => (await call('GET', '/v1/classes')).body.revision as number;

  beforeEach(async () => {
    t = await startTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  describe('errors Express or a library marks 4xx stay that 4xx', () => {
    it('a path parameter that is not valid percent-encoding is a 400 problem on every route that has one', async () => {
      const routes: Array<[string, string]> = [
        ['GET', '/v1/classes/%ZZ'],
        ['PUT', '/v1/classes/%ZZ'],
        ['PATCH', '/v1/classes/%ZZ'],
        ['DELETE', '/v1/classes/%ZZ'],
        ['GET', '/v1/hosts/%ZZ'],
        ['PUT', '/v1/hosts/%ZZ'],
        ['DELETE', '/v1/hosts/%ZZ'],
        ['PUT', '/v1/hosts/%ZZ/status'],
        ['DELETE', '/v1/tokens/%E0%A4%A'],
      ];
      for (const [method, path] of routes) {
        const r = await call(method, path, { headers: { 'if-match': '*' } });
        assertProblem(r, 400, /not valid percent-encoding.*%25/);
        assert.equal(r.body.instance, path);
      }
    });

    it("any other error a library marks 4xx keeps its status: a gzip body that does not inflate is body-parser's 400", async () => {
      const r = await call('POST', '/v1/classes', { rawBody: 'not gzip', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
      assertProblem(r, 400);
      assert.equal(r.body.title, 'Bad Request');
      assert.equal(r.body.instance, '/v1/classes');
    });
  });

  describe('JSON bodies', () => {
    it('a merge patch nested 5,000 levels is a 400 that names the limit, and the class is unchanged', async () => {
      const c = (await create({ name: 'web', rate: '1gbit' })).body;
      const r = await call('PATCH', '/v1/classes/web', { rawBody: nested(5000), headers: { 'content-type': 'application/merge-patch+json', 'if-match': c.etag } });
      assertProblem(r, 400, /more than 32 levels/);
      assert.equal((await call('GET', '/v1/classes/web')).body.revision, c.revision);
    });

    it('counts depth on every body and route, at 33 levels but not at 32, and not inside strings', async () => {
      assertProblem(await call('POST', '/v1/classes', { rawBody: nested(33), headers: { 'content-type': 'application/json' } }), 400, /more than 32 levels/);
      assertProblem(await call('PUT', '/v1/hosts/h1', { rawBody: `[${nested(32)}]`, headers: { 'content-type': 'application/json' } }), 400, /more than 32 levels/);
      const at32 = await call('POST', '/v1/classes', { rawBody: nested(32), headers: { 'content-type': 'application/json' } });
      assertProblem(at32, 400);
      assert.doesNotMatch(at32.body.detail, /levels/);
      const brackets = await create({ name: 'b', rate: '1mbit', description: '[{'.repeat(100) + '\\"[' });
      assert.equal(brackets.status, 201, JSON.stringify(brackets.body));
    });

    it('takes only application/json in UTF-8 (and merge-patch+json on PATCH); anything else is a 415 that says what to send', async () => {
      const body = JSON.stringify({ name: 'a', rate: '1mbit' });
      const before = await revision();
      const refused: Array<[string, RegExp]> = [
        ['application/json;;;', /malformed.*send application\/json/],
        ['application/json; charset=utf-16', /must be UTF-8.*utf-16/],
        ['application/json; charset="UTF-16LE"', /must be UTF-8/],
        ['application/json; charset=latin1', /must be UTF-8/],
        ['application/json; boundary=x', /parameter "boundary" is not supported/],
        ['application/json; charset', /malformed/],
        ['application/merge-patch+json', /send the body as application\/json, not/],
        ['text/plain', /send the body as application\/json/],
      ];
      for (const [type, detail] of refused) {
        const r = await call('POST', '/v1/classes', { rawBody: body, headers: { 'content-type': type } });
        assertProblem(r, 415, detail);
      }
      assert.equal(await revision(), before);
      const utf8 = await call('POST', '/v1/classes', { rawBody: body, headers: { 'content-type': 'Application/JSON; Charset="UTF-8"' } });
      assert.equal(utf8.status, 201, JSON.stringify(utf8.body));
      const patch = await call('PATCH', '/v1/classes/a', { rawBody: '{"rate":"2mbit"}', headers: { 'content-type': 'application/merge-patch+json; charset=utf-8', 'if-match': '*' } });
      assert.equal(patch.status, 200, JSON.stringify(patch.body));
    });
  });

  describe('query integers', () => {
    it('refuses 0x10, 1e3, abc and 1.5 with a 400 that says an integer is expected', async () => {
      for (const [path, param] of [['/v1/classes', 'limit'], ['/v1/audit', 'limit'], ['/v1/audit', 'before'], ['/v1/watch', 'since']]) {
        for (const bad of ['0x10', '1e3', 'abc', '1.5', '-1', '']) {
          const r = await call('GET', `${path}?${param}=${encodeURIComponent(bad)}`);
          assertProblem(r, 400);
          const message = errorAt(r, param === 'since' ? '' : `/${param}`);
          assert.match(message, /an integer/, `${path}?${param}=${bad}`);
          assert.doesNotMatch(message, /NaN/);
        }
      }
      const ok = await call('GET', '/v1/classes?limit=10');
      assert.equal(ok.status, 200);
      assert.match(errorAt(await call('GET', '/v1/classes?limit=10001'), '/limit'), /an integer from 1 to 10000/);
    });
  });

  describe('map keys', () => {
    it('refuses __proto__, constructor and prototype in hosts.matchLabels, naming the key, and stores nothing', async () => {
      const before = await revision();
      for (const key of ['__proto__', 'constructor', 'prototype']) {
        const r = await call('POST', '/v1/classes', { rawBody: `{"name":"a","rate":"1mbit","hosts":{"matchLabels":{"${key}":"x"}}}`, headers: { 'content-type': 'application/json' } });
        assertProblem(r, 400);
        assert.match(errorAt(r, `/hosts/matchLabels/${key}`), new RegExp(`"${key}" is reserved`));
      }
      assert.equal(await revision(), before);
      assert.equal((await call('GET', '/v1/classes/a')).status, 404);
    });

    it('refuses them in a PATCH, in host labels from agents and in the label query', async () => {
      const c = (await create({ name: 'a', rate: '1mbit', hosts: { matchLabels: { zone: 'eu1' } } })).body;
      const patched = await call('PATCH', '/v1/classes/a', { rawBody: '{"hosts":{"matchLabels":{"__proto__":"x"}}}', headers: { 'content-type': 'application/merge-patch+json', 'if-match': c.etag } });
      assertProblem(patched, 400);
      errorAt(patched, '/hosts/matchLabels/__proto__');
      // At the top level, "__proto__" must not become the prototype the patched fields are read through.
      const top = await call('PATCH', '/v1/classes/a', { rawBody: '{"__proto__":{"rate":"2mbit"}}', headers: { 'content-type': 'application/merge-patch+json', 'if-match': c.etag } });
      assertProblem(top, 400);
      assert.match(errorAt(top, '/__proto__'), /unknown field/);
      const after = (await call('GET', '/v1/classes/a')).body;
      assert.deepEqual(after.hosts.matchLabels, { zone: 'eu1' });
      assert.equal(after.revision, c.revision);
      const host = await call('PUT', '/v1/hosts/h1', { rawBody: '{"labels":{"__proto__":"x","prototype":"y"}}', headers: { 'content-type': 'application/json' } });
      assertProblem(host, 400);
      errorAt(host, '/labels/__proto__');
      errorAt(host, '/labels/prototype');
      assert.equal((await call('GET', '/v1/hosts/h1')).status, 404);
      const query = await call('GET', '/v1/classes?label=constructor=x');
      assertProblem(query, 400);
      errorAt(query, '/constructor');
    });

    it('builds label maps without a prototype', () => {
      const spec = toSpec('a', { rate: 1_000_000, hosts: { matchLabels: { zone: 'eu1' } } });
      assert.equal(Object.getPrototypeOf(spec.hosts.matchLabels), null);
      assert.equal(Object.getPrototypeOf(toSpec('b', { rate: 1_000_000 }).hosts.matchLabels), null);
    });
  });

  describe('control characters in free text', () => {
    it('refuses C0, DEL and C1 in description, token name and cgroup paths, naming the field', async () => {
      const before = await revision();
      for (const ch of CONTROL_SAMPLES) {
        let r = await create({ name: 'a', rate: '1mbit', description: `before${ch}after` });
        assertProblem(r, 400);
        assert.match(errorAt(r, '/description'), /description must not contain control characters/);
        r = await create({ name: 'a', rate: '1mbit', match: { cgroups: [`/system.slice/x${ch}y.service`] } });
        assert.match(errorAt(r, '/match/cgroups/0'), /a cgroup path must not contain control characters/);
        r = await call('POST', '/v1/tokens', { body: { name: `ci${ch}bot`, role: 'viewer' } });
        assertProblem(r, 400);
        assert.match(errorAt(r, '/name'), /a token name must not contain control characters/);
      }
      assert.equal(await revision(), before);
      assert.equal((await create({ name: 'a', rate: '1mbit', description: 'unicode is fine: é ü 東京 ✓' })).status, 201);
    });

    it("refuses them in the agent's version and status strings, naming the field", async () => {
      assertProblem(await call('PUT', '/v1/hosts/h1', { body: { labels: {}, agentVersion: '0.1.0\u001b[2J' } }), 400, /agentVersion must not contain control characters/);
      assert.equal((await call('PUT', '/v1/hosts/h1', { body: { labels: {} } })).status, 200);
      const fields: Array<[object, string]> = [
        [{ modeDetail: 'x\ry' }, '/modeDetail'],
        [{ lastError: 'line 1\nline 2' }, '/lastError'],
        [{ classErrors: [{ class: 'web', error: 'bad\u0000' }] }, '/classErrors/0/error'],
        [{ attachments: [{ iface: 'eth0', state: 'repaired', lapses: 1, lastLapse: 'gone\u009b' }] }, '/attachments/0/lastLapse'],
      ];
      for (const [extra, path] of fields) {
        const r = await call('PUT', '/v1/hosts/h1/status', { body: { appliedRevision: 0, mode: 'shaping', ...extra } });
        assertProblem(r, 400);
        assert.match(errorAt(r, path), /must not contain control characters/);
      }
    });

    it('an agent escapes control characters in what it reports, so its heartbeat is accepted', async () => {
      assert.equal((await call('PUT', '/v1/hosts/h1', { body: { labels: {} } })).status, 200);
      const status: HostStatus = { appliedRevision: 3, mode: 'error', modeDetail: 'a\tb', classErrors: [{ class: 'web', error: 'tc said:\nError: x' }], lastError: 'libbpf: \u001b[31mfailed', attachments: [{ iface: 'eth0', state: 'error', lapses: 2, lastLapse: 'detached\r' }] };
      const r = await call('PUT', '/v1/hosts/h1/status', { body: escapeStatusText(status) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.status.lastError, 'libbpf: \\x1b[31mfailed');
      assert.equal(r.body.status.classErrors[0].error, 'tc said:\\x0aError: x');
      assert.equal(r.body.status.attachments[0].lastLapse, 'detached\\x0d');
    });
  });

  describe('messages say what is accepted', () => {
    it('marks, zone ids, label keys, negative and too-large quantities', async () => {
      let r = await create({ name: 'a', rate: '1mbit', match: { marks: [-1, 0, 2 ** 32], dst: ['fe80::%eth0/64'] }, hosts: { matchLabels: { 'bad key!': 'x' } } });
      for (const i of [0, 1, 2]) assert.match(errorAt(r, `/match/marks/${i}`), /an integer from 1 to 4294967295/);
      assert.match(errorAt(r, '/match/marks/0'), /got -1$/);
      const zone = errorAt(r, '/match/dst/0');
      assert.match(zone, /zone id \("%eth0"\).*not allowed.*fe80::\/64/);
      assert.doesNotMatch(zone, /host bits/);
      const key = errorAt(r, '/hosts/matchLabels/bad key!');
      assert.match(key, /Kubernetes label key/);
      assert.match(key, /1 to 63 characters of letters, digits, "\.", "_" and "-"/);
      assert.doesNotMatch(key, /Invalid key in record/);

      const rateRange = /^rate must be between 1kbit \(1000 bit\/s\) and 400gbit \(400000000000 bit\/s\); got /;
      for (const rate of [-1, '-1mbit', 1e21, '10000tbit', { bitsPerSecond: -5 }]) {
        r = await create({ name: 'a', rate });
        const message = errorAt(r, '/rate');
        assert.match(message, rateRange, JSON.stringify(rate));
        assert.doesNotMatch(message, /zero or more|MAX_SAFE_INTEGER|9007199254740991/);
      }
      r = await create({ name: 'a', rate: '1mbit', ceil: 1e21, horizon: '-1ms', burst: 1e21, tcp: { rtoMin: '-5ms' }, ecn: { threshold: '-1us' } });
      assert.match(errorAt(r, '/ceil'), /^ceil must be between 1kbit .* and 400gbit .*; got 1e\+21$/);
      assert.match(errorAt(r, '/horizon'), /^horizon must be between 1ms and 10s; got -1ms, a negative value$/);
      assert.match(errorAt(r, '/burst'), /^burst must be a size of at most 1gb \(1073741824 bytes\) or a time of at most 10s; got 1e\+21$/);
      assert.match(errorAt(r, '/tcp/rtoMin'), /^tcp\.rtoMin must be between 1ms and 1s; got -5ms/);
      assert.match(errorAt(r, '/ecn/threshold'), /^ecn\.threshold must be between 1us and 10s; got -1us/);
    });
  });
});
