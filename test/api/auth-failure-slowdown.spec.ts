/**
 * The failed-login slow-down counts failed authentications and nothing else, over real HTTP on a
 * real SQLite file. What a request counted as and what it was delayed by are read from the headers
 * the API sends for it (RateLimit: r = failures left before delays; Server-Timing: the delay), never
 * from a clock.
 */
import assert from 'node:assert/strict';
import { startTestApi, request, tokenFor, type Reply, type TestApi } from '../support/api-server.js';
import { openSse, type SseStream } from '../support/sse.js';

const FAILURES_BEFORE_SLOWDOWN = 10;

/** What a response says about the slow-down: undefined fields when it was not counted or not delayed. */
function slowdownOf(r: Reply): { remaining?: number; delayMs?: number } {
  const rateLimit = r.headers.get('ratelimit');
  const timing = r.headers.get('server-timing');
  const remaining = rateLimit === null ? undefined : Number(/^"auth-failures";r=(\d+);t=\d+$/.exec(rateLimit)?.[1] ?? NaN);
  const delayMs = timing === null ? undefined : Number(/^auth-failure-delay;dur=(\d+)$/.exec(timing)?.[1] ?? NaN);
  return { remaining, delayMs };
}

describe('failed-authentication slow-down', () => {
  let t: TestApi;
  const streams: SseStream[] = [];
  afterEach(async () => {
    streams.splice(0).forEach((s) => s.close());
    await t?.close();
  });
  const fail = () => request(t.url, 'GET', '/v1/classes', { token: 'pacer_not-a-token' });

  it('20 open watches from one address are not counted: a valid request beside them is neither counted nor delayed', async () => {
    t = await startTestApi({ authFailuresBeforeSlowdown: FAILURES_BEFORE_SLOWDOWN });
    const agent = await tokenFor(t.url, 'agent', 'host-1');
    for (let i = 0; i < 20; i++) {
      const s = await openSse(`${t.url}/v1/watch`, agent);
      streams.push(s);
      assert.equal(s.status, 200);
      await s.waitFor((e) => e.event === 'ready');
    }
    const list = await request(t.url, 'GET', '/v1/classes', { token: agent });
    assert.equal(list.status, 200);
    assert.deepEqual(slowdownOf(list), { remaining: undefined, delayMs: undefined });
    // The first failure from this address is the first thing counted: neither the 20 streams still
    // open nor the list before it are.
    const first = await fail();
    assert.equal(first.status, 401);
    assert.deepEqual(slowdownOf(first), { remaining: FAILURES_BEFORE_SLOWDOWN - 1, delayMs: undefined });
    assert.equal(first.headers.get('ratelimit-policy'), `"auth-failures";q=${FAILURES_BEFORE_SLOWDOWN};w=60`);
  });

  it('every kind of failed authentication counts; beyond the 10th, each waits 250 ms more', async () => {
    t = await startTestApi({ authFailuresBeforeSlowdown: FAILURES_BEFORE_SLOWDOWN });
    const revoked = await request(t.url, 'POST', '/v1/tokens', { body: { name: 'gone', role: 'viewer' } });
    assert.equal((await request(t.url, 'DELETE', `/v1/tokens/${revoked.body.id}`)).status, 200);
    const kinds = [
      () => request(t.url, 'GET', '/v1/classes', { token: null }),
      () => request(t.url, 'GET', '/v1/classes', { token: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
      fail,
      () => request(t.url, 'GET', '/v1/classes', { token: revoked.body.token }),
    ];
    const seen: Array<{ remaining?: number; delayMs?: number }> = [];
    for (let i = 0; i < FAILURES_BEFORE_SLOWDOWN + 2; i++) {
      const r = await kinds[i % kinds.length]!();
      assert.equal(r.status, 401);
      seen.push(slowdownOf(r));
    }
    assert.deepEqual(seen, [
      ...Array.from({ length: FAILURES_BEFORE_SLOWDOWN }, (_, i) => ({ remaining: FAILURES_BEFORE_SLOWDOWN - 1 - i, delayMs: undefined })),
      { remaining: 0, delayMs: 250 },
      { remaining: 0, delayMs: 500 },
    ]);
  });

  it('a valid token from an address being slowed down is answered without delay and does not reset the count', async () => {
    t = await startTestApi({ authFailuresBeforeSlowdown: FAILURES_BEFORE_SLOWDOWN });
    const viewer = await tokenFor(t.url, 'viewer');
    for (let i = 0; i < FAILURES_BEFORE_SLOWDOWN + 1; i++) await fail();
    const ok = await request(t.url, 'GET', '/v1/classes', { token: viewer });
    assert.equal(ok.status, 200);
    assert.deepEqual(slowdownOf(ok), { remaining: undefined, delayMs: undefined });
    // A valid token without the role is a refusal, not a failed authentication.
    const forbidden = await request(t.url, 'POST', '/v1/classes', { token: viewer, body: { name: 'web', rate: '1mbit' } });
    assert.equal(forbidden.status, 403);
    assert.deepEqual(slowdownOf(forbidden), { remaining: undefined, delayMs: undefined });
    // The failures before are still counted: the 12th failure waits as the 12th.
    assert.deepEqual(slowdownOf(await fail()), { remaining: 0, delayMs: 500 });
  });

  it('looks a token up once per request, failed or not', async () => {
    t = await startTestApi({ authFailuresBeforeSlowdown: FAILURES_BEFORE_SLOWDOWN });
    const lookups = async () => {
      const m = await request(t.url, 'GET', '/metrics');
      return Number(/^pacer_api_store_operation_duration_seconds_count\{operation="findToken"\} (\d+)$/m.exec(m.body)?.[1]);
    };
    const before = await lookups();
    assert.equal((await fail()).status, 401);
    assert.equal((await request(t.url, 'GET', '/v1/classes')).status, 200);
    // The failure, the list, and the second /metrics itself.
    assert.equal((await lookups()) - before, 3);
  });
});
