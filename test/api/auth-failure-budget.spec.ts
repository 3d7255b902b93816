/**
 * The failed-authentication budget across all source addresses: guesses from many loopback
 * addresses, each far below the per-address slow-down, together lock the server out.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApi, request, tokenFor, type TestApi } from '../support/api-server.js';

/** GET /v1/classes with a bearer token, from a chosen local address (127.0.0.x). */
function getFrom(url: string, localAddress: string, token: string): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path: '/v1/classes', localAddress, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const guess = (i: number) => `pacer_guess-${String(i).padStart(40, '0')}`;

describe('failed-authentication budget across addresses', function () {
  this.timeout(20_000);
  let t: TestApi | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('20 failures from 20 addresses lock the server out: tokens in use go on, every other one gets the same 429, a metric says so, and the lock ends with its window', async () => {
    t = await startTestApi({ authFailuresBeforeSlowdown: 10, authFailureBudget: { failures: 20, windowMs: 2_000 } });
    const unused = await tokenFor(t.url, 'viewer'); // valid, but never used before the lock-out
    for (let i = 0; i < 20; i++) assert.equal((await getFrom(t.url, `127.0.0.${i + 2}`, guess(i))).status, 401);

    const refused = await getFrom(t.url, '127.0.0.30', guess(99));
    assert.equal(refused.status, 429);
    assert.match(refused.body.detail, /too many failed authentications on this server \(20 within 2 s, from all addresses\)/);
    assert.match(String(refused.headers['retry-after']), /^\d+$/);
    const correct = await getFrom(t.url, '127.0.0.31', unused);
    assert.equal(correct.status, 429, 'a correct guess is refused like a wrong one');
    assert.deepEqual(correct.body, refused.body);

    assert.equal((await request(t.url, 'GET', '/v1/classes')).status, 200, 'the admin token was in use before: it goes on');
    const metrics = await request(t.url, 'GET', '/metrics');
    assert.match(metrics.body, /^pacer_api_auth_locked_out 1$/m);
    assert.match(metrics.body, /^pacer_api_auth_failures_total 2[1-9]$/m);
    assert.match(metrics.body, /^pacer_api_auth_locked_out_refusals_total 2$/m);

    // The window ends: ask until it has (no clock assumed), then the unused token gets in.
    while ((await getFrom(t.url, '127.0.0.32', unused)).status === 429) await sleep(100);
    assert.equal((await getFrom(t.url, '127.0.0.33', unused)).status, 200);
    assert.match((await request(t.url, 'GET', '/metrics')).body, /^pacer_api_auth_locked_out 0$/m);
  });
});
