/**
 * Load for the watch stream, shared by its tests and `npm run bench:watch`: history written
 * straight into a store file, clients that connect and never read, the API's RSS, and a /healthz
 * prober that records each answer's latency.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { classCreateSchema, toSpec } from '../../api/contract/class.js';
import { SqliteStore } from '../../api/store/sqlite.js';
import { killed, startApiChild } from './api-process.js';
import { ADMIN_TOKEN, request, startTestApi, type TestApi } from './api-server.js';
import { openSse } from './sse.js';

/** A class body whose watch event is about `bytes` long (the description pads it). */
export function classBody(name: string, bytes = 600): { name: string; rate: string; description: string } {
  return { name, rate: '1mbit', description: 'x'.repeat(Math.max(0, Math.min(1024, bytes - 500))) };
}

/**
 * The n-th of a run of bulky classes: a full description and 64 destination prefixes of its own,
 * so its watch event is about 3 KB and a stalled client's socket buffers fill in fewer changes.
 */
export function bulkyClass(n: number, prefixes = 64): { name: string; rate: string; description: string; match: { dst: string[] } } {
  const dst = Array.from({ length: prefixes }, (_, k) => `fd00:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::${k.toString(16)}/128`);
  return { name: `bulky-${n}`, rate: '1mbit', description: 'x'.repeat(1024), match: { dst } };
}

/** A counter or gauge from the API's /metrics (the sum over its labels; 0 when absent). */
export async function metricValue(url: string, name: string): Promise<number> {
  const text = (await request(url, 'GET', '/metrics')).body as string;
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** An API on a store that already holds `count` class changes (revisions 1..count). */
export async function apiWithHistory(count: number, options: Parameters<typeof startTestApi>[0] = {}): Promise<TestApi> {
  const dir = mkdtempSync(join(tmpdir(), 'pacer-test-'));
  await seedHistory(join(dir, 'pacer.db'), count);
  return startTestApi({ ...options, dir });
}

/** Writes `count` class creations into a store file (one group commit), before an API opens it. */
export async function seedHistory(dbFile: string, count: number, eventBytes = 600): Promise<void> {
  const store = SqliteStore.open(dbFile);
  try {
    await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const body = classBody(`seed-${i}`, eventBytes);
        return store.writeClass(body.name, 'seed', () => toSpec(body.name, classCreateSchema.parse(body)));
      }),
    );
  } finally {
    await store.close();
  }
}

/** A raw connection that asks for the watch and never reads what comes back. */
export function stalledWatcher(url: string, token: string, query = ''): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.pause();
      socket.write(`GET /v1/watch${query} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`);
      resolve(socket);
    });
    socket.on('error', () => {}); // the server cuts it: that is the point
    socket.once('error', reject);
  });
}

/** Resident set size of a process, in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Probes GET /healthz one request at a time, every `everyMs`, until stopped; keeps each latency (ms). */
export function healthProber(url: string, everyMs = 50): { latencies: number[]; failures: string[]; stop(): Promise<void> } {
  const latencies: number[] = [];
  const failures: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = performance.now();
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(30_000) });
        await res.text();
        if (res.status !== 200) failures.push(`status ${res.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      latencies.push(performance.now() - start);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    latencies,
    failures,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Polls `check` until it returns true, or fails after `timeoutMs` with `what()`'s description. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface WatchLoadOptions {
  /** Clients that connect to the watch and never read. */
  stalled: number;
  /** Clients that read every event. */
  readers: number;
  /** Class changes committed while they watch (bulky: ~3 KB events). */
  changes: number;
  /** Writes in flight at once (the store commits each turn's writes together); also how many classes they rewrite. */
  concurrency: number;
  /** `pacer api --watch-slow-bytes`; the API's default when absent. */
  slowClientBytes?: number;
  /** How long to wait for each phase before failing. */
  timeoutMs: number;
}

export interface WatchLoadResult {
  /** /healthz latencies (ms) while the load ran, in order. */
  health: number[];
  healthFailures: string[];
  /** Events each reader received (distinct revisions), and the changes committed. */
  received: number[];
  committed: number;
  slowCuts: number;
  rssStartBytes: number;
  rssPeakBytes: number;
  /** RSS once every stalled client was cut, as V8 left it. */
  rssSettledBytes: number;
  /** RSS after full garbage collections (the API child runs with --expose-gc, SIGUSR2 collects). */
  rssEndBytes: number;
  /**
   * What the API's JavaScript holds (V8 heap used + external buffers, from /metrics) after a full
   * collection, before the writes and after the cuts. Unlike RSS it does not depend on whether
   * the allocator has returned freed pages to the system yet.
   */
  jsStartBytes: number;
  jsEndBytes: number;
  /** The API's heap and external memory at the end, from /metrics. */
  memoryEnd: string[];
  writeSeconds: number;
}

/**
 * The API in its own process, `stalled` clients that never read and `readers` that do, and
 * `changes` class changes: what a fleet with some stuck clients does to the API. The caller asserts.
 */
export async function runWatchLoad(o: WatchLoadOptions): Promise<WatchLoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'pacer-watch-load-'));
  const args = ['--watch-per-token', String(o.stalled + o.readers + 10)];
  if (o.slowClientBytes !== undefined) args.push('--watch-slow-bytes', String(o.slowClientBytes));
  const gcOnSignal = fileURLToPath(new URL('./gc-on-signal.js', import.meta.url));
  const api = await startApiChild(join(dir, 'pacer.db'), 0, args, ['--expose-gc', '--import', gcOnSignal]);
  const pid = api.child.pid!;
  const sockets: Socket[] = [];
  const readers: Awaited<ReturnType<typeof openSse>>[] = [];
  const metric = (name: string) => metricValue(api.url, name);
  let rssPeak = 0;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssOf(pid))), 100);
  const prober = healthProber(api.url);
  try {
    for (let i = 0; i < o.readers; i++) readers.push(await openSse(`${api.url}/v1/watch`, ADMIN_TOKEN));
    await Promise.all(readers.map((r) => r.waitFor((e) => e.event === 'ready', o.timeoutMs)));
    for (let i = 0; i < o.stalled; i++) sockets.push(await stalledWatcher(api.url, ADMIN_TOKEN));
    const open = o.stalled + o.readers;
    await until(async () => (await metric('pacer_api_watch_clients')) === open, o.timeoutMs, () => `fewer than ${open} watch streams registered`);
    const last0 = (await request(api.url, 'GET', '/v1/classes?limit=1')).body.revision as number;
    // The changes rewrite a fixed set of classes, so the API's data does not grow with them and
    // its RSS can be compared before and after.
    const failures: string[] = [];
    const check = (r: { status: number; body: unknown }, want: number) => r.status === want || failures.push(`${r.status} ${JSON.stringify(r.body)}`);
    await Promise.all(Array.from({ length: o.concurrency }, async (_, i) => check(await request(api.url, 'POST', '/v1/classes', { body: bulkyClass(i) }), 201)));
    await Promise.all(readers.map((r) => r.waitFor((e) => e.event === 'class' && e.id === String(last0 + o.concurrency), o.timeoutMs)));
    const jsMemoryAfterGc = async (): Promise<number> => {
      api.child.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 300));
      return (await metric('nodejs_heap_size_used_bytes')) + (await metric('nodejs_external_memory_bytes'));
    };
    const rssStart = rssOf(pid);
    rssPeak = rssStart;
    const jsStart = await jsMemoryAfterGc();


    const start = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, i) => {
        // Each writer rewrites its own class: the weight changes on every write.
        while (next < o.changes) {
          next++;
          const body = { weight: (next % 1000) + 1 };
          check(await request(api.url, 'PATCH', `/v1/classes/${bulkyClass(i).name}`, { body, headers: { 'if-match': '*' } }), 200);
        }
      }),
    );
    const writeSeconds = (performance.now() - start) / 1000;
    if (failures.length) throw new Error(`${failures.length} writes failed, first: ${failures[0]}`);
    const last = (await request(api.url, 'GET', '/v1/classes?limit=1')).body.revision as number;

    await Promise.all(readers.map((r) => r.waitFor((e) => e.event === 'class' && Number(e.id) === last, o.timeoutMs).catch(() => undefined)));
    await until(async () => (await metric('pacer_api_watch_slow_disconnects_total')) >= o.stalled, o.timeoutMs, () => 'not every stalled client was cut').catch(() => undefined);
    const slowCuts = await metric('pacer_api_watch_slow_disconnects_total');
    // What V8 has not yet given back is not kept: the natural figure, then after full collections.
    const rssSettled = rssOf(pid);
    await until(
      () => {
        api.child.kill('SIGUSR2');
        return rssOf(pid) <= rssStart * 1.2;
      },
      5000,
      () => '',
    ).catch(() => undefined);
    const rssEnd = rssOf(pid);
    const jsEnd = await jsMemoryAfterGc();
    const memoryEnd = ((await request(api.url, 'GET', '/metrics')).body as string).split('\n').filter((l) => /^(nodejs_heap_size_(used|total)_bytes|nodejs_external_memory_bytes) /.test(l));
    await prober.stop();
    return {
      health: prober.latencies,
      healthFailures: prober.failures,
      received: readers.map((r) => new Set(r.events.filter((e) => e.event === 'class' && Number(e.id) > last0 + o.concurrency).map((e) => e.id)).size),
      committed: o.changes,
      slowCuts,
      rssStartBytes: rssStart,
      rssPeakBytes: rssPeak,
      rssSettledBytes: rssSettled,
      rssEndBytes: rssEnd,
      jsStartBytes: jsStart,
      jsEndBytes: jsEnd,
      memoryEnd,
      writeSeconds,
    };
  } finally {
    clearInterval(sampler);
    await prober.stop();
    readers.forEach((r) => r.close());
    sockets.forEach((s) => s.destroy());
    await killed(api.child, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
