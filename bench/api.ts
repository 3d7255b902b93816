/**
 * `npm run bench:api`: what the API sustains, next to the ceiling of its framework.
 *
 * Three processes share the machine: this one (the load generator, autocannon, and the SSE
 * clients in worker threads), a bare Express 5 app (the ceiling) and the real API on a temporary
 * SQLite file, each server in its own child process.
 *
 *   ceiling   GET /hello on the bare Express app
 *   reads     GET /v1/classes/:name, random names out of the seeded classes, bearer token
 *   writes    PUT /v1/classes/:name with If-Match; a class is written by one connection at a time
 *             and its ETag is taken from each answer, so every If-Match is current (any non-2xx
 *             makes the result invalid)
 *   fan-out   N SSE clients on /v1/watch; PUTs one at a time; from each PUT's answer until every
 *             client has the event with that revision
 *
 * The load scenarios run interleaved (ceiling, reads, writes; ceiling, reads, writes; ...) so a
 * noisy neighbour hits them alike; each figure is the median of the runs, with the spread.
 *
 * Options: --duration 10 (s per run), --runs 3, --warmup 2 (s), --connections 50, --classes 1000,
 * --clients 1000, --puts 50, --watch-workers 2, --only ceiling,reads,writes,fanout,
 * --cpu-prof (profile the API child into bench/results/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import autocannon from 'autocannon';
import { median, nowMs, percentile, round } from './stats.js';
import type { WatchWorkerData, WatchWorkerMessage } from './watch-worker.js';

const TOKEN = 'pacer-bench-admin-token-0123456789abcdef';
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const resultsDir = fileURLToPath(new URL('../../bench/results/', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Options

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    classes: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '1000' },
    puts: { type: 'string', default: '50' },
    'watch-workers': { type: 'string', default: '2' },
    only: { type: 'string', default: 'ceiling,reads,writes,fanout' },
    'cpu-prof': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (argv.help) {
  process.stdout.write(
    'usage: npm run bench:api -- [--duration 10] [--runs 3] [--warmup 2] [--connections 50] [--classes 1000]\n' +
      '                           [--clients 1000] [--puts 50] [--watch-workers 2] [--only ceiling,reads,writes,fanout] [--cpu-prof]\n',
  );
  process.exit(0);
}

function int(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} must be an integer ≥ ${min}, got ${value}\n`);
    process.exit(2);
  }
  return n;
}

const opts = {
  duration: int('duration', argv.duration, 1),
  runs: int('runs', argv.runs, 1),
  warmup: int('warmup', argv.warmup, 0),
  connections: int('connections', argv.connections, 1),
  classes: int('classes', argv.classes, 2),
  clients: int('clients', argv.clients, 1),
  puts: int('puts', argv.puts, 1),
  watchWorkers: int('watch-workers', argv['watch-workers'], 1),
  only: new Set(argv.only.split(',').map((s) => s.trim())),
  cpuProf: argv['cpu-prof'],
};
for (const s of opts.only) {
  if (!['ceiling', 'reads', 'writes', 'fanout'].includes(s)) {
    process.stderr.write(`--only: unknown scenario ${s}\n`);
    process.exit(2);
  }
}
// Class 0 is the fan-out's; the writers need one class per connection at least, and slack.
if (opts.only.has('writes') && opts.classes < 2 * opts.connections + 1) {
  process.stderr.write(`--classes must be at least 2 × --connections + 1 for the writes scenario\n`);
  process.exit(2);
}

const TARGETS = { readsRatio: 0.5, writesPerSec: 2_000, fanoutP99Ms: 100 };

// ---------------------------------------------------------------------------------------------
// Cleanup: children and temporary directories go away on success, error, Ctrl-C and SIGTERM.

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const workers = new Set<Worker>();
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
/** Set once we stop on purpose: children exiting then is expected (Ctrl-C reaches them too). */
let shuttingDown = false;

function cleanup(): Promise<void> {
  shuttingDown = true;
  return (cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup: ${String(err)}\n`);
      }
    }
  })());
}

/** Last resort, synchronous: whatever the async cleanup did not get to. */
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    shuttingDown = true;
    process.stderr.write(`\n${signal}: stopping the servers and removing the temporary files\n`);
    const force = setTimeout(() => process.exit(code), 8_000);
    force.unref();
    void cleanup().finally(() => process.exit(code));
  });
}

function makeTempDir(): string {
  const dir = mkdtempSync(join(os.tmpdir(), 'pacer-bench-'));
  tempDirs.add(dir);
  cleanups.push(async () => {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  });
  return dir;
}

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
}

/** Starts a server entry of bench/ in its own Node process and waits for the URL it prints. */
async function startServer(name: string, script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, [...nodeArgs, here(script)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  children.add(child);
  let stopping = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin?.end();
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    children.delete(child);
  });
  child.once('exit', (code, signal) => {
    if (!stopping && !shuttingDown) {
      process.stderr.write(`${name} exited unexpectedly (${signal ?? `code ${code}`}); aborting\n`);
      void cleanup().finally(() => process.exit(1));
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not print its URL within 30 s`)), 30_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffer += chunk;
      const line = buffer.split('\n').find((l) => l.startsWith('http://'));
      if (line) {
        clearTimeout(timer);
        resolve(line.trim());
      }
    });
    child.once('exit', () => reject(new Error(`${name} exited before listening`)));
  });
  return { name, url, child };
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP for setup and the fan-out's PUTs (timed at the last byte of the answer).

/**
 * Setup, scrapes and re-reads use a connection each: an idle keep-alive socket can be closed by the
 * server (keepAliveTimeout 5 s) just as it is reused, which fails the request with ECONNRESET.
 * The fan-out's PUTs, a steady stream, keep one connection alive.
 */
const freshAgent = new http.Agent({ keepAlive: false, maxSockets: 16 });
const putAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: any;
  /** nowMs() when the answer's last byte was read. */
  at: number;
}

function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, agent: http.Agent = freshAgent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      `${base}${path}`,
      {
        method,
        agent,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const at = nowMs();
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          if ((res.headers['content-type'] ?? '').includes('json') && text) parsed = JSON.parse(text);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, at });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** The API's Prometheus metrics, one entry per series (`name{labels}` → value). */
async function scrape(base: string): Promise<Map<string, number>> {
  const r = await call(base, 'GET', '/metrics');
  const series = new Map<string, number>();
  for (const line of String(r.body).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) series.set(m[1]!, Number(m[2]));
  }
  return series;
}

/** Sum of the series whose key matches, after minus before. */
function delta(before: Map<string, number>, after: Map<string, number>, match: RegExp): number {
  let sum = 0;
  for (const [k, v] of after) if (match.test(k)) sum += v - (before.get(k) ?? 0);
  return sum;
}

/** What the API's own metrics say about one run: store timings, GC, slow commits. */
interface ServerSide {
  writeClassCount: number;
  writeClassMs: number;
  /** writeClass calls (commit + fsync) that took over 5 ms. */
  writeClassOver5ms: number;
  findTokenMs: number;
  gcMs: number;
}

function serverSide(before: Map<string, number>, after: Map<string, number>): ServerSide {
  const op = (name: string, what: 'sum' | 'count') => delta(before, after, new RegExp(`^pacer_api_store_operation_duration_seconds_${what}\\{operation="${name}"\\}$`));
  const count = op('writeClass', 'count');
  const under5 = delta(before, after, /^pacer_api_store_operation_duration_seconds_bucket\{le="0\.005",operation="writeClass"\}$/);
  const tokens = op('findToken', 'count');
  return {
    writeClassCount: count,
    writeClassMs: count ? round((op('writeClass', 'sum') / count) * 1000, 3) : NaN,
    writeClassOver5ms: count - under5,
    findTokenMs: tokens ? round((op('findToken', 'sum') / tokens) * 1000, 4) : NaN,
    gcMs: round(delta(before, after, /^nodejs_gc_duration_seconds_sum\{/) * 1000, 0),
  };
}

/** CPU seconds (user + system) a process has used, from /proc (Linux; NaN elsewhere). */
function cpuSecondsOf(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
/** USER_HZ: 100 on every mainstream Linux build. */
const CLOCK_TICKS = 100;

// ---------------------------------------------------------------------------------------------
// The classes: each with its own /32, so no two select the same prefix.

const names = Array.from({ length: opts.classes }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
const dstOf = (i: number) => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
/** The current ETag of each class, as the API last answered it. */
const etags: string[] = new Array<string>(opts.classes).fill('');
let writeSeq = 0;
const specFor = (i: number) => ({
  description: `bench write ${++writeSeq}`,
  rate: `${10 + (writeSeq % 90)}mbit`,
  ceil: '1gbit',
  match: { dst: [dstOf(i)] },
});

async function seed(base: string): Promise<void> {
  const started = nowMs();
  await pool(
    names.map((_, i) => i),
    8,
    async (i) => {
      const r = await call(base, 'POST', '/v1/classes', { name: names[i], ...specFor(i) });
      if (r.status !== 201) throw new Error(`seeding ${names[i]}: ${r.status} ${JSON.stringify(r.body)}`);
      etags[i] = r.body.etag as string;
    },
  );
  log(`seeded ${opts.classes} classes in ${round((nowMs() - started) / 1000, 1)} s`);
}

// ---------------------------------------------------------------------------------------------
// Load scenarios (autocannon in this process)

interface RunStats {
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  seconds: number;
  statusCodes: Record<string, number>;
  /** CPU of the server child over the run, % of one core. */
  serverCpuPct: number;
  /** CPU of this process (autocannon) over the run, % of one core. */
  loadgenCpuPct: number;
  /** From the API's /metrics (real API only). */
  api?: ServerSide & { gcPct: number };
}

async function cannon(title: string, url: string, duration: number, extra: Partial<autocannon.Options>, server?: Server, apiBase?: string): Promise<RunStats> {
  const before = apiBase ? await scrape(apiBase) : undefined;
  const cpu0 = cpuSecondsOf(server?.child.pid);
  const self0 = process.cpuUsage();
  const t0 = nowMs();
  const r = await autocannon({ title, url, connections: opts.connections, pipelining: 1, duration, timeout: 10, ...extra });
  const wall = (nowMs() - t0) / 1000;
  const serverCpuPct = round(((cpuSecondsOf(server?.child.pid) - cpu0) / wall) * 100, 0);
  const self = process.cpuUsage(self0);
  const loadgenCpuPct = round(((self.user + self.system) / 1e6 / wall) * 100, 0);
  let api: RunStats['api'];
  if (before && apiBase) {
    const side = serverSide(before, await scrape(apiBase));
    api = { ...side, gcPct: round((side.gcMs / 1000 / wall) * 100, 1) };
  }
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = v.count ?? 0;
  return {
    serverCpuPct,
    loadgenCpuPct,
    api,
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    seconds: r.duration,
    statusCodes,
  };
}

const auth = { authorization: `Bearer ${TOKEN}` };

function readRequest(): autocannon.Request {
  return {
    method: 'GET',
    setupRequest: (req) => {
      req.path = `/v1/classes/${names[randomInt(opts.classes)]}`;
      return req;
    },
  };
}

/**
 * PUT with If-Match. A connection takes a class off the free queue for each request and gives it
 * back with the new ETag when the answer arrives, so no two connections ever write the same class
 * at once and every If-Match is current. (autocannon keeps a request's context from setupRequest
 * to its onResponse.) A class whose answer never came (the run ended in flight) or was not 2xx
 * is re-read before the next run.
 */
const writer = {
  free: [] as number[],
  leased: new Set<number>(),
  stale: new Set<number>(),
  failures: [] as string[],
  request(): autocannon.Request {
    return {
      method: 'PUT',
      setupRequest: (req, context) => {
        const i = writer.free.shift();
        if (i === undefined) throw new Error('writes: no free class left (raise --classes)');
        writer.leased.add(i);
        (context as { i?: number }).i = i;
        req.path = `/v1/classes/${names[i]}`;
        req.headers = { ...req.headers, 'content-type': 'application/json', 'if-match': etags[i]! };
        req.body = JSON.stringify(specFor(i));
        return req;
      },
      onResponse: (status, body, context, headers) => {
        const i = (context as { i?: number }).i;
        if (i === undefined) return;
        writer.leased.delete(i);
        const etag = headerValue(headers, 'etag') ?? etagInBody(body);
        if (status >= 200 && status < 300 && etag) {
          etags[i] = etag;
          writer.free.push(i);
        } else {
          writer.stale.add(i);
          if (writer.failures.length < 5) writer.failures.push(`${status} ${body.slice(0, 300)}`);
        }
      },
    };
  },
  /** Re-reads the ETag of every class whose write did not come back 2xx. */
  async resync(base: string): Promise<number> {
    // When autocannon stops, the API may still be working through the PUTs it had queued: wait
    // until its commit count stops moving, or a re-read could see an ETag about to change.
    let commits = -1;
    for (let i = 0; i < 100; i++) {
      const now = (await scrape(base)).get('pacer_api_store_operation_duration_seconds_count{operation="writeClass"}') ?? 0;
      if (now === commits) break;
      commits = now;
      await sleep(250);
    }
    const lost = [...writer.leased, ...writer.stale];
    writer.leased.clear();
    writer.stale.clear();
    await pool(lost, 8, async (i) => {
      const r = await call(base, 'GET', `/v1/classes/${names[i]}`);
      if (r.status !== 200) throw new Error(`resync ${names[i]}: ${r.status}`);
      etags[i] = r.body.etag as string;
      writer.free.push(i);
    });
    return lost.length;
  },
};

/** The body's "etag" field, should the header be missing. */
function etagInBody(body: string): string | undefined {
  try {
    const etag = (JSON.parse(body) as { etag?: unknown }).etag;
    return typeof etag === 'string' ? etag : undefined;
  } catch {
    return undefined;
  }
}

function headerValue(headers: autocannon.Request['headers'], name: string): string | undefined {
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Fan-out

interface FanoutResult {
  clients: number;
  workers: number;
  openSeconds: number;
  puts: number;
  /** (PUT × client) latencies from the PUT's answer, ms. */
  all: { p50: number; p99: number; max: number; count: number; beforeAnswer: number };
  /** Per PUT, from its answer until the last client had the event, ms. */
  last: { p50: number; p99: number; max: number };
  /** (PUT × client) latencies from sending the PUT, ms. */
  allFromSend: { p50: number; p99: number };
  /** Per PUT, from sending it until the last client had the event, ms. */
  lastFromSend: { p50: number; p99: number };
  /** CPU over the PUT phase, % of one core: the API child, and this process (PUTs + SSE clients). */
  serverCpuPct: number;
  clientCpuPct: number;
  putLatency: { p50: number; p99: number };
  missing: number;
  lost: number;
}

const FANOUT_WARMUP_PUTS = 5;

async function fanout(base: string, server: Server): Promise<FanoutResult> {
  const perWorker = Array.from({ length: opts.watchWorkers }, (_, w) => Math.floor(opts.clients / opts.watchWorkers) + (w < opts.clients % opts.watchWorkers ? 1 : 0));
  const waiting = new Map<number, { reports: WatchWorkerMessage[]; done?: () => void }>();
  let lost = 0;
  const readies: Array<Promise<number>> = [];
  const handles: Worker[] = [];
  for (const clients of perWorker.filter((n) => n > 0)) {
    const data: WatchWorkerData = { url: base, token: TOKEN, clients, concurrency: 50 };
    const worker = new Worker(here('./watch-worker.js'), { workerData: data });
    workers.add(worker);
    handles.push(worker);
    const closed = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    cleanups.push(async () => {
      if (!workers.has(worker)) return;
      worker.postMessage({ type: 'close' });
      const t = setTimeout(() => void worker.terminate(), 3_000);
      await closed;
      clearTimeout(t);
      workers.delete(worker);
    });
    readies.push(
      new Promise((resolve, reject) => {
        worker.on('error', reject);
        worker.on('message', (m: WatchWorkerMessage) => {
          if (m.type === 'ready') resolve(m.clients);
          else if (m.type === 'failed') reject(new Error(`watch worker: ${m.error}`));
          else if (m.type === 'lost') lost++;
          else if (m.type === 'got') {
            let entry = waiting.get(m.revision);
            if (!entry) waiting.set(m.revision, (entry = { reports: [] }));
            entry.reports.push(m);
            if (entry.reports.length === handles.length) entry.done?.();
          }
        });
      }),
    );
  }
  const opened = nowMs();
  const connected = (await Promise.all(readies)).reduce((a, b) => a + b, 0);
  const openSeconds = (nowMs() - opened) / 1000;
  const gauge = (await scrape(base)).get('pacer_api_watch_clients');
  log(`fan-out: ${connected} SSE clients ready in ${round(openSeconds, 1)} s over ${handles.length} worker threads (server gauge: ${gauge})`);
  if (connected !== opts.clients) throw new Error(`only ${connected} of ${opts.clients} watch clients connected`);

  const all: number[] = [];
  const allFromSend: number[] = [];
  const last: number[] = [];
  const lastFromSend: number[] = [];
  const putLatency: number[] = [];
  let beforeAnswer = 0;
  let missing = 0;
  const target = 0; // class 0 is only ever written here
  await sleep(200);
  let cpu0 = NaN;
  let self0 = process.cpuUsage();
  let t0 = NaN;
  // The first few PUTs warm the SSE path up and are not counted.
  for (let k = -FANOUT_WARMUP_PUTS; k < opts.puts; k++) {
    if (k === 0) {
      cpu0 = cpuSecondsOf(server.child.pid);
      self0 = process.cpuUsage();
      t0 = nowMs();
    }
    const sent = nowMs();
    const r = await call(base, 'PUT', `/v1/classes/${names[target]}`, specFor(target), { 'if-match': etags[target]! }, putAgent);
    if (r.status !== 200) throw new Error(`fan-out PUT: ${r.status} ${JSON.stringify(r.body)}`);
    etags[target] = r.body.etag as string;
    const revision = r.body.revision as number;
    let entry = waiting.get(revision);
    if (!entry) waiting.set(revision, (entry = { reports: [] }));
    if (entry.reports.length < handles.length) {
      const e = entry;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 10_000);
        e.done = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    waiting.delete(revision);
    if (k < 0) {
      await sleep(20);
      continue;
    }
    putLatency.push(r.at - sent);
    let got = 0;
    let latest = -Infinity;
    for (const report of entry.reports) {
      if (report.type !== 'got') continue;
      for (const t of report.times) {
        all.push(t - r.at);
        allFromSend.push(t - sent);
        if (t < r.at) beforeAnswer++;
        latest = Math.max(latest, t);
        got++;
      }
    }
    missing += opts.clients - got;
    last.push(latest - r.at);
    lastFromSend.push(latest - sent);
    // Let the last deliveries settle before the next PUT, so PUTs don't overlap.
    await sleep(20);
  }
  const wall = (nowMs() - t0) / 1000;
  const self = process.cpuUsage(self0);
  return {
    serverCpuPct: round(((cpuSecondsOf(server.child.pid) - cpu0) / wall) * 100, 0),
    clientCpuPct: round(((self.user + self.system) / 1e6 / wall) * 100, 0),
    allFromSend: { p50: round(percentile(allFromSend, 50), 2), p99: round(percentile(allFromSend, 99), 2) },
    clients: connected,
    workers: handles.length,
    openSeconds: round(openSeconds, 2),
    puts: opts.puts,
    all: { p50: round(percentile(all, 50), 2), p99: round(percentile(all, 99), 2), max: round(Math.max(...all), 2), count: all.length, beforeAnswer },
    last: { p50: round(percentile(last, 50), 2), p99: round(percentile(last, 99), 2), max: round(Math.max(...last), 2) },
    lastFromSend: { p50: round(percentile(lastFromSend, 50), 2), p99: round(percentile(lastFromSend, 99), 2) },
    putLatency: { p50: round(percentile(putLatency, 50), 2), p99: round(percentile(putLatency, 99), 2) },
    missing,
    lost,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

interface Summary {
  runs: RunStats[];
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  serverCpuPct: number;
  loadgenCpuPct: number;
  gcPct?: number;
  /** Mean writeClass (transaction + fsync) over all runs, ms. */
  commitMs?: number;
  commitsOver5ms?: number;
  findTokenMs?: number;
}

function summarize(runs: RunStats[]): Summary {
  const api = runs.flatMap((r) => (r.api ? [r.api] : []));
  const commits = api.reduce((s, a) => s + a.writeClassCount, 0);
  return {
    runs,
    serverCpuPct: median(runs.map((r) => r.serverCpuPct)),
    loadgenCpuPct: median(runs.map((r) => r.loadgenCpuPct)),
    gcPct: api.length ? median(api.map((a) => a.gcPct)) : undefined,
    commitMs: commits ? round(api.reduce((s, a) => s + (a.writeClassCount ? a.writeClassMs * a.writeClassCount : 0), 0) / commits, 3) : undefined,
    commitsOver5ms: commits ? api.reduce((s, a) => s + a.writeClassOver5ms, 0) : undefined,
    findTokenMs: api.length ? median(api.map((a) => a.findTokenMs)) : undefined,
    rps: round(median(runs.map((r) => r.rps)), 0),
    rpsMin: round(Math.min(...runs.map((r) => r.rps)), 0),
    rpsMax: round(Math.max(...runs.map((r) => r.rps)), 0),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    non2xx: runs.reduce((s, r) => s + r.non2xx, 0),
    errors: runs.reduce((s, r) => s + r.errors, 0),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

const fmt = (n: number) => (Number.isFinite(n) ? n.toLocaleString('en-US') : 'n/a');

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const startedAt = new Date();
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
  };
  log(`${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, load average ${machine.loadAverageAtStart.join(' ')}`);
  const dir = makeTempDir();
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  mkdirSync(resultsDir, { recursive: true });
  const profDir = join(resultsDir, `prof-${stamp}`);
  const needApi = ['reads', 'writes', 'fanout'].some((s) => opts.only.has(s));
  const hello = opts.only.has('ceiling') ? await startServer('hello-server', './hello-server.js', {}) : undefined;
  const api = needApi
    ? await startServer('api-server', './api-server.js', { PACER_BENCH_DB: join(dir, 'pacer.db'), PACER_ADMIN_TOKEN: TOKEN, PACER_BENCH_REMOVE_DIR: dir }, opts.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])
    : undefined;
  log(`servers: ${[hello && `ceiling ${hello.url}`, api && `api ${api.url} (store ${join(dir, 'pacer.db')})`].filter(Boolean).join(', ')}`);
  if (api) {
    await seed(api.url);
    writer.free = names.map((_, i) => i).slice(1);
  }

  const scenarios: Array<{ key: 'ceiling' | 'reads' | 'writes'; url: string; request: () => autocannon.Request; extra: Partial<autocannon.Options>; server: Server; apiBase?: string }> = [];
  if (hello) scenarios.push({ key: 'ceiling', url: `${hello.url}/hello`, request: () => ({ method: 'GET' }), extra: {}, server: hello });
  if (api && opts.only.has('reads')) scenarios.push({ key: 'reads', url: `${api.url}/v1/classes`, request: readRequest, extra: { headers: auth }, server: api, apiBase: api.url });
  if (api && opts.only.has('writes')) scenarios.push({ key: 'writes', url: `${api.url}/v1/classes`, request: () => writer.request(), extra: { headers: auth }, server: api, apiBase: api.url });

  const runs: Record<string, RunStats[]> = {};
  if (scenarios.length > 0 && opts.warmup > 0) {
    for (const s of scenarios) {
      await cannon(`${s.key} warm-up`, s.url, opts.warmup, { ...s.extra, requests: [s.request()] });
      if (s.key === 'writes') await writer.resync(api!.url);
    }
    log(`warmed up (${opts.warmup} s each)`);
  }
  for (let run = 1; run <= opts.runs && scenarios.length > 0; run++) {
    for (const s of scenarios) {
      const stats = await cannon(s.key, s.url, opts.duration, { ...s.extra, requests: [s.request()] }, s.server, s.apiBase);
      (runs[s.key] ??= []).push(stats);
      let resynced = 0;
      if (s.key === 'writes') resynced = await writer.resync(api!.url);
      log(
        `run ${run}/${opts.runs} ${s.key.padEnd(7)} ${fmt(round(stats.rps, 0)).padStart(7)} req/s  p50 ${stats.p50} ms  p99 ${stats.p99} ms` +
          `  non-2xx ${stats.non2xx}  errors ${stats.errors}  cpu: server ${stats.serverCpuPct}%, autocannon ${stats.loadgenCpuPct}%` +
          (stats.api ? `  gc ${stats.api.gcPct}%` : '') +
          (s.key === 'writes' && stats.api ? `  commit ${stats.api.writeClassMs} ms (${stats.api.writeClassOver5ms} over 5 ms)  in flight at the end: ${resynced}` : ''),
      );
    }
  }
  if (writer.failures.length > 0) log(`writes: first non-2xx answers: ${writer.failures.join(' | ')}`);

  let fan: FanoutResult | undefined;
  if (api && opts.only.has('fanout')) fan = await fanout(api.url, api);

  // ------------------------------------------------------------------ report
  const ceiling = runs.ceiling && summarize(runs.ceiling);
  const reads = runs.reads && summarize(runs.reads);
  const writes = runs.writes && summarize(runs.writes);
  const ratio = (s: Summary | undefined) => (s && ceiling ? s.rps / ceiling.rps : NaN);
  const spread = (s: Summary) => `${fmt(s.rpsMin)}–${fmt(s.rpsMax)} (±${round(((s.rpsMax - s.rpsMin) / 2 / s.rps) * 100, 0)}%)`;
  const met = (ok: boolean | undefined) => (ok === undefined ? 'not run' : ok ? 'met' : 'NOT met');

  const targets = {
    reads: reads && ceiling ? { target: `≥ ${TARGETS.readsRatio * 100}% of ceiling`, measured: `${round(ratio(reads) * 100, 0)}%`, met: ratio(reads) >= TARGETS.readsRatio } : undefined,
    writes: writes
      ? { target: `≥ ${fmt(TARGETS.writesPerSec)} writes/s, 0 non-2xx`, measured: `${fmt(writes.rps)}/s, ${writes.non2xx} non-2xx`, met: writes.rps >= TARGETS.writesPerSec && writes.non2xx === 0 }
      : undefined,
    fanout: fan ? { target: `p99 ≤ ${TARGETS.fanoutP99Ms} ms`, measured: `p99 ${fan.all.p99} ms`, met: fan.all.p99 <= TARGETS.fanoutP99Ms && fan.missing === 0 } : undefined,
  };

  const rows: string[][] = [['Scenario', 'req/s (median)', 'spread (min–max)', 'p50 ms', 'p99 ms', 'vs ceiling', 'target', 'result']];
  if (ceiling) rows.push([`ceiling: bare Express GET /hello`, fmt(ceiling.rps), spread(ceiling), `${ceiling.p50}`, `${ceiling.p99}`, '100%', '', '']);
  if (reads) rows.push([`GET /v1/classes/:name`, fmt(reads.rps), spread(reads), `${reads.p50}`, `${reads.p99}`, ceiling ? `${round(ratio(reads) * 100, 0)}%` : 'n/a', targets.reads?.target ?? '≥ 50% of ceiling', met(targets.reads?.met)]);
  if (writes) rows.push([`PUT /v1/classes/:name (If-Match)`, fmt(writes.rps), spread(writes), `${writes.p50}`, `${writes.p99}`, ceiling ? `${round(ratio(writes) * 100, 0)}%` : 'n/a', targets.writes!.target, met(targets.writes!.met)]);
  if (fan) {
    rows.push([`watch fan-out, ${fan.clients} clients: each (PUT × client)`, '', '', `${fan.all.p50}`, `${fan.all.p99}`, '', targets.fanout!.target, met(targets.fanout!.met)]);
    rows.push([`watch fan-out: last client per PUT`, '', '', `${fan.last.p50}`, `${fan.last.p99}`, '', '(for information)', '']);
    rows.push([`watch fan-out: each, from sending the PUT`, '', '', `${fan.allFromSend.p50}`, `${fan.allFromSend.p99}`, '', '(for information)', '']);
  }
  const printed = table(rows);
  const notes: string[] = [];
  for (const [label, sum] of [['ceiling', ceiling], ['reads', reads], ['writes', writes]] as const) {
    if (!sum) continue;
    notes.push(
      `${label}: CPU over a run (median), server child ${sum.serverCpuPct}% of one core, autocannon ${sum.loadgenCpuPct}%` +
        (sum.gcPct !== undefined ? `; the API spent ${sum.gcPct}% of the wall time in GC` : ''),
    );
  }
  if (writes) {
    notes.push(`writes: ${writes.non2xx} non-2xx and ${writes.errors} connection errors over ${writes.runs.length} runs${writes.non2xx > 0 ? ' — RESULT INVALID' : ''}`);
    if (writes.commitMs !== undefined) {
      notes.push(
        `writes: the store's writeClass (SQLite transaction + fsync, synchronous, on the API's event loop) took ${writes.commitMs} ms on average ` +
          `(${writes.commitsOver5ms} commits over 5 ms), i.e. the commit alone would allow ${fmt(round(1000 / writes.commitMs, 0))} writes/s; ` +
          `the rest of each write's ${round(1000 / writes.rps, 2)} ms is CPU in the API (profile with --cpu-prof)`,
      );
    }
  }
  if (reads?.findTokenMs !== undefined) notes.push(`reads: the token lookup (SQLite SELECT by digest, every request) took ${reads.findTokenMs} ms on average`);
  if (fan) {
    notes.push(
      `fan-out: ${fan.puts} PUTs one at a time to ${fan.clients} SSE clients in ${fan.workers} worker threads; latency from the PUT's answer (last byte read) to each client's receipt, ` +
        `process.hrtime (CLOCK_MONOTONIC) in one process. ${fan.all.beforeAnswer} of ${fan.all.count} receipts came before the PUT's answer (the API writes the events before it answers), counted as negative. ` +
        `Last client per PUT from sending the PUT: p50 ${fan.lastFromSend.p50} ms, p99 ${fan.lastFromSend.p99} ms; PUT round trip p50 ${fan.putLatency.p50} ms. Missing receipts: ${fan.missing}; streams lost: ${fan.lost}. ` +
        `CPU over the PUT phase: API child ${fan.serverCpuPct}% of one core, this process (PUTs + ${fan.workers} client threads) ${fan.clientCpuPct}%.`,
    );
  }
  process.stdout.write(
    `\npacer API benchmark — ${startedAt.toISOString()} — ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}\n` +
      `autocannon: ${opts.connections} connections, pipelining 1, ${opts.duration} s × ${opts.runs} runs (interleaved) after a ${opts.warmup} s warm-up; ${opts.classes} classes seeded\n\n` +
      `${printed}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`,
  );

  const result = {
    date: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench:api${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((n) => round(n, 2)) },
    options: { ...opts, only: [...opts.only] },
    scenarios: { ceiling, reads, writes, fanout: fan },
    ratios: { reads: round(ratio(reads), 3), writes: round(ratio(writes), 3) },
    targets,
    table: printed,
    notes,
  };
  const file = join(resultsDir, `api-${stamp}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`\nresults: ${file}\n`);
  if (opts.cpuProf) process.stdout.write(`CPU profile of the API child: ${profDir} (written when it exits)\n`);
}

main().then(
  () => cleanup().then(() => process.exit(0)),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    void cleanup().finally(() => process.exit(1));
  },
);
