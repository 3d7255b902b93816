/**
 * GET → edit → PUT with the whole representation GET returns (issue 11), and the order of the
 * checks: a stale precondition is 412 whatever else is wrong with the body. Real HTTP, real SQLite.
 */
import assert from 'node:assert/strict';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

describe('/v1/classes: the GET representation round-trips through PUT, PATCH and POST', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);
  const get = async (name: string) => (await call('GET', `/v1/classes/${name}`)).body;
  const put = (name: string, body: unknown, ifMatch: string) => call('PUT', `/v1/classes/${name}`, { body, headers: { 'if-match': ifMatch } });
  const patch = (name: string, body: unknown, ifMatch: string) => call('PATCH', `/v1/classes/${name}`, { body, headers: { 'if-match': ifMatch, 'content-type': 'application/merge-patch+json' } });
  /** Nothing was written: every write bumps the store's one revision, and it is still that of the last write. */
  const assertNothingWritten = async (last: { revision: number }) => {
    assert.equal((await call('GET', '/v1/classes')).body.revision, last.revision);
  };

  beforeEach(async () => {
    t = await startTestApi();
    await call('POST', '/v1/classes', { body: { name: 'web', rate: '1gbit', ceil: '2gbit', burst: '64kb', match: { dst: ['10.0.0.0/8'] }, tcp: { rtoMin: '5ms' } } });
  });
  afterEach(async () => {
    await t.close();
  });

  it('takes back the whole GET body, edited, with its id, revision, etag and timestamps', async () => {
    const got = await get('web');
    const r = await put('web', { ...got, rate: { bitsPerSecond: 1_500_000_000, text: 'edited by hand' } }, got.etag);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.rate.text, '1500mbit');
    assert.equal(r.body.id, got.id);
    assert.equal(r.body.createdAt, got.createdAt);
    assert.deepEqual(r.body.match, got.match);
    assert.ok(r.body.revision > got.revision);
    assert.deepEqual(r.body.warnings, []);
    // What a write answers (warnings included) goes back too.
    const again = await put('web', r.body, r.body.etag);
    assert.equal(again.status, 200, JSON.stringify(again.body));
  });

  it('ignores etag and timestamps whatever they say', async () => {
    const got = await get('web');
    const r = await put('web', { ...got, etag: '"1"', createdAt: 'yesterday', updatedAt: 7, warnings: 'none' }, got.etag);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.createdAt, got.createdAt);
    assert.equal(r.body.etag, `"${r.body.revision}"`);
  });

  it('refuses read-only fields that differ in one 400 naming each, with what was sent and what it is, and writes nothing', async () => {
    const got = await get('web');
    const r = await put('web', { ...got, id: got.id + 7, createdRevision: 99 }, got.etag);
    assert.equal(r.status, 400);
    assert.equal(
      r.body.detail,
      `read-only fields differ from the current class "web": id (sent ${got.id + 7}, is ${got.id}), createdRevision (sent 99, is ${got.createdRevision}); ` +
        'remove them or send the values GET /v1/classes/web returns',
    );
    assert.deepEqual(r.body.errors, [
      { path: '/id', message: `read-only: sent ${got.id + 7}, is ${got.id}` },
      { path: '/createdRevision', message: `read-only: sent 99, is ${got.createdRevision}` },
    ]);
    await assertNothingWritten(got);
  });

  it('another class\'s representation PUT on this one names name, id and revision, and says a class cannot be renamed', async () => {
    const db = (await call('POST', '/v1/classes', { body: { name: 'db', rate: '1mbit', match: { marks: [5] } } })).body;
    const web = await get('web');
    const { warnings: _w, ...dbJson } = db;
    const r = await put('web', dbJson, web.etag);
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.errors.map((e: { path: string }) => e.path), ['/name', '/id', '/revision', '/createdRevision']);
    assert.match(r.body.detail, /^read-only fields differ from the current class "web": name \(sent "db", is "web"\), id \(sent \d+, is \d+\), revision .*a class cannot be renamed/);
    await assertNothingWritten(db);
  });

  it('a revision in the body that is not the current one is a stale edit: 412, as a stale If-Match says', async () => {
    const old = await get('web');
    const changed = (await patch('web', { weight: 2 }, old.etag)).body;
    // If-Match * (or the current ETag) does not save a body that was read before the change.
    for (const ifMatch of ['*', changed.etag]) {
      const r = await put('web', { ...old, rate: '3gbit', ceil: null }, ifMatch);
      assert.equal(r.status, 412, ifMatch);
      assert.equal(r.body.detail, `class "web" changed: its ETag is now "${changed.revision}", not "${old.revision}" (the revision in the body); GET it again and retry`);
    }
    const byHeader = await put('web', { rate: '3gbit' }, old.etag);
    assert.equal(byHeader.body.detail, `class "web" changed: its ETag is now "${changed.revision}", not "${old.revision}"; GET it again and retry`);
    await assertNothingWritten(changed);
  });

  it('a stale If-Match is 412 whatever else is wrong with the body, for PUT, PATCH and DELETE', async () => {
    const old = await get('web');
    const current = (await patch('web', { weight: 3 }, old.etag)).body;
    const broken = [{ ...old, id: 12345 }, { rate: 'fast', extra: true }, { ...old, name: 'other' }, ['not', 'an', 'object'], 'text', null];
    for (const body of broken) {
      assert.equal((await put('web', body, old.etag)).status, 412, `PUT ${JSON.stringify(body)}`);
      assert.equal((await patch('web', body, old.etag)).status, 412, `PATCH ${JSON.stringify(body)}`);
    }
    assert.equal((await call('DELETE', '/v1/classes/web', { headers: { 'if-match': old.etag } })).status, 412);
    // A class that no longer exists: If-Match is false (RFC 9110 13.1.1), so 412 too, body or not.
    assert.equal((await put('gone', { rate: 'fast' }, '"1"')).status, 412);
    await assertNothingWritten(current);
    // A body that is not JSON at all, or nests too deep: the precondition is answered first too.
    const unreadable = ['{"rate": ', '['.repeat(40) + ']'.repeat(40)];
    const raw = (method: string, rawBody: string, etag: string) =>
      call(method, '/v1/classes/web', { rawBody, headers: { 'content-type': 'application/json', 'if-match': etag } });
    for (const rawBody of unreadable) {
      for (const method of ['PUT', 'PATCH']) assert.equal((await raw(method, rawBody, old.etag)).status, 412, `${method} ${rawBody.slice(0, 20)}`);
    }
    await assertNothingWritten(current);
    // With the current ETag, the same bodies get the answer about the body.
    for (const rawBody of unreadable) {
      const r = await raw('PUT', rawBody, current.etag);
      assert.equal(r.status, 400);
      assert.match(r.body.detail, /not valid JSON|nests objects and arrays more than 32 levels/);
    }
    assert.equal((await put('web', { rate: 'fast', extra: true }, current.etag)).status, 400);
    assert.equal((await patch('web', ['not', 'an', 'object'], current.etag)).status, 400);
  });

  it('PATCH takes read-only fields too: equal ones pass, a differing one is refused', async () => {
    const got = await get('web');
    const ok = await patch('web', { id: got.id, revision: got.revision, etag: 'anything', updatedAt: null, rate: '1200mbit' }, got.etag);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.rate.text, '1200mbit');
    const bad = await patch('web', { id: null }, ok.body.etag);
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.errors, [{ path: '/id', message: `read-only: sent null, is ${got.id}` }]);
    const stale = await patch('web', { revision: got.revision, weight: 9 }, '*');
    assert.equal(stale.status, 412);
    await assertNothingWritten(ok.body);
  });

  it('POST of a GET representation: 409 with how to change it when the name exists; otherwise 400 saying the API assigns id and revision', async () => {
    const web = await get('web');
    const dup = await call('POST', '/v1/classes', { body: web });
    assert.equal(dup.status, 409);
    assert.match(dup.body.detail, /already exists .*If-Match: ".*the body is a class's GET representation: to change web, PUT it to \/v1\/classes\/web/);
    const copy = { ...web, name: 'web2', match: { dst: ['10.1.0.0/16'] } };
    const r = await call('POST', '/v1/classes', { body: copy });
    assert.equal(r.status, 400);
    assert.equal(
      r.body.detail,
      `the body carries id, revision, createdRevision, which the API assigns: it looks like the GET representation of another class (id ${web.id}). ` +
        'A new class gets a new id; remove id, revision, createdRevision to create "web2" from it',
    );
    assert.deepEqual(r.body.errors.map((e: { path: string }) => e.path), ['/id', '/revision', '/createdRevision']);
    assert.equal((await call('GET', '/v1/classes/web2')).status, 404);
    // etag and timestamps are ignored on a create as on a replace.
    const { id: _i, revision: _r, createdRevision: _c, ...withoutAssigned } = copy;
    const made = await call('POST', '/v1/classes', { body: { ...withoutAssigned, createdAt: 'ignored' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.notEqual(made.body.id, web.id);
    assert.notEqual(made.body.createdAt, 'ignored');
  });
});
