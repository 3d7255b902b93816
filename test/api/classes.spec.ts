import assert from 'node:assert/strict';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

describe('/v1/classes over real HTTP on a real SQLite file', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);
  const create = (body: object) => call('POST', '/v1/classes', { body });

  beforeEach(async () => {
    t = await startTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('creates a class with tc units and answers with integers and human strings', async () => {
    const r = await create({ name: 'web', rate: '2gbit', ceil: '625mbps', burst: '64kb', dst: undefined, match: { dst: ['10.0.0.0/8'] } });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('location'), '/v1/classes/web');
    assert.equal(r.headers.get('etag'), `"${r.body.revision}"`);
    assert.deepEqual(r.body.rate, { bitsPerSecond: 2_000_000_000, text: '2gbit' });
    // tc reads mbps as megaBYTES per second.
    assert.deepEqual(r.body.ceil, { bitsPerSecond: 5_000_000_000, text: '5gbit' });
    assert.deepEqual(r.body.burst, { bytes: 65536, text: '64kb' });
    assert.deepEqual(r.body.horizon, { ns: 2_000_000_000, text: '2s' });
    assert.equal(r.body.weight, 1);
    assert.equal(typeof r.body.id, 'number');
    const { warnings, ...created } = r.body;
    assert.deepEqual(warnings.map((w: { path: string }) => w.path), ['/ceil'], 'a bytes unit spelled like bits is accepted, with a warning');
    const got = await call('GET', '/v1/classes/web');
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, created);
  });

  it('accepts the quantity objects it returns, so a GET body round-trips through PUT', async () => {
    const created = (await create({ name: 'db', rate: '100mbit', tcp: { rtoMin: '5ms' } })).body;
    const { name, id, revision, etag, createdRevision, createdAt, updatedAt, ...spec } = created;
    void [name, id, revision, createdRevision, createdAt, updatedAt];
    const put = await call('PUT', '/v1/classes/db', { body: spec, headers: { 'if-match': etag } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.rate, created.rate);
    assert.deepEqual(put.body.tcp, created.tcp);
    assert.equal(put.body.id, created.id);
    assert.ok(put.body.revision > created.revision);
  });

  it('rejects a duplicate name with 409', async () => {
    assert.equal((await create({ name: 'a', rate: '1mbit' })).status, 201);
    const r = await create({ name: 'a', rate: '2mbit' });
    assert.equal(r.status, 409);
    assert.equal(r.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.match(r.body.detail, /already exists/);
  });

  it('names every offending field of a bad body and writes nothing', async () => {
    const r = await create({ name: 'Bad Name', rate: '5m', ceil: 7, horizon: '20s', weight: 0, match: { marks: [0], dst: ['10.1.2.3/8'] }, extra: true });
    assert.equal(r.status, 400);
    const paths = r.body.errors.map((e: { path: string }) => e.path).sort();
    assert.deepEqual(paths, ['/ceil', '/extra', '/horizon', '/match/dst/0', '/match/marks/0', '/name', '/rate', '/weight'].sort());
    assert.match(r.body.errors.find((e: { path: string }) => e.path === '/rate').message, /mbit.*mbps/);
    assert.match(r.body.errors.find((e: { path: string }) => e.path === '/match/dst/0').message, /did you mean 10\.0\.0\.0\/8/);
    const list = await call('GET', '/v1/classes');
    assert.deepEqual(list.body.items, []);
  });

  it('rejects out-of-range rates and a ceil below the rate, saying what it understood', async () => {
    let r = await create({ name: 'x', rate: '500gbit' });
    assert.equal(r.status, 400);
    assert.match(r.body.errors[0].message, /between 1kbit .* and 400gbit .*understood 500gbit/);
    r = await create({ name: 'x', rate: '999bit' });
    assert.equal(r.status, 400);
    r = await create({ name: 'x', rate: '2gbit', ceil: '1gbit' });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.errors.map((e: { path: string }) => e.path), ['/ceil']);
    r = await create({ name: 'x', rate: '1gbit', horizon: 2000 });
    assert.equal(r.status, 400);
    assert.match(r.body.errors[0].message, /unit/);
  });

  it('answers malformed JSON, a wrong content type and an oversized body with 4xx problems', async () => {
    let r = await call('POST', '/v1/classes', { rawBody: '{"name": "a",', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.match(r.body.detail, /not valid JSON/);
    r = await call('POST', '/v1/classes', { rawBody: 'name=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 415);
    r = await call('POST', '/v1/classes', { rawBody: JSON.stringify({ name: 'a', rate: '1mbit', description: 'x'.repeat(400_000) }), headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 413);
    r = await call('POST', '/v1/classes', { body: ['not', 'an', 'object'] });
    assert.equal(r.status, 400);
    r = await call('POST', '/v1/classes', { body: null });
    assert.equal(r.status, 400);
  });

  it('requires If-Match to change or delete (428), and refuses a stale one (412)', async () => {
    const c = (await create({ name: 'web', rate: '1gbit' })).body;
    assert.equal((await call('PUT', '/v1/classes/web', { body: { rate: '2gbit' } })).status, 428);
    assert.equal((await call('PATCH', '/v1/classes/web', { body: { rate: '2gbit' } })).status, 428);
    assert.equal((await call('DELETE', '/v1/classes/web')).status, 428);
    const patched = await call('PATCH', '/v1/classes/web', { body: { rate: '2gbit' }, headers: { 'if-match': c.etag, 'content-type': 'application/merge-patch+json' } });
    assert.equal(patched.status, 200);
    const stale = await call('PUT', '/v1/classes/web', { body: { rate: '3gbit' }, headers: { 'if-match': c.etag } });
    assert.equal(stale.status, 412);
    assert.match(stale.body.detail, new RegExp(`ETag is now "${patched.body.revision}"`));
    assert.equal((await call('GET', '/v1/classes/web')).body.rate.text, '2gbit');
    assert.equal((await call('DELETE', '/v1/classes/web', { headers: { 'if-match': c.etag } })).status, 412);
    assert.equal((await call('DELETE', '/v1/classes/web', { headers: { 'if-match': patched.body.etag } })).status, 204);
    assert.equal((await call('GET', '/v1/classes/web')).status, 404);
  });

  it('PATCH is a JSON merge patch: null removes a field back to its default, lists are replaced', async () => {
    const c = (await create({ name: 'web', rate: '1gbit', ceil: '2gbit', match: { marks: [7, 8] }, tcp: { rtoMin: '10ms' } })).body;
    const r = await call('PATCH', '/v1/classes/web', { body: { ceil: null, tcp: null, match: { marks: [9] } }, headers: { 'if-match': c.etag } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.ceil, null);
    assert.equal(r.body.tcp, null);
    assert.deepEqual(r.body.match.marks, [9]);
    assert.deepEqual(r.body.rate, c.rate);
    const bad = await call('PATCH', '/v1/classes/web', { body: { rate: 'fast' }, headers: { 'if-match': r.body.etag } });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.errors.map((e: { path: string }) => e.path), ['/rate']);
  });

  it('a PUT may not rename a class', async () => {
    const c = (await create({ name: 'web', rate: '1gbit' })).body;
    const r = await call('PUT', '/v1/classes/web', { body: { name: 'other', rate: '1gbit' }, headers: { 'if-match': c.etag } });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.errors, [{ path: '/name', message: 'must equal the name in the URL' }]);
  });

  it('refuses a selector claimed by another class and names that class', async () => {
    await create({ name: 'a', rate: '1mbit', match: { marks: [5], cgroups: ['/a'], dst: ['10.0.0.0/8'] } });
    for (const match of [{ marks: [5] }, { cgroups: ['/a'] }, { dst: ['10.0.0.0/8'] }]) {
      const r = await create({ name: 'b', rate: '1mbit', match });
      assert.equal(r.status, 409, JSON.stringify(match));
      assert.deepEqual(r.body.conflicts, ['a']);
    }
    // A more specific prefix is not a conflict: the longest match wins in the data plane.
    assert.equal((await create({ name: 'b', rate: '1mbit', match: { dst: ['10.1.0.0/16', '2001:db8::/32'] } })).status, 201);
  });

  it('checks the class tree: parent exists, no cycle, depth limit, children within the parent', async () => {
    let r = await create({ name: 'child', rate: '1mbit', parent: 'nobody' });
    assert.equal(r.status, 409);
    assert.match(r.body.detail, /"nobody" does not exist/);
    const root = (await create({ name: 'root', rate: '100mbit', ceil: '200mbit' })).body;
    assert.equal((await create({ name: 'a', rate: '60mbit', parent: 'root' })).status, 201);
    r = await create({ name: 'b', rate: '50mbit', parent: 'root' });
    assert.equal(r.status, 409);
    assert.deepEqual([...r.body.conflicts].sort(), ['a', 'root']);
    assert.match(r.body.detail, /110mbit .* more than parent "root"'s rate 100mbit/);
    r = await create({ name: 'b', rate: '10mbit', ceil: '300mbit', parent: 'root' });
    assert.equal(r.status, 409);
    assert.match(r.body.detail, /exceeds parent "root"'s ceil 200mbit/);
    // Lowering the parent below its children is refused too.
    r = await call('PATCH', '/v1/classes/root', { body: { rate: '50mbit' }, headers: { 'if-match': root.etag } });
    assert.equal(r.status, 409);
    assert.deepEqual(r.body.conflicts, ['a']);
    // Depth: root → a → l3 → l4 is 4 levels; a fifth is refused.
    await create({ name: 'l3', rate: '1mbit', parent: 'a' });
    await create({ name: 'l4', rate: '1mbit', parent: 'l3' });
    r = await create({ name: 'l5', rate: '1mbit', parent: 'l4' });
    assert.equal(r.status, 409);
    assert.match(r.body.detail, /at most 4 levels/);
    // Cycle: make root a child of l4.
    const rootNow = (await call('GET', '/v1/classes/root')).body;
    r = await call('PATCH', '/v1/classes/root', { body: { parent: 'l4' }, headers: { 'if-match': rootNow.etag } });
    assert.equal(r.status, 409);
    assert.match(r.body.detail, /cycle/);
    // A parent with children cannot be deleted.
    r = await call('DELETE', '/v1/classes/l3', { headers: { 'if-match': '*' } });
    assert.equal(r.status, 409);
    assert.deepEqual(r.body.conflicts, ['l4']);
  });

  it('ids are stable across updates and never reused after a delete', async () => {
    const a = (await create({ name: 'a', rate: '1mbit' })).body;
    const b = (await create({ name: 'b', rate: '1mbit' })).body;
    assert.notEqual(a.id, b.id);
    const p = await call('PATCH', '/v1/classes/a', { body: { rate: '2mbit' }, headers: { 'if-match': a.etag } });
    assert.equal(p.body.id, a.id);
    await call('DELETE', '/v1/classes/a', { headers: { 'if-match': p.body.etag } });
    const again = (await create({ name: 'a', rate: '1mbit' })).body;
    assert.ok(again.id > b.id, `id ${again.id} must be new`);
  });

  it('lists by name with pagination and filters by host labels', async () => {
    await create({ name: 'c1', rate: '1mbit', hosts: { matchLabels: { rack: 'r1' } } });
    await create({ name: 'c2', rate: '1mbit', hosts: { matchLabels: { rack: 'r2' } } });
    await create({ name: 'c3', rate: '1mbit' });
    await create({ name: 'c4', rate: '1mbit', hosts: { matchLabels: { rack: 'r1', role: 'db' } } });
    const p1 = await call('GET', '/v1/classes?limit=2');
    assert.deepEqual(p1.body.items.map((c: { name: string }) => c.name), ['c1', 'c2']);
    assert.equal(p1.body.next, 'c2');
    assert.equal(p1.headers.get('x-pacer-revision'), String(p1.body.revision));
    const p2 = await call('GET', `/v1/classes?limit=2&after=${p1.body.next}`);
    assert.deepEqual(p2.body.items.map((c: { name: string }) => c.name), ['c3', 'c4']);
    assert.equal(p2.body.next, null);
    const r1 = await call('GET', '/v1/classes?label=rack=r1');
    assert.deepEqual(r1.body.items.map((c: { name: string }) => c.name), ['c1', 'c3']);
    const db = await call('GET', '/v1/classes?label=rack=r1&label=role=db');
    assert.deepEqual(db.body.items.map((c: { name: string }) => c.name), ['c1', 'c3', 'c4']);
    await call('PUT', '/v1/hosts/h1', { body: { labels: { rack: 'r2' } } });
    const h1 = await call('GET', '/v1/classes?host=h1');
    assert.deepEqual(h1.body.items.map((c: { name: string }) => c.name), ['c2', 'c3']);
    assert.equal((await call('GET', '/v1/classes?host=nohost')).status, 404);
    assert.equal((await call('GET', '/v1/classes?label=novalue')).status, 400);
    assert.equal((await call('GET', '/v1/classes?limit=0')).status, 400);
    assert.equal((await call('GET', '/v1/classes?bogus=1')).status, 400);
  });

  it('a bad class name in the URL is a 400, an unknown route a 404 problem', async () => {
    assert.equal((await call('GET', '/v1/classes/NOT_A_SLUG')).status, 400);
    const r = await call('GET', '/v1/nothing');
    assert.equal(r.status, 404);
    assert.equal(r.body.title, 'Not found');
  });
});
