/**
 * bench:agent, part 3: `agents` agents with in-memory datapaths against one API: PUT → all applied.
 *
 * `pacer api` runs in a child process on a temporary SQLite file. The agents run in this process,
 * spread over `workers` worker threads (bench/agent-fleet-worker.ts): each is a real Agent with its
 * own container, host registration, agent token, SSE watch, desired state, borrowing loop,
 * Reconciler and snapshot file; only the maps are in memory. One class matches every host (no
 * host selector); its rate is changed by a full PUT with If-Match, one PUT at a time, and the time
 * is taken from the PUT's answer until the last agent's class_config holds the new rate.
 *
 * Each agent's state directory (its last-known-good snapshot) is on tmpfs (/dev/shm): on this
 * machine's ext4 a snapshot's rename takes 1–2 ms on the agent's thread, and 100 agents on one
 * thread would each wait for the renames of those before them, a cost 200 hosts do not share.
 *
 * Is the bench process the bottleneck? The run reports each worker thread's event-loop
 * utilization over the PUT phase (1.0 = the thread never waited for I/O: its agents were queued
 * behind each other), the CPU of this process and of the API child, and can be repeated with
 * another --fleet-workers to see whether the latency follows the number of threads.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { request, tokenFor } from '../test/support/api-server.js';
import type { FleetFromWorker, FleetToWorker, FleetWorkerData } from './agent-fleet-worker.js';
import { distribution, type Distribution } from './agent-kernel.js';
import { startBenchApi } from './agent-api.js';
import { onCleanup } from './cleanup.js';
import { log } from './report.js';
import { nowMs, round } from './stats.js';

const CLASS = 'bench-fleet';
const SHM = '/dev/shm';
const WARMUP_PUTS = 3;
/** Between PUTs: the heartbeats every agent sends after a change reach the API before the next PUT. */
const GAP_MS = 500;

export interface FleetBenchOptions {
  agents: number;
  workers: number;
  puts: number;
}

export interface FleetBenchResult {
  agents: number;
  workers: number;
  puts: number;
  /** Per PUT: from its answer until the last agent had the new rate, ms. */
  answerToAll: Distribution;
  /** Per PUT: from sending it until the last agent had it, ms. */
  sendToAll: Distribution;
  /** Every (PUT × agent): from the PUT's answer, ms (negative: before the answer). */
  answerToEach: Distribution;
  put: Distribution;
  startupMs: number;
  /** Each worker thread's event-loop utilization (0..1) from sending a PUT until it had reached every agent (its report a little later). */
  workerEventLoopUtilization: Distribution;
  /** Summed over the windows from sending each PUT until every agent had it, % of one core: this process (all threads), the API child. */
  benchCpuPct: number;
  apiCpuPct: number;
  /** This process's CPU over those windows per (PUT × agent), ms: what one agent spends on one change, plus the PUT and the bench's bookkeeping. */
  cpuMsPerAgentChange: number;
}

/** CPU seconds (user + system) of a process, from /proc. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

export async function fleetBench(o: FleetBenchOptions): Promise<FleetBenchResult> {
  const dir = mkdtempSync(join(os.tmpdir(), 'pacer-bench-fleet-'));
  onCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const api = await startBenchApi(join(dir, 'pacer.db'));
  // The agents' snapshot files go to tmpfs: 200 hosts have 200 disks, not one shared with two
  // threads. (Part 1 measures one real agent writing its snapshot to the real disk.)
  const stateDir = mkdtempSync(join(SHM, 'pacer-bench-fleet-state-'));
  onCleanup(`remove ${stateDir}`, () => rmSync(stateDir, { recursive: true, force: true }));

  const hosts = Array.from({ length: o.agents }, (_, i) => ({ host: `bench-fleet-${String(i).padStart(4, '0')}`, token: '' }));
  await pool(hosts, 8, async (h) => void (h.token = await tokenFor(api.url, 'agent', h.host)));
  let rateKbit = 10_000;
  const spec = () => ({ rate: `${rateKbit}kbit`, match: { marks: [9] } });
  const created = await request(api.url, 'POST', '/v1/classes', { body: { name: CLASS, ...spec() } });
  if (created.status !== 201) throw new Error(`creating the class: ${created.status} ${JSON.stringify(created.body)}`);
  let etag = created.body.etag as string;

  /** rate (bit/s) → the times each host's class_config got it. */
  const applied = new Map<number, Map<string, number>>();
  const waiters = new Set<() => void>();
  const reports: number[] = [];
  const workers: Worker[] = [];
  const share = Math.ceil(o.agents / o.workers);
  const started = nowMs();
  let failure: Error | undefined;
  const readyAll = Promise.all(
    Array.from({ length: o.workers }, (_, w) => {
      const data: FleetWorkerData = { api: api.url, stateDir, classId: created.body.id as number, agents: hosts.slice(w * share, (w + 1) * share) };
      const worker = new Worker(fileURLToPath(new URL('./agent-fleet-worker.js', import.meta.url)), { workerData: data });
      workers.push(worker);
      return new Promise<void>((resolve, reject) => {
        worker.on('message', (m: FleetFromWorker) => {
          if (m.type === 'ready') resolve();
          else if (m.type === 'failed') reject(new Error(`fleet worker ${w}: ${m.error}`));
          else if (m.type === 'applied') {
            for (const { host, rate, at } of m.writes) {
              let byHost = applied.get(rate);
              if (!byHost) applied.set(rate, (byHost = new Map()));
              if (!byHost.has(host)) byHost.set(host, at);
            }
            for (const wake of waiters) wake();
          } else if (m.type === 'report') reports.push(m.eventLoopUtilization);
        });
        worker.once('error', (err) => {
          failure = err;
          reject(err);
          for (const wake of waiters) wake();
        });
      });
    }),
  );
  onCleanup('stop the fleet workers', async () => {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => void w.terminate().then(() => resolve()), 10_000);
            w.once('exit', () => (clearTimeout(t), resolve()));
            w.postMessage({ type: 'stop' } satisfies FleetToWorker);
          }),
      ),
    );
  });
  /** Resolves when every agent has `rate`, or rejects after ms. */
  const allHave = (rate: number, ms: number) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (failure) return done(failure);
        if ((applied.get(rate)?.size ?? 0) >= o.agents) return done();
      };
      const timer = setTimeout(() => done(new Error(`after ${ms} ms only ${applied.get(rate)?.size ?? 0} of ${o.agents} agents had rate ${rate}`)), ms);
      const done = (err?: Error) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      waiters.add(check);
      check();
    });
  await readyAll;
  await allHave(rateKbit * 1000, 120_000);
  const startupMs = nowMs() - started;
  log(`fleet: ${o.agents} agents in ${o.workers} worker threads started and applied the class in ${round(startupMs / 1000, 1)} s`);
  await new Promise((r) => setTimeout(r, 2_000)); // the first heartbeats settle

  const rows = { answer: [] as number[], send: [] as number[], each: [] as number[], put: [] as number[], elu: [] as number[] };
  // CPU and event-loop utilization are summed over the windows from sending each PUT until every agent had it.
  let benchCpu = 0;
  let apiCpu = 0;
  let windows = 0;
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  for (let k = -WARMUP_PUTS; k < o.puts; k++) {
    rateKbit++;
    const want = rateKbit * 1000;
    for (const w of workers) w.postMessage({ type: 'measure' } satisfies FleetToWorker);
    const cpu0 = cpuNow();
    const apiCpu0 = cpuSecondsOf(api.child.pid!);
    const sent = nowMs();
    const r = await request(api.url, 'PUT', `/v1/classes/${CLASS}`, { body: spec(), headers: { 'if-match': etag } });
    const answered = nowMs();
    if (r.status !== 200) throw new Error(`PUT: ${r.status} ${JSON.stringify(r.body)}`);
    etag = r.body.etag as string;
    await allHave(want, 30_000);
    const times = [...applied.get(want)!.values()];
    const last = Math.max(...times);
    reports.length = 0;
    for (const w of workers) w.postMessage({ type: 'report' } satisfies FleetToWorker);
    if (k >= 0) {
      benchCpu += cpuNow() - cpu0;
      apiCpu += cpuSecondsOf(api.child.pid!) - apiCpu0;
      windows += (last - sent) / 1000;
      rows.answer.push(last - answered);
      rows.send.push(last - sent);
      rows.put.push(answered - sent);
      rows.each.push(...times.map((t) => t - answered));
    }
    await new Promise((res) => setTimeout(res, GAP_MS));
    if (k >= 0) rows.elu.push(...reports);
  }
  const benchCpuPct = round((benchCpu / windows) * 100, 0);
  const apiCpuPct = round((apiCpu / windows) * 100, 0);
  return {
    agents: o.agents,
    workers: o.workers,
    puts: o.puts,
    answerToAll: distribution(rows.answer),
    sendToAll: distribution(rows.send),
    answerToEach: distribution(rows.each),
    put: distribution(rows.put),
    startupMs: round(startupMs, 0),
    workerEventLoopUtilization: distribution(rows.elu),
    benchCpuPct,
    apiCpuPct,
    cpuMsPerAgentChange: round((benchCpu * 1000) / (o.puts * o.agents), 2),
  };
}
