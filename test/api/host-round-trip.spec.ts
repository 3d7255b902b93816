/** PUT /v1/hosts/{name} takes back what GET returns, edited (issue 11). Real HTTP, real SQLite. */
import assert from 'node:assert/strict';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

describe('/v1/hosts: the GET representation round-trips through PUT', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);

  beforeEach(async () => {
    t = await startTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('takes the GET body with new labels; the reports and timestamps in it are ignored, the agent\'s status kept', async () => {
    await call('PUT', '/v1/hosts/h1', { body: { labels: { rack: 'r1' } } });
    const status = { appliedRevision: 4, mode: 'shaping', classErrors: [], lastError: null };
    await call('PUT', '/v1/hosts/h1/status', { body: status });
    const got = (await call('GET', '/v1/hosts/h1')).body;
    assert.equal(got.agentVersion, null);
    const r = await call('PUT', '/v1/hosts/h1', { body: { ...got, labels: { rack: 'r2' }, status: { mode: 'made up' }, stale: true, lastSeenAt: 'never' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.labels, { rack: 'r2' });
    assert.deepEqual(r.body.status, got.status);
    assert.equal(r.body.status.appliedRevision, 4);
    assert.equal(r.body.registeredAt, got.registeredAt);
  });

  it('a body that names another host is refused and changes nothing', async () => {
    await call('PUT', '/v1/hosts/h1', { body: { labels: { rack: 'r1' } } });
    const r = await call('PUT', '/v1/hosts/h1', { body: { name: 'h2', labels: { rack: 'r9' } } });
    assert.equal(r.status, 400);
    assert.equal(r.body.detail, 'read-only fields differ from host "h1": name (sent "h2", is "h1"); remove it or send the name in the URL (a host cannot be renamed)');
    assert.deepEqual(r.body.errors, [{ path: '/name', message: 'must equal the name in the URL' }]);
    assert.deepEqual((await call('GET', '/v1/hosts/h1')).body.labels, { rack: 'r1' });
    assert.equal((await call('PUT', '/v1/hosts/h1', { body: null })).status, 400);
  });
});
