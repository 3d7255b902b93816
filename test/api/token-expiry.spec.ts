/**
 * Tokens that expire (issue 11): ttlSeconds at creation, expiresAt in answers, 401 from then on
 * (saying when, and counted as a failed authentication), the token's watch streams end, and the
 * last admin token that never expires stays.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApi, request, type TestApi } from '../support/api-server.js';
import { openSse } from '../support/sse.js';
import { MAX_TTL_SECONDS } from '../../api/contract/token.js';

/** Waits until the clock has passed an ISO time: expiry is real time, and nothing here fakes it. */
async function until(iso: string): Promise<void> {
  while (Date.now() <= Date.parse(iso)) await sleep(Math.max(1, Date.parse(iso) - Date.now() + 1));
}

describe('token expiry', function () {
  this.timeout(20_000);
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);
  const create = (body: object) => call('POST', '/v1/tokens', { body });

  afterEach(async () => {
    await t?.close();
  });

  it('ttlSeconds sets expiresAt that long after createdAt; without it a token, and the first admin, never expire', async () => {
    t = await startTestApi();
    const ci = await create({ name: 'ci', role: 'editor', ttlSeconds: 90 * 86_400 });
    assert.equal(ci.status, 201);
    assert.equal(Date.parse(ci.body.expiresAt) - Date.parse(ci.body.createdAt), 90 * 86_400 * 1000);
    const forever = await create({ name: 'ops', role: 'viewer' });
    assert.equal(forever.body.expiresAt, null);
    const agent = await create({ name: 'web-1', role: 'agent', host: 'web-1', ttlSeconds: MAX_TTL_SECONDS });
    assert.equal(agent.status, 201);

    const listed = new Map((await call('GET', '/v1/tokens')).body.items.map((x: { name: string; expiresAt: string | null }) => [x.name, x.expiresAt]));
    assert.equal(listed.get('ci'), ci.body.expiresAt);
    assert.equal(listed.get('ops'), null);
    assert.equal(listed.get('admin (PACER_ADMIN_TOKEN)'), null);
    assert.equal((await call('GET', '/v1/classes', { token: ci.body.token })).status, 200);
  });

  it('refuses a ttlSeconds that is not a whole number of seconds from 1 to 3650 days, naming the field, and creates nothing', async () => {
    t = await startTestApi();
    const before = (await call('GET', '/v1/tokens')).body.items.length;
    for (const ttlSeconds of [0, -60, 1.5, MAX_TTL_SECONDS + 1, 1e300, '90d', null, true]) {
      const r = await create({ name: 'bad', role: 'viewer', ttlSeconds });
      assert.equal(r.status, 400, `ttlSeconds ${JSON.stringify(ttlSeconds)}`);
      assert.deepEqual(r.body.errors.map((e: { path: string }) => e.path), ['/ttlSeconds']);
      assert.match(r.body.errors[0].message, /ttlSeconds is a whole number of seconds from 1 to 315360000 \(3650 days\).*leave it out for a token that never expires/);
    }
    assert.equal((await call('GET', '/v1/tokens')).body.items.length, before);
  });

  it('an expired token gets 401 saying it expired and when, nothing about other tokens, and counts as a failed authentication', async () => {
    t = await startTestApi({ authFailuresBeforeSlowdown: 5, authFailureBudget: { failures: 3, windowMs: 60_000 } });
    const short = await create({ name: 'short', role: 'viewer', ttlSeconds: 2 });
    assert.equal((await call('GET', '/v1/classes', { token: short.body.token })).status, 200, 'valid until it expires');
    await until(short.body.expiresAt);

    const r = await call('GET', '/v1/classes', { token: short.body.token });
    assert.equal(r.status, 401);
    assert.equal(r.body.detail, `this token (${short.body.id}) expired at ${short.body.expiresAt}: an admin creates a new one with \`pacer token create\` (--ttl to make it expire again)`);
    assert.ok(r.headers.get('ratelimit'), 'the per-address slow-down counted it as a failure');
    assert.equal((await call('GET', '/v1/tokens')).body.items.find((x: { id: string }) => x.id === short.body.id).expiresAt, short.body.expiresAt, 'ls still lists it');

    // Two more failures spend the budget of 3: the lock-out answers an unknown token 429, not 401.
    assert.equal((await call('GET', '/v1/classes', { token: short.body.token })).status, 401);
    assert.equal((await call('GET', '/v1/classes', { token: 'pacer_not-a-token-0000000000000000000' })).status, 401);
    assert.equal((await call('GET', '/v1/classes', { token: 'pacer_not-a-token-1111111111111111111' })).status, 429);
    assert.equal((await call('GET', '/v1/classes', { token: short.body.token })).status, 429, 'an expired token is no token in use');
    assert.equal((await call('GET', '/v1/classes')).status, 200, 'the admin token, in use before, goes on');
  });

  it('a watch stream ends when its token expires, and its reconnection is told why', async () => {
    t = await startTestApi({ watchHeartbeatMs: 50 });
    const short = await create({ name: 'watcher', role: 'viewer', ttlSeconds: 2 });
    const forever = await create({ name: 'watcher-2', role: 'viewer' });
    const expiring = await openSse(`${t.url}/v1/watch`, short.body.token);
    const lasting = await openSse(`${t.url}/v1/watch`, forever.body.token);
    assert.equal(expiring.status, 200);
    await expiring.waitFor((e) => e.event === 'ready');
    await expiring.ended;
    assert.ok(Date.now() >= Date.parse(short.body.expiresAt), 'it ended because it expired');
    const again = await call('GET', '/v1/watch', { token: short.body.token });
    assert.equal(again.status, 401);
    assert.match(again.body.detail, /expired at/);
    // The other token's stream goes on: its heartbeats keep coming after the expiry.
    const seen = lasting.comments.length;
    await lasting.waitForComment(() => lasting.comments.length > seen);
    lasting.close();
  });

  it('an admin token that expires may be revoked; the last admin token that never expires may not', async () => {
    t = await startTestApi();
    const temporary = await create({ name: 'temp admin', role: 'admin', ttlSeconds: 3600 });
    const first = (await call('GET', '/v1/tokens')).body.items.find((x: { name: string }) => x.name === 'admin (PACER_ADMIN_TOKEN)');
    const refused = await call('DELETE', `/v1/tokens/${first.id}`, { token: temporary.body.token });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.detail, 'this is the last active admin token that never expires; create another admin token without a ttl before revoking it');
    assert.equal((await call('DELETE', `/v1/tokens/${temporary.body.id}`)).status, 200);

    const lasting = await create({ name: 'second admin', role: 'admin' });
    assert.equal((await call('DELETE', `/v1/tokens/${first.id}`, { token: lasting.body.token })).status, 200);
  });
});
