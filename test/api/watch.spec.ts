import assert from 'node:assert/strict';
import { startTestApi, request, ADMIN_TOKEN, tokenFor, type TestApi } from '../support/api-server.js';
import { openSse, type SseStream } from '../support/sse.js';
import { apiWithHistory, bulkyClass, metricValue as metric, stalledWatcher, until } from '../support/watch-load.js';
import type { Socket } from 'node:net';

describe('GET /v1/watch (Server-Sent Events)', () => {
  let t: TestApi;
  const streams: SseStream[] = [];
  const watch = async (query = '', headers: Record<string, string> = {}, token = ADMIN_TOKEN) => {
    const s = await openSse(`${t.url}/v1/watch${query}`, token, headers);
    streams.push(s);
    return s;
  };
  const create = (name: string) => request(t.url, 'POST', '/v1/classes', { body: { name, rate: '1mbit' } });
  const classEvents = (s: SseStream) => s.events.filter((e) => e.event === 'class').map((e) => JSON.parse(e.data));

  const sockets: Socket[] = [];
  afterEach(async () => {
    streams.splice(0).forEach((s) => s.close());
    sockets.splice(0).forEach((s) => s.destroy());
    await t.close();
  });

  it('streams every change after ?since= in order, then says ready, then goes live', async () => {
    t = await startTestApi();
    const first = (await create('a')).body.revision as number;
    await create('b');
    const c = (await create('c')).body;
    await request(t.url, 'PATCH', '/v1/classes/c', { body: { rate: '2mbit' }, headers: { 'if-match': c.etag } });
    const s = await watch(`?since=${first - 1}`);
    assert.equal(s.status, 200);
    const ready = await s.waitFor((e) => e.event === 'ready');
    const replayed = classEvents(s);
    assert.deepEqual(replayed.map((e) => [e.action, e.name]), [['created', 'a'], ['created', 'b'], ['created', 'c'], ['updated', 'c']]);
    assert.deepEqual(s.events.filter((e) => e.event === 'class').map((e) => Number(e.id)), replayed.map((e) => e.revision));
    assert.equal(JSON.parse(ready.data).revision, replayed[3].revision);
    assert.equal(replayed[3].class.rate.text, '2mbit');
    const del = await request(t.url, 'DELETE', '/v1/classes/a', { headers: { 'if-match': '*' } });
    assert.equal(del.status, 204);
    const live = await s.waitFor((e) => e.event === 'class' && JSON.parse(e.data).action === 'deleted');
    assert.deepEqual(JSON.parse(live.data).class, null);
    assert.equal(JSON.parse(live.data).name, 'a');
  });

  it('without a revision, sends only changes from now on', async () => {
    t = await startTestApi();
    await create('old');
    const s = await watch();
    await s.waitFor((e) => e.event === 'ready');
    await create('new');
    await s.waitFor((e) => e.event === 'class');
    assert.deepEqual(classEvents(s).map((e) => e.name), ['new']);
  });

  it('a client that disconnects and resumes with Last-Event-ID gets exactly what it missed, in order', async () => {
    t = await startTestApi();
    const s1 = await watch('?since=0');
    await s1.waitFor((e) => e.event === 'ready');
    for (const n of ['a', 'b']) await create(n);
    await s1.waitFor((e) => e.event === 'class' && JSON.parse(e.data).name === 'b');
    const lastId = s1.events.filter((e) => e.event === 'class').at(-1)!.id!;
    s1.close();
    for (const n of ['c', 'd', 'e']) await create(n);
    const s2 = await watch('', { 'last-event-id': lastId });
    await s2.waitFor((e) => e.event === 'ready');
    await create('f');
    await s2.waitFor((e) => e.event === 'class' && JSON.parse(e.data).name === 'f');
    assert.deepEqual(classEvents(s2).map((e) => e.name), ['c', 'd', 'e', 'f']);
    const revisions = classEvents(s2).map((e) => e.revision);
    assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y));
    assert.ok(revisions[0] > Number(lastId));
  });

  it('does not lose or repeat changes committed while it replays history', async () => {
    t = await startTestApi();
    for (let i = 0; i < 50; i++) await create(`pre-${i}`);
    const writes = (async () => {
      for (let i = 0; i < 50; i++) await create(`during-${i}`);
    })();
    const s = await watch('?since=0');
    await writes;
    await s.waitFor((e) => e.event === 'class' && JSON.parse(e.data).name === 'during-49');
    const revisions = classEvents(s).map((e) => e.revision);
    assert.equal(revisions.length, 100);
    assert.equal(new Set(revisions).size, 100);
    assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y));
  });

  it('answers 410 Gone for a revision older than the kept history, and for one the store never had', async () => {
    t = await startTestApi({ historyLimit: 10 });
    for (let i = 0; i < 300; i++) await create(`c${i}`);
    let r = await request(t.url, 'GET', '/v1/watch?since=1');
    assert.equal(r.status, 410);
    assert.match(r.body.detail, /list the classes again/);
    r = await request(t.url, 'GET', '/v1/watch?since=99999');
    assert.equal(r.status, 410);
    r = await request(t.url, 'GET', '/v1/watch?since=-1');
    assert.equal(r.status, 400);
    // A recent revision still resumes.
    const latest = (await request(t.url, 'GET', '/v1/classes?limit=1')).body.revision;
    const s = await watch(`?since=${latest - 3}`);
    await s.waitFor((e) => e.event === 'ready');
    assert.equal(classEvents(s).length, 3);
  });

  it('sends a heartbeat comment while idle', async () => {
    t = await startTestApi({ watchHeartbeatMs: 100 });
    const s = await watch();
    const beat = await s.waitForComment((c) => c.startsWith(' heartbeat') || c.startsWith('heartbeat'), 3000);
    assert.match(beat, /heartbeat \d+/);
  });

  it('is readable by agents and needs a token', async () => {
    t = await startTestApi();
    const agent = await tokenFor(t.url, 'agent', 'h1');
    const s = await watch('', {}, agent);
    assert.equal(s.status, 200);
    const r = await request(t.url, 'GET', '/v1/watch', { token: null });
    assert.equal(r.status, 401);
  });

  it('ends the open streams of a token when it is revoked, and sends them nothing after', async () => {
    t = await startTestApi();
    const created = await request(t.url, 'POST', '/v1/tokens', { body: { name: 'dashboard', role: 'viewer' } });
    const s = await watch('', {}, created.body.token);
    await s.waitFor((e) => e.event === 'ready');
    const other = await watch();
    await other.waitFor((e) => e.event === 'ready');
    assert.equal((await request(t.url, 'DELETE', `/v1/tokens/${created.body.id}`)).status, 200);
    const ended = await Promise.race([s.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
    assert.ok(ended, 'the revoked token\'s stream was still open 5 s after the revocation');
    await create('after-revoke');
    await other.waitFor((e) => e.event === 'class');
    assert.deepEqual(classEvents(s), []);
    assert.equal((await request(t.url, 'GET', '/v1/watch', { token: created.body.token })).status, 401);
  });

  it('replays from any kept revision: 10,004 changes, ?since=2000 gets the 8,004 after it, then ready', async function () {
    this.timeout(60_000);
    t = await apiWithHistory(10_004);
    const s = await watch('?since=2000');
    assert.equal(s.status, 200);
    const ready = await s.waitFor((e) => e.event === 'ready', 30_000);
    const revisions = classEvents(s).map((e) => e.revision);
    assert.equal(revisions.length, 8004);
    assert.equal(revisions[0], 2001);
    assert.equal(revisions.at(-1), 10_004);
    assert.ok(revisions.every((r, i) => i === 0 || r === revisions[i - 1] + 1), 'revisions out of order or missing');
    assert.equal(JSON.parse(ready.data).revision, 10_004);
  });

  it('a client catching up on history far larger than the slow-client limit is paced, not cut', async function () {
    this.timeout(30_000);
    // 1,500 events of ~600 bytes are ~900 KB, 14 times the limit.
    t = await apiWithHistory(1500, { watchLimits: { slowClientBytes: 64 * 1024 } });
    const s = await watch('?since=0');
    await s.waitFor((e) => e.event === 'ready', 20_000);
    assert.equal(classEvents(s).length, 1500);
    assert.equal(await metric(t.url, 'pacer_api_watch_slow_disconnects_total'), 0);
  });

  it('cuts a client that stops reading once, while the others get every change', async function () {
    this.timeout(30_000);
    // The limit is well above one batch of writes (100 events of ~3 KB), so a reader never trips it.
    t = await startTestApi({ watchLimits: { slowClientBytes: 1024 * 1024 } });
    const reader = await watch('?since=0');
    await reader.waitFor((e) => e.event === 'ready');
    sockets.push(await stalledWatcher(t.url, ADMIN_TOKEN));
    await until(async () => (await metric(t.url, 'pacer_api_watch_clients')) === 2, 5000, () => 'the stalled watcher never registered');
    // Enough changes to fill the kernel's socket buffers and then the limit, several times over.
    let n = 0;
    while ((await metric(t.url, 'pacer_api_watch_slow_disconnects_total')) === 0) {
      assert.ok(n < 20_000, `the stalled client was not cut after ${n} changes`);
      await Promise.all(Array.from({ length: 100 }, () => request(t.url, 'POST', '/v1/classes', { body: bulkyClass(n++) })));
    }
    await Promise.all(Array.from({ length: 200 }, (_, i) => create(`after-${i}`)));
    assert.equal(await metric(t.url, 'pacer_api_watch_slow_disconnects_total'), 1);
    assert.equal(await metric(t.url, 'pacer_api_watch_clients'), 1);
    await reader.waitFor((e) => e.event === 'class' && JSON.parse(e.data).name === 'after-199', 20_000);
    const names = classEvents(reader).map((e) => e.name);
    assert.equal(names.length, n + 200);
    assert.equal(new Set(names).size, n + 200);
  });

  it('caps open streams per token (429) and in total (503), with problem+json', async () => {
    t = await startTestApi({ watchLimits: { perToken: 2, total: 3 } });
    const viewer = await tokenFor(t.url, 'viewer');
    const first = await watch('', {}, viewer);
    await watch('', {}, viewer);
    let r = await request(t.url, 'GET', '/v1/watch', { token: viewer });
    assert.equal(r.status, 429);
    assert.match(r.headers.get('content-type')!, /application\/problem\+json/);
    assert.match(r.body.detail, /2 open watch streams/);
    assert.ok(r.headers.get('retry-after'));
    await watch();
    r = await request(t.url, 'GET', '/v1/watch', { token: await tokenFor(t.url, 'editor') });
    assert.equal(r.status, 503);
    assert.match(r.headers.get('content-type')!, /application\/problem\+json/);
    assert.match(r.body.detail, /3 watch streams/);
    // A closed stream frees its place.
    first.close();
    let again: SseStream | undefined;
    await until(
      async () => {
        again?.close();
        again = await watch('', {}, viewer);
        return again.status === 200;
      },
      5000,
      () => `a new stream of the token is still refused with ${again?.status} after one was closed`,
    );
  });
});
