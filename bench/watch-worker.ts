/**
 * A worker thread of `npm run bench:api`'s fan-out scenario: holds a share of the SSE clients of
 * GET /v1/watch and reports, for each revision, when every one of its clients received it.
 *
 * Times are process.hrtime() in milliseconds (CLOCK_MONOTONIC, the same clock in every thread of
 * the process, so the main thread can subtract its own timestamps). A receipt is stamped when the
 * chunk that completes the event is handed to JavaScript, before parsing.
 */
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { createParser } from 'eventsource-parser';
import { nowMs } from './stats.js';

export interface WatchWorkerData {
  url: string;
  token: string;
  clients: number;
  /** How many connections are opened at once. */
  concurrency: number;
}

export type WatchWorkerMessage =
  | { type: 'ready'; clients: number; openMs: number }
  | { type: 'failed'; error: string }
  | { type: 'got'; revision: number; times: number[]; expected: number }
  | { type: 'lost'; error: string }
  | { type: 'closed' };

if (parentPort) {
  const port = parentPort;
  const { url, token, clients, concurrency } = workerData as WatchWorkerData;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  const requests: http.ClientRequest[] = [];
  /** revision → receipt times of the clients that have it. */
  const received = new Map<number, number[]>();
  let alive = 0;
  let live = false;
  let closing = false;
  const post = (m: WatchWorkerMessage) => port.postMessage(m);

  const complete = (revision: number, times: number[]) => {
    if (times.length >= alive) {
      received.delete(revision);
      post({ type: 'got', revision, times, expected: alive });
    }
  };

  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      let ready = false;
      let lastChunkAt = 0;
      const parser = createParser({
        onEvent(event) {
          if (event.event === 'ready') {
            ready = true;
            resolve();
          } else if (event.event === 'class' && live) {
            const revision = Number(event.id);
            let times = received.get(revision);
            if (!times) received.set(revision, (times = []));
            times.push(lastChunkAt);
            complete(revision, times);
          }
        },
      });
      const req = http.request(`${url}/v1/watch`, {
        agent,
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      });
      requests.push(req);
      const lost = (why: string) => {
        if (!ready) return reject(new Error(why));
        if (closing) return;
        alive--;
        post({ type: 'lost', error: why });
        for (const [revision, times] of received) complete(revision, times);
      };
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET /v1/watch answered ${res.statusCode}`));
          return;
        }
        alive++;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          lastChunkAt = nowMs();
          parser.feed(chunk);
        });
        res.on('close', () => {
          if (ready) lost('the stream closed');
        });
        res.on('error', (err) => lost(err.message));
      });
      req.on('error', (err) => lost(err.message));
      req.end();
    });

  port.on('message', (m: { type: 'close' }) => {
    if (m.type !== 'close') return;
    closing = true;
    for (const req of requests) req.destroy();
    agent.destroy();
    post({ type: 'closed' });
    port.close();
  });

  try {
    const started = nowMs();
    for (let i = 0; i < clients; i += concurrency) {
      await Promise.all(Array.from({ length: Math.min(concurrency, clients - i) }, open));
    }
    live = true;
    post({ type: 'ready', clients: alive, openMs: nowMs() - started });
  } catch (err) {
    post({ type: 'failed', error: (err as Error).message });
  }
}
