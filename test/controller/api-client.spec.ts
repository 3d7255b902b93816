import assert from 'node:assert/strict';
import sinon from 'sinon';
import { firstValueFrom, filter } from 'rxjs';
import { ApiClient, backoffDelay, type Budgets } from '../../controller/api-client/api-client.js';
import { classToJson } from '../../api/contract/class.js';
import { record } from './fixtures.js';
import { startTestApi, request, tokenFor, type TestApi } from '../support/api-server.js';

/** A scripted HTTP layer: each request is answered by the next handler; watch bodies are streams the test writes to. */
class FakeHttp {
  readonly requests: Array<{ method: string; url: string; headers: Record<string, string> }> = [];
  readonly handlers: Array<(url: string) => Response> = [];
  stream?: ReadableStreamDefaultController<Uint8Array>;

  readonly fetch = (async (input: string | URL, init?: RequestInit) => {
    const url = String(input);
    this.requests.push({ method: init?.method ?? 'GET', url, headers: (init?.headers ?? {}) as Record<string, string> });
    const handler = this.handlers.shift();
    if (!handler) throw new TypeError('fetch failed: connection refused');
    return handler(url);
  }) as typeof fetch;

  list(revision: number, classes: ReturnType<typeof record>[]) {
    this.handlers.push(() => Response.json({ revision, items: classes.map(classToJson), next: null }));
  }

  /** A watch response whose body stays open; `send` writes SSE frames into it. */
  watch() {
    this.handlers.push(() => new Response(new ReadableStream<Uint8Array>({ start: (c) => void (this.stream = c) }), { headers: { 'content-type': 'text/event-stream' } }));
  }

  status(code: number) {
    this.handlers.push(() => Response.json({ detail: `status ${code}` }, { status: code }));
  }

  send(frame: string) {
    this.stream!.enqueue(new TextEncoder().encode(frame));
  }

  event(revision: number, action: string, c: ReturnType<typeof record> | null, name = c?.name) {
    this.send(`id: ${revision}\nevent: class\ndata: ${JSON.stringify({ revision, action, name, class: c && classToJson(c) })}\n\n`);
  }
}

describe('ApiClient', () => {
  let clock: sinon.SinonFakeTimers;
  let http: FakeHttp;
  const client = (errors: Error[] = []) =>
    new ApiClient({ baseUrl: 'http://api', token: 't', host: 'h1', fetch: http.fetch, backoff: { minMs: 100, maxMs: 1000 }, random: () => 1, onError: (e) => errors.push(e) });

  beforeEach(() => {
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    http = new FakeHttp();
  });
  afterEach(() => clock.restore());

  const collect = (c: ApiClient) => {
    const seen: Budgets[] = [];
    const sub = c.budgets$().subscribe((b) => seen.push(b));
    return { seen, sub };
  };
  const settle = () => clock.tickAsync(0);
  /** Turns of the event loop (setImmediate is not faked) and a few fake ms: the watch emits what it read. */
  const turn = async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r));
      await clock.tickAsync(20);
    }
  };

  it('lists, watches from the list revision, emits on ready and after changes: once per event-loop turn, with the newest state', async () => {
    http.list(5, [record('a', 1)]);
    http.watch();
    const { seen, sub } = collect(client());
    await settle();
    assert.equal(http.requests[0]!.url, 'http://api/v1/classes?host=h1&limit=1000');
    assert.equal(http.requests[1]!.headers['last-event-id'], '5');
    assert.equal(seen.length, 0, 'nothing before ready');
    http.event(6, 'created', record('b', 2));
    http.send('event: ready\ndata: {"revision":6}\n\n');
    await settle();
    assert.deepEqual(seen.map((b) => [b.revision, b.classes.map((c) => c.name)]), [[6, ['a', 'b']]]);
    http.event(7, 'updated', record('a', 1, { rate: 5_000 }));
    await settle();
    await turn();
    http.event(8, 'deleted', null, 'b');
    await settle();
    await turn();
    assert.deepEqual(seen.slice(1).map((b) => [b.revision, b.classes.map((c) => `${c.name}:${c.rate}`)]), [[7, ['a:5000', 'b:10000000']], [8, ['a:5000']]]);
    // A burst read in one turn is one emission of its newest state, not one per event.
    for (let r = 9; r < 1009; r++) http.event(r, 'created', record(`c${r}`, r));
    await settle();
    await turn();
    assert.deepEqual(seen.slice(3).map((b) => [b.revision, b.classes.length]), [[1008, 1001]]);
    sub.unsubscribe();
  });

  it('after an error, resumes with Last-Event-ID after an exponential backoff', async () => {
    const errors: Error[] = [];
    http.list(5, []);
    http.watch();
    const { seen, sub } = collect(client(errors));
    await settle();
    http.send('event: ready\ndata: {}\n\n');
    http.event(6, 'created', record('b', 2));
    await settle();
    http.stream!.error(new Error('connection reset'));
    http.status(503);
    http.status(503);
    http.watch();
    await settle();
    assert.equal(errors.length, 1);
    await clock.tickAsync(99);
    assert.equal(http.requests.length, 2, 'waits the first backoff (100 ms)');
    await clock.tickAsync(1);
    assert.equal(http.requests.length, 3);
    assert.equal(http.requests[2]!.headers['last-event-id'], '6');
    await clock.tickAsync(199);
    assert.equal(http.requests.length, 3, 'second backoff is 200 ms');
    await clock.tickAsync(1);
    await clock.tickAsync(400);
    assert.equal(http.requests.length, 5, 'third is 400 ms');
    assert.equal(http.requests[4]!.headers['last-event-id'], '6');
    http.send('event: ready\ndata: {}\n\n');
    await settle();
    assert.equal(seen.at(-1)!.revision, 6);
    assert.equal(errors.length, 3);
    sub.unsubscribe();
  });

  it('410 Gone lists again and watches from the new revision', async () => {
    http.list(5, [record('a', 1), record('b', 2)]);
    http.status(410);
    http.list(20, [record('a', 1)]);
    http.watch();
    const { seen, sub } = collect(client());
    await settle();
    await settle();
    assert.equal(http.requests[2]!.url, 'http://api/v1/classes?host=h1&limit=1000');
    assert.equal(http.requests[3]!.headers['last-event-id'], '20');
    http.send('event: ready\ndata: {}\n\n');
    await settle();
    assert.deepEqual(seen.map((b) => [b.revision, b.classes.map((c) => c.name)]), [[20, ['a']]]);
    sub.unsubscribe();
  });

  it('a silent connection (no heartbeat) is dropped and resumed', async () => {
    const errors: Error[] = [];
    http.list(1, []);
    http.watch();
    const c = new ApiClient({ baseUrl: 'http://api', token: 't', host: 'h1', fetch: http.fetch, idleTimeoutMs: 5000, backoff: { minMs: 100, maxMs: 1000 }, random: () => 0, onError: (e) => errors.push(e) });
    const sub = c.budgets$().subscribe();
    await settle();
    await clock.tickAsync(5000);
    assert.match(errors[0]?.message ?? '', /no data from the watch/);
    sub.unsubscribe();
  });

  it('backoff: equal jitter between half and all of min·2^n, capped at max', () => {
    const b = { minMs: 100, maxMs: 1000 };
    assert.equal(backoffDelay(0, b, () => 0), 50);
    assert.equal(backoffDelay(2, b, () => 1), 400);
    assert.equal(backoffDelay(10, b, () => 1), 1000);
    assert.equal(backoffDelay(10, b, () => 0), 500);
  });
});

describe('ApiClient against a real API', () => {
  let api: TestApi;
  before(async () => (api = await startTestApi()));
  after(() => api.close());

  it('registers, sees its classes (and only changes after ready), heartbeats', async () => {
    const token = await tokenFor(api.url, 'agent', 'node-1');
    const c = new ApiClient({ baseUrl: api.url, token, host: 'node-1' });
    await c.register({ zone: 'a' }, 'test');
    assert.equal((await request(api.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '10mbit' } })).status, 201);
    assert.equal((await request(api.url, 'POST', '/v1/classes', { body: { name: 'other', rate: '10mbit', hosts: { matchLabels: { zone: 'b' } } } })).status, 201);
    const budgets = c.budgets$();
    const first = await firstValueFrom(budgets);
    assert.deepEqual(first.classes.map((x) => x.name), ['web']);
    const next = firstValueFrom(budgets.pipe(filter((b) => b.classes.some((x) => x.name === 'db'))));
    await request(api.url, 'POST', '/v1/classes', { body: { name: 'db', rate: '5mbit' } });
    const seen = await next;
    assert.equal(seen.classes.find((x) => x.name === 'db')!.rate, 5_000_000);
    await c.heartbeat({ appliedRevision: seen.revision, mode: 'policing', modeDetail: 'policing (fq unavailable)', classErrors: [], lastError: null });
    const host = await request(api.url, 'GET', '/v1/hosts/node-1');
    assert.equal(host.body.status.appliedRevision, seen.revision);
    assert.deepEqual(host.body.labels, { zone: 'a' });
  });
});
