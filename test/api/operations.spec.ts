/** What operators touch: health, readiness, metrics, the OpenAPI document, /docs, shutdown, start-up errors. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestApi, request, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';
import { openSse } from '../support/sse.js';
import { startApiChild } from '../support/api-process.js';
import { SqliteStore } from '../../api/store/sqlite.js';

describe('operating the API', () => {
  let t: TestApi;
  afterEach(async () => {
    await t?.close();
  });

  it('/healthz needs no token; /readyz does and reports the revision', async () => {
    t = await startTestApi();
    assert.deepEqual((await request(t.url, 'GET', '/healthz', { token: null })).body, { status: 'ok' });
    const ready = await request(t.url, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.equal(typeof ready.body.revision, 'number');
  });

  it('/metrics counts requests by route template and status, and times the store', async () => {
    t = await startTestApi();
    await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1mbit' } });
    await request(t.url, 'GET', '/v1/classes/web');
    await request(t.url, 'GET', '/v1/classes/nope');
    const r = await request(t.url, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.body, /pacer_api_requests_total\{method="GET",route="\/v1\/classes\/:name",status="200"\} 1/);
    assert.match(r.body, /pacer_api_requests_total\{method="GET",route="\/v1\/classes\/:name",status="404"\} 1/);
    assert.match(r.body, /pacer_api_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/classes",status="201"\}/);
    assert.match(r.body, /pacer_api_store_operation_duration_seconds_count\{operation="writeClass"\} 1/);
    assert.match(r.body, /pacer_api_revision \d+/);
  });

  it('/metrics counts classes, hosts and stale hosts (issue 11)', async () => {
    t = await startTestApi({ staleAfterMs: 3000 });
    for (const name of ['a', 'b', 'c']) await request(t.url, 'POST', '/v1/classes', { body: { name, rate: '1mbit' } });
    assert.equal((await request(t.url, 'PUT', '/v1/hosts/old-host', { body: { labels: {} } })).status < 300, true);
    await new Promise((r) => setTimeout(r, 3500)); // old-host goes stale: no heartbeat for longer than 3 s (new-host would need a 3 s stall to)
    assert.equal((await request(t.url, 'PUT', '/v1/hosts/new-host', { body: { labels: {} } })).status < 300, true);
    const text = (await request(t.url, 'GET', '/metrics')).body as string;
    assert.match(text, /^pacer_api_classes 3$/m);
    assert.match(text, /^pacer_api_hosts 2$/m);
    assert.match(text, /^pacer_api_hosts_stale 1$/m);
  });

  it('serves an OpenAPI 3.1 document generated from the validating schemas, and the /docs UI', async () => {
    t = await startTestApi();
    const doc = (await request(t.url, 'GET', '/v1/openapi.json')).body;
    assert.equal(doc.openapi, '3.1.0');
    const create = doc.components.schemas.ClassCreate;
    assert.equal(create.additionalProperties, false);
    assert.deepEqual(create.required, ['name', 'rate']);
    assert.ok(create.properties.rate.description.includes('kiloBYTES'));
    for (const path of ['/v1/classes', '/v1/classes/{name}', '/v1/watch', '/v1/hosts', '/v1/hosts/{name}/status', '/v1/audit', '/v1/tokens']) {
      assert.ok(doc.paths[path], `${path} documented`);
    }
    const root = await fetch(`${t.url}/`, { redirect: 'manual' });
    assert.deepEqual([root.status, root.headers.get('location')], [302, '/docs/'], 'GET / points to the reference, without a token');
    const page = await request(t.url, 'GET', '/docs/', { token: null });
    assert.equal(page.status, 200);
    assert.match(page.body, /swagger-ui-bundle\.js/);
    const bundle = await fetch(`${t.url}/docs/assets/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    await bundle.arrayBuffer();
    assert.equal((await request(t.url, 'GET', '/v1/openapi.json', { token: null })).status, 401);
  });

  it('a restart on the same file keeps classes, tokens and history', async () => {
    t = await startTestApi();
    const c = await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1mbit' } });
    const viewer = await request(t.url, 'POST', '/v1/tokens', { body: { name: 'v', role: 'viewer' } });
    await t.stop();
    const again = await startTestApi({ dir: t.dir });
    t = again;
    const got = await request(again.url, 'GET', '/v1/classes/web', { token: viewer.body.token });
    assert.equal(got.status, 200);
    const { warnings: _, ...created } = c.body;
    assert.deepEqual(got.body, created);
    const audit = await request(again.url, 'GET', '/v1/audit?kind=class');
    assert.equal(audit.body.items.length, 1);
  });

  it('refuses a store file another process holds, and one from a newer pacer, with clear errors', async () => {
    t = await startTestApi();
    assert.throws(() => SqliteStore.open(t.dbFile), /in use by another process/);
    await t.stop();
    const db = new Database(t.dbFile);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => SqliteStore.open(t.dbFile), /schema version 99, newer than this pacer understands/);
    t = await startTestApi({ dbFile: join(t.dir, 'fresh.db'), dir: t.dir });
  });

  it('on SIGTERM: ends watch streams cleanly, finishes, closes the store and exits 0', async () => {
    t = await startTestApi(); // only for its temp dir
    const { child, url } = await startApiChild(join(t.dir, 'term.db'));
    try {
      const stream = await openSse(`${url}/v1/watch`, ADMIN_TOKEN);
      await stream.waitFor((e) => e.event === 'ready');
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      await stream.ended;
      assert.equal(await exited, 0);
      // The store was closed cleanly: the file opens in exclusive mode at once.
      const store = SqliteStore.open(join(t.dir, 'term.db'));
      await store.close();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('fails to start with a clear message when the address is in use', async () => {
    t = await startTestApi();
    const port = Number(new URL(t.url).port);
    await assert.rejects(startTestApi({ dir: t.dir, dbFile: join(t.dir, 'other.db'), port }), /address is in use/);
  });
});

describe('docs/api.md', () => {
  it('is the reference rendered from the current OpenAPI document (run `npm run docs:api` after an API change)', async () => {
    const { readFileSync } = await import('node:fs');
    const { renderReference, REFERENCE_FILE } = await import('../../api/openapi/reference.js');
    const { openApiDocument } = await import('../../api/openapi/document.js');
    assert.equal(readFileSync(REFERENCE_FILE, 'utf8'), renderReference(openApiDocument('0.1.0') as never));
  });
});
