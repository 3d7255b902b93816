import assert from 'node:assert/strict';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

describe('optimistic concurrency', () => {
  let t: TestApi;
  before(async () => {
    t = await startTestApi();
  });
  after(async () => {
    await t.close();
  });

  for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
    it(`two writers with the same ETag (${method} vs PATCH): exactly one wins, the other gets 412`, async () => {
      const name = `race-${method.toLowerCase()}`;
      await request(t.url, 'POST', '/v1/classes', { body: { name, rate: '1mbit' } });
      for (let round = 0; round < 20; round++) {
        const current = (await request(t.url, 'GET', `/v1/classes/${name}`)).body;
        const [a, b] = await Promise.all([
          request(t.url, method, `/v1/classes/${name}`, {
            headers: { 'if-match': current.etag },
            ...(method === 'DELETE' ? {} : { body: { rate: '2mbit' } }),
          }),
          request(t.url, 'PATCH', `/v1/classes/${name}`, { headers: { 'if-match': current.etag }, body: { rate: `${3 + round}mbit` } }),
        ]);
        const statuses = [a.status, b.status].sort();
        assert.deepEqual(statuses, method === 'DELETE' ? [a.status === 204 ? 204 : 200, 412].sort() : [200, 412], `round ${round}: ${statuses}`);
        if (method === 'DELETE' && a.status === 204) assert.match(b.body.detail, /does not exist|changed/);
        if (method === 'DELETE' && a.status === 204) break;
      }
    });
  }

  it('concurrent writes share group commits, and each is acknowledged', async () => {
    const count = (metrics: string, op: string) => Number(new RegExp(`pacer_api_store_operation_duration_seconds_count\\{operation="${op}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    const before = (await request(t.url, 'GET', '/metrics')).body as string;
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => request(t.url, 'POST', '/v1/classes', { body: { name: `group-${i}`, rate: '1mbit' } })));
    assert.ok(replies.every((r) => r.status === 201));
    const after = (await request(t.url, 'GET', '/metrics')).body as string;
    const writes = count(after, 'writeClass') - count(before, 'writeClass');
    const commits = count(after, 'commit') - count(before, 'commit');
    assert.equal(writes, 40);
    assert.ok(commits < writes, `${commits} commits for ${writes} writes`);
  });

  it('many concurrent creates of one name: exactly one 201', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => request(t.url, 'POST', '/v1/classes', { body: { name: 'once', rate: '1mbit' } })));
    assert.equal(replies.filter((r) => r.status === 201).length, 1);
    assert.equal(replies.filter((r) => r.status === 409).length, 19);
  });

  it('concurrent creates claiming one selector: exactly one wins', async () => {
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => request(t.url, 'POST', '/v1/classes', { body: { name: `sel-${i}`, rate: '1mbit', match: { dst: ['192.0.2.0/24'] } } })),
    );
    assert.equal(replies.filter((r) => r.status === 201).length, 1);
  });
});
