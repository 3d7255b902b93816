/**
 * Header, request and keep-alive timeouts and the connection cap, on a real server over real
 * sockets. The tests wait for the server to act; they assert what it did, never how fast.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApi, request, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';
import { openSse, type SseStream } from '../support/sse.js';

interface RawConnection {
  socket: Socket;
  /** Everything the server sent so far. */
  received(): string;
  closed: Promise<void>;
}

/** Every socket a test opened, destroyed after it. */
const sockets: Socket[] = [];
/** Small enough for a test to wait for; the headers timeout well below the request timeout. */
const SHORT_TIMEOUTS = { headersTimeoutMs: 250, requestTimeoutMs: 1_000 };

async function open(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  sockets.push(socket);
  let data = '';
  socket.on('data', (chunk) => (data += chunk.toString('latin1')));
  socket.on('error', () => {}); // a refused connection is reset; `closed` reports it
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed };
}

/** Sends GET /healthz on a kept-alive connection and waits for its whole answer. */
async function healthz(c: RawConnection): Promise<string> {
  const start = c.received().length;
  c.socket.write('GET /healthz HTTP/1.1\r\nHost: pacer\r\n\r\n');
  while (!c.received().slice(start).includes('{"status":"ok"}')) {
    if (c.socket.destroyed) throw new Error(`connection closed; got ${JSON.stringify(c.received().slice(start))}`);
    await sleep(10);
  }
  return c.received().slice(start);
}

describe('connection limits', function () {
  this.timeout(20_000);
  let t: TestApi | undefined;
  let stream: SseStream | undefined;
  afterEach(async () => {
    stream?.close();
    sockets.splice(0).forEach((s) => s.destroy());
    await t?.close();
    t = undefined;
  });

  it('a client that sends its headers and then dribbles the body is answered 408 and cut after the request timeout', async () => {
    t = await startTestApi({ limits: SHORT_TIMEOUTS });
    const c = await open(t.url);
    c.socket.write(
      `POST /v1/classes HTTP/1.1\r\nHost: pacer\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"name":"`,
    );
    let closed = false;
    void c.closed.then(() => (closed = true));
    while (!closed) {
      c.socket.write('a'); // one byte per 100 ms: the body never completes on its own
      await sleep(100);
    }
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
    assert.equal((await request(t.url, 'GET', '/v1/classes')).body.items.length, 0);
  });

  it('a client that never finishes its headers is cut after the headers timeout', async () => {
    t = await startTestApi({ limits: SHORT_TIMEOUTS });
    const c = await open(t.url);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: pacer\r\n');
    await c.closed;
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
  });

  it('an open watch stream outlives the request timeout and still delivers changes', async () => {
    t = await startTestApi({ limits: SHORT_TIMEOUTS });
    stream = await openSse(`${t.url}/v1/watch`, ADMIN_TOKEN);
    await stream.waitFor((e) => e.event === 'ready');
    await sleep(3_000); // three request timeouts, and many of Node's checks of them
    assert.equal((await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1mbit' } })).status, 201);
    const change = await stream.waitFor((e) => e.event === 'class');
    assert.equal(JSON.parse(change.data).name, 'web');
  });

  it('connections beyond the cap are closed on arrival while the earlier ones keep working', async () => {
    t = await startTestApi({ limits: { maxConnections: 3, keepAliveTimeoutMs: 60_000 } });
    const kept: RawConnection[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await open(t.url);
        assert.match(await healthz(c), /^HTTP\/1\.1 200 /);
      kept.push(c);
    }
    const extra = await open(t.url);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: pacer\r\n\r\n');
    await extra.closed;
    assert.equal(extra.received(), '', 'the connection over the cap got no answer');
    for (const c of kept) assert.match(await healthz(c), /^HTTP\/1\.1 200 /);
    kept[0]!.socket.destroy();
    await kept[0]!.closed;
    // The server counts the closed connection down when it sees the close; ask until it has.
    for (;;) {
      const next = await open(t.url);
      try {
        assert.match(await healthz(next), /^HTTP\/1\.1 200 /);
        break;
      } catch {
        await sleep(20);
      }
    }
  });
});
