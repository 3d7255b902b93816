/**
 * The class's ECN threshold (`ecn: { threshold }`) over real HTTP on a real SQLite file: what is
 * accepted, what is refused (and that a refusal names the field, says how to fix it and writes
 * nothing), and that it round-trips through POST, GET, PUT and PATCH.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { classFromJson, type ClassJson } from '../../api/contract/class.js';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

interface FieldError {
  path: string;
  message: string;
}

describe('class ecn.threshold over real HTTP', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);
  const create = (body: object) => call('POST', '/v1/classes', { body });
  const revision = async () => (await call('GET', '/v1/classes?limit=1')).body.revision as number;
  /** A 400 problem whose only field error is at `path`, matching `message`; nothing was written. */
  const refused = async (body: object, path: string, message: RegExp) => {
    const before = await revision();
    const r = await create(body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const errors = r.body.errors as FieldError[];
    assert.deepEqual(errors.map((e) => e.path), [path], JSON.stringify(errors));
    assert.match(errors[0]!.message, message);
    assert.equal(await revision(), before, 'a refused class writes nothing');
  };

  beforeEach(async () => {
    t = await startTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('no ecn is the default: the class marks nothing (ecn null)', async () => {
    const r = await create({ name: 'plain', rate: '10mbit' });
    assert.equal(r.status, 201);
    assert.equal(r.body.ecn, null);
  });

  it('accepts a threshold in tc time units and answers with ns and text', async () => {
    for (const [threshold, ns, text] of [['1ms', 1_000_000, '1ms'], ['500us', 500_000, '500us'], ['1.5ms', 1_500_000, '1500us'], ['1999ms', 1_999_000_000, '1999ms']] as const) {
      const name = `c${ns}`;
      const r = await create({ name, rate: '10mbit', ecn: { threshold } });
      assert.equal(r.status, 201, `${threshold}: ${JSON.stringify(r.body)}`);
      assert.deepEqual(r.body.ecn, { threshold: { ns, text } });
      assert.deepEqual((await call('GET', `/v1/classes/${name}`)).body.ecn, r.body.ecn);
    }
  });

  it('refuses 0, negative, unitless, unknown units, not a duration', async () => {
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '0ms' } }, '/ecn/threshold', /ecn\.threshold must be between 1us and 10s; understood 0s.*to turn ECN marking off, set ecn to null/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: { ns: 0 } } }, '/ecn/threshold', /ecn\.threshold must be between 1us and 10s/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '-1ms' } }, '/ecn/threshold', /^ecn\.threshold must be between 1us and 10s; got -1ms, a negative value$/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: 5 } }, '/ecn/threshold', /no time unit/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '5min' } }, '/ecn/threshold', /tc has no minute/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '10kb' } }, '/ecn/threshold', /unknown duration unit/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '100ns' } }, '/ecn/threshold', /between 1us and 10s; understood 100ns/);
  });

  it('refuses a threshold not below the horizon, naming the field and both fixes', async () => {
    await refused({ name: 'z', rate: '10mbit', horizon: '200ms', ecn: { threshold: '200ms' } }, '/ecn/threshold', /ecn\.threshold 200ms must be below the horizon 200ms.*lower ecn\.threshold or raise horizon/);
    await refused({ name: 'z', rate: '10mbit', horizon: '200ms', ecn: { threshold: '1s' } }, '/ecn/threshold', /ecn\.threshold 1s must be below the horizon 200ms/);
    // Against the default horizon (2 s) when none is given.
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '3s' } }, '/ecn/threshold', /must be below the horizon 2s/);
    assert.equal((await create({ name: 'ok', rate: '10mbit', horizon: '200ms', ecn: { threshold: '199ms' } })).status, 201);
  });

  it('refuses an ecn without threshold, unknown sub-fields and a non-object', async () => {
    await refused({ name: 'z', rate: '10mbit', ecn: {} }, '/ecn/threshold', /expected a string with a unit/);
    await refused({ name: 'z', rate: '10mbit', ecn: { threshold: '1ms', mode: 'dctcp' } }, '/ecn/mode', /unknown field "mode"/);
    await refused({ name: 'z', rate: '10mbit', ecn: '1ms' }, '/ecn', /ecn is an object like \{ "threshold": "1ms" \}.*or null for no marking/);
    await refused({ name: 'z', rate: '10mbit', ecn: true }, '/ecn', /ecn is an object like/);
  });

  it('round-trips: a GET body goes back through PUT unchanged; PATCH changes or removes it', async () => {
    const created = (await create({ name: 'db', rate: '100mbit', horizon: '50ms', ecn: { threshold: '2ms' } })).body;
    const { name, id, revision: rev, etag, createdRevision, createdAt, updatedAt, ...spec } = created;
    void [name, id, rev, createdRevision, createdAt, updatedAt];
    const put = await call('PUT', '/v1/classes/db', { body: spec, headers: { 'if-match': etag } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.ecn, { threshold: { ns: 2_000_000, text: '2ms' } });

    const patched = await call('PATCH', '/v1/classes/db', { body: { ecn: { threshold: '4ms' } }, headers: { 'if-match': put.body.etag, 'content-type': 'application/merge-patch+json' } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.ecn, { threshold: { ns: 4_000_000, text: '4ms' } });

    // Lowering the horizon below the threshold is refused at the threshold, with the fix.
    const low = await call('PATCH', '/v1/classes/db', { body: { horizon: '3ms' }, headers: { 'if-match': patched.body.etag } });
    assert.equal(low.status, 400);
    assert.deepEqual(low.body.errors.map((e: FieldError) => e.path), ['/ecn/threshold']);
    assert.match(low.body.errors[0].message, /below the horizon 3ms/);

    const off = await call('PATCH', '/v1/classes/db', { body: { ecn: null }, headers: { 'if-match': patched.body.etag } });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal(off.body.ecn, null);
    assert.equal((await call('GET', '/v1/classes/db')).body.ecn, null);
  });

  it('a class stored before the field existed reads as ecn null and can be given one', async () => {
    const c = (await create({ name: 'old', rate: '10mbit' })).body;
    await t.stop();
    const db = new Database(t.dbFile);
    try {
      const row = db.prepare<[string], { spec: string }>('SELECT spec FROM classes WHERE name = ?').get('old')!;
      const { ecn: _drop, ...spec } = JSON.parse(row.spec) as Record<string, unknown>;
      db.prepare('UPDATE classes SET spec = ? WHERE name = ?').run(JSON.stringify(spec), 'old');
    } finally {
      db.close();
    }
    t = await startTestApi({ dir: t.dir, dbFile: t.dbFile });
    const got = await call('GET', '/v1/classes/old');
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.equal(got.body.ecn, null);
    const patched = await call('PATCH', '/v1/classes/old', { body: { ecn: { threshold: '1ms' } }, headers: { 'if-match': c.etag } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(patched.body.ecn, { threshold: { ns: 1_000_000, text: '1ms' } });
  });

  it('reaches agents: the watch event and the list carry it, and classFromJson reads it back', async () => {
    const c = (await create({ name: 'w', rate: '10mbit', ecn: { threshold: '1ms' } })).body;
    // The watch stream sends each change's `after` (api/routes/watch.ts); the audit shows the same.
    const changes = await call('GET', '/v1/audit?kind=class');
    const change = (changes.body.items as Array<{ revision: number; after: ClassJson }>).find((x) => x.revision === c.revision)!;
    assert.deepEqual(change.after.ecn, { threshold: { ns: 1_000_000, text: '1ms' } });
    assert.deepEqual(classFromJson(change.after).ecn, { threshold: 1_000_000 });
    const listed = (await call('GET', '/v1/classes')).body.items as ClassJson[];
    assert.deepEqual(classFromJson(listed[0]!).ecn, { threshold: 1_000_000 });
    // An API from before the field sends no ecn at all: an agent reads that as "off".
    const { ecn: _drop, ...older } = listed[0]!;
    assert.equal(classFromJson(older as ClassJson).ecn, null);
  });
});
