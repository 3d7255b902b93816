import assert from 'node:assert/strict';
import { startTestApi, request, tokenFor, type TestApi } from '../support/api-server.js';

describe('hosts, tokens and the audit log', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);

  beforeEach(async () => {
    t = await startTestApi({ staleAfterMs: 300 });
  });
  afterEach(async () => {
    await t.close();
  });

  describe('/v1/hosts', () => {
    it('an agent registers its host, heartbeats its status, and the host goes stale without heartbeats', async () => {
      const agent = await tokenFor(t.url, 'agent', 'node-1.dc1');
      let r = await call('PUT', '/v1/hosts/node-1.dc1', { token: agent, body: { labels: { rack: 'r7' }, agentVersion: '0.1.0' } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.labels, { rack: 'r7' });
      assert.equal(r.body.status, null);
      const status = { appliedRevision: 12, mode: 'policing', modeDetail: 'policing (fq unavailable)', classErrors: [{ class: 'web', error: 'prefix does not parse' }], lastError: 'fq missing' };
      r = await call('PUT', '/v1/hosts/node-1.dc1/status', { token: agent, body: status });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.status, status);
      const list = await call('GET', '/v1/hosts');
      assert.equal(list.body.items.length, 1);
      assert.equal(list.body.items[0].stale, false);
      await new Promise((done) => setTimeout(done, 400));
      assert.equal((await call('GET', '/v1/hosts')).body.items[0].stale, true);
      r = await call('PUT', '/v1/hosts/node-1.dc1/status', { token: agent, body: { appliedRevision: 13, mode: 'shaping' } });
      assert.equal(r.body.stale, false);
      assert.deepEqual(r.body.status.classErrors, []);
    });

    it('an agent cannot write another host, and a heartbeat before registering is a 404', async () => {
      const agent = await tokenFor(t.url, 'agent', 'h1');
      const r = await call('PUT', '/v1/hosts/h2', { token: agent, body: { labels: {} } });
      assert.equal(r.status, 403);
      assert.match(r.body.detail, /for host "h1"/);
      assert.equal((await call('PUT', '/v1/hosts/h1/status', { token: agent, body: { appliedRevision: 0, mode: 'shaping' } })).status, 404);
    });

    it('rejects a bad status and bad labels, naming the fields', async () => {
      await call('PUT', '/v1/hosts/h1', { body: { labels: {} } });
      let r = await call('PUT', '/v1/hosts/h1/status', { body: { appliedRevision: -1, mode: 'fast', extra: 1 } });
      assert.equal(r.status, 400);
      assert.deepEqual(r.body.errors.map((e: { path: string }) => e.path).sort(), ['/appliedRevision', '/extra', '/mode']);
      r = await call('PUT', '/v1/hosts/h1', { body: { labels: { 'bad key!': 'v' } } });
      assert.equal(r.status, 400);
      assert.equal((await call('PUT', '/v1/hosts/bad_host_name', { body: { labels: {} } })).status, 400);
    });

    it('an editor forgets a host', async () => {
      await call('PUT', '/v1/hosts/h1', { body: { labels: {} } });
      const editor = await tokenFor(t.url, 'editor');
      assert.equal((await call('DELETE', '/v1/hosts/h1', { token: editor })).status, 204);
      assert.equal((await call('GET', '/v1/hosts/h1')).status, 404);
    });
  });

  describe('/v1/tokens', () => {
    it('shows a secret once, lists tokens without secrets, and never revokes the last admin', async () => {
      const created = await call('POST', '/v1/tokens', { body: { name: 'ci', role: 'editor' } });
      assert.equal(created.status, 201);
      assert.match(created.body.token, /^pacer_[A-Za-z0-9_-]{43}$/);
      const list = await call('GET', '/v1/tokens');
      assert.ok(list.body.items.every((tok: Record<string, unknown>) => !('token' in tok) && !('hash' in tok)));
      assert.deepEqual(list.body.items.map((tok: { role: string }) => tok.role).sort(), ['admin', 'editor']);
      const admin = list.body.items.find((tok: { role: string }) => tok.role === 'admin');
      const r = await call('DELETE', `/v1/tokens/${admin.id}`);
      assert.equal(r.status, 409);
      assert.match(r.body.detail, /last active admin/);
      assert.equal((await call('DELETE', '/v1/tokens/tok_ffffffffffff')).status, 404);
      assert.equal((await call('DELETE', '/v1/tokens/bogus')).status, 400);
    });

    it('an agent token must name its host, and only agent tokens may', async () => {
      assert.equal((await call('POST', '/v1/tokens', { body: { name: 'a', role: 'agent' } })).status, 400);
      assert.equal((await call('POST', '/v1/tokens', { body: { name: 'v', role: 'viewer', host: 'h1' } })).status, 400);
      assert.equal((await call('POST', '/v1/tokens', { body: { name: 'r', role: 'root' } })).status, 400);
    });
  });

  describe('/v1/audit', () => {
    it('records who changed what and when, with the state before and after, newest first', async () => {
      const editor = await tokenFor(t.url, 'editor');
      const c = (await call('POST', '/v1/classes', { token: editor, body: { name: 'web', rate: '1gbit' } })).body;
      await call('PATCH', '/v1/classes/web', { token: editor, body: { rate: '2gbit' }, headers: { 'if-match': c.etag } });
      await call('DELETE', '/v1/classes/web', { token: editor, headers: { 'if-match': '*' } });
      const r = await call('GET', '/v1/audit?kind=class&name=web');
      assert.equal(r.status, 200);
      const [deleted, updated, created] = r.body.items;
      assert.deepEqual([deleted.action, updated.action, created.action], ['deleted', 'updated', 'created']);
      assert.match(updated.actor, /^test-editor \(tok_[0-9a-f]{12}\)$/);
      assert.equal(updated.before.rate.text, '1gbit');
      assert.equal(updated.after.rate.text, '2gbit');
      assert.equal(deleted.after, null);
      assert.ok(!Number.isNaN(Date.parse(created.at)));
      const tokens = await call('GET', '/v1/audit?kind=token');
      assert.ok(tokens.body.items.some((ch: { action: string; after: { role: string } }) => ch.action === 'created' && ch.after.role === 'editor'));
      assert.ok(tokens.body.items.every((ch: { after: Record<string, unknown> }) => !('hash' in ch.after)));
      const page = await call('GET', '/v1/audit?limit=2');
      assert.equal(page.body.items.length, 2);
      const next = await call('GET', `/v1/audit?limit=2&before=${page.body.next}`);
      assert.ok(next.body.items[0].revision < page.body.items[1].revision);
      assert.equal((await call('GET', '/v1/audit?kind=host')).status, 400);
    });
  });
});
