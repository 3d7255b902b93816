/**
 * bench:agent, part 4 (issue 17): a burst of class creations through the real API, as fast as it
 * accepts them, with a real `pacer agent` process enforcing them on the kernel datapath (a veth
 * in a bench network namespace, pins under /sys/fs/bpf/pacer-bench-*; the agent has no
 * no-kernel mode). Every class matches the agent's host and has its own mark.
 *
 * Measured per round: how long the creates took; from the last create's answer to the API
 * reporting the host at the final revision (GET /v1/hosts/{host}, polled every 100 ms: the
 * agent's heartbeat is what moves it); the agent's peak RSS (VmHWM from /proc at the end, and
 * VmRSS sampled every 250 ms); whether its /metrics answered throughout (scraped every
 * --burst-scrape-ms, 1 s by default, each scrape given 2 s; median and slowest), and 5 scrapes at
 * rest after convergence (median and slowest); how many applies it made (its `applied` log lines,
 * one per pass over the class list); the most connections it held to the API (its sockets in /proc,
 * sampled with the RSS); and SIGTERM after convergence: how long until it exited, and any
 * *.tmp left in its state directory. Then, for comparison, a fresh agent on the same host: from
 * its start to its log line of the final revision applied, and its peak RSS.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { request } from '../test/support/api-server.js';
import { freePort, killed, startAgentChild, until, type AgentChild } from '../test/support/agent-processes.js';
import { agentBenchRig } from './agent-api.js';
import { onCleanup } from './cleanup.js';
import { log } from './report.js';
import { median, nowMs, round } from './stats.js';

const IFACE = 'pu0';
const PEER = 'pu1';
const HOST = 'bench-burst-host';

export interface BurstBenchOptions {
  classes: number;
  /** Creates in flight at once. */
  concurrency: number;
  /** Give up waiting for the final revision after this long, ms. */
  timeoutMs: number;
  /** /metrics is scraped this often (each scrape given 2 s). */
  scrapeMs: number;
}

export interface BurstBenchResult {
  classes: number;
  createSeconds: number;
  createsPerSecond: number;
  finalRevision: number;
  /** From the last create's answer to the host's status at the final revision; null: not within timeoutMs. */
  convergeSeconds: number | null;
  /** The host's applied revision when the wait ended. */
  appliedRevisionAtEnd: number;
  peakRssMb: number;
  metricsScrapes: number;
  metricsFailures: number;
  /** Scrapes during the burst (from the agent watching until convergence): median and slowest, ms (a failed one counts as its time). */
  metricsMedianMs: number;
  metricsSlowestMs: number;
  /** Scrapes after convergence, with the agent idle (REST_SCRAPES, one after the other): what /metrics costs at this many classes, median and slowest, ms. */
  metricsAtRestMs: number;
  metricsAtRestSlowestMs: number;
  /** The scrape's size at rest, bytes. */
  metricsBytes: number;
  /** The agent's applies to the interface logged as `applied` from the watch's start to convergence (passes over the whole class list). */
  applies: number;
  mostApiConnections: number;
  sigtermExitMs: number | null;
  exitCode: number | null;
  tmpFilesLeft: string[];
  /** A fresh agent started afterwards on the same host (the classes all there): until it logged the final revision applied, s, and its peak RSS, MB. */
  restart: { seconds: number; peakRssMb: number } | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Scrapes of /metrics at rest, one after the other, after convergence. */
const REST_SCRAPES = 5;


/** VmHWM and VmRSS of a process, MB. */
function memory(pid: number): { hwm: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
}

/** Established TCP connections of a process to a port (its socket fds matched with /proc/PID/net/tcp). */
function connectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[2]!.endsWith(`:${hexPort}`) && f[3] === '01' && inodes.has(f[9]!)).length;
}

export async function burstBench(o: BurstBenchOptions): Promise<BurstBenchResult> {
  const { stateDir, netnsPath, pinBase, api, token } = await agentBenchRig('burst', IFACE, PEER, HOST);
  const apiPort = Number(new URL(api.url).port);
  const metricsPort = await freePort();
  const args = ['--api', api.url, '--iface', IFACE, '--netns', netnsPath, '--host', HOST, '--label', 'bench=burst', '--state-dir', stateDir, '--pin-base', pinBase, '--metrics-listen', `127.0.0.1:${metricsPort}`];
  const agent: AgentChild = startAgentChild(args, token);
  onCleanup('stop the agent child', () => killed(agent.child, 'SIGKILL'));
  await until('the agent to watch the API', () => agent.find('watching the API'), 30_000, 20).catch((err: Error) => {
    throw new Error(`${err.message}\n${agent.tail()}`);
  });
  const pid = agent.child.pid!;

  // Samplers, from now until the agent is stopped.
  let peakRss = 0;
  let mostConnections = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling && agent.running) {
      try {
        peakRss = Math.max(peakRss, memory(pid).rss);
        mostConnections = Math.max(mostConnections, connectionsTo(pid, apiPort));
      } catch {
        /* the process is going */
      }
      await sleep(250);
    }
  })();
  const scrapes = { count: 0, failures: 0, times: [] as number[] };
  const scraper = (async () => {
    while (sampling && agent.running) {
      const t = nowMs();
      try {
        const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(2_000) });
        await res.text();
        if (!res.ok) scrapes.failures++;
      } catch {
        scrapes.failures++;
      }
      scrapes.count++;
      scrapes.times.push(nowMs() - t);
      await sleep(o.scrapeMs);
    }
  })();

  // The burst: `concurrency` creators, each POSTing as soon as its previous create was answered.
  let next = 0;
  let finalRevision = 0;
  let lastAnswer = 0;
  const started = nowMs();
  const creator = async () => {
    while (next < o.classes) {
      const i = next++;
      const r = await request(api.url, 'POST', '/v1/classes', { body: { name: `burst-${i}`, rate: `${10 + (i % 100)}mbit`, match: { marks: [i + 1] }, hosts: { matchLabels: { bench: 'burst' } } } });
      if (r.status !== 201) throw new Error(`create ${i}: ${r.status} ${JSON.stringify(r.body)}`);
      finalRevision = Math.max(finalRevision, r.body.revision as number);
      lastAnswer = nowMs();
      if ((i + 1) % 2000 === 0) log(`burst: ${i + 1}/${o.classes} created`);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, creator));
  const createSeconds = (lastAnswer - started) / 1000;
  log(`burst: ${o.classes} classes created in ${round(createSeconds, 1)} s; waiting for the host to report revision ${finalRevision}`);

  let applied = 0;
  let convergeSeconds: number | null = null;
  while (nowMs() - lastAnswer < o.timeoutMs) {
    const h = await request(api.url, 'GET', `/v1/hosts/${HOST}`);
    applied = (h.body?.status?.appliedRevision as number | undefined) ?? 0;
    if (applied >= finalRevision) {
      convergeSeconds = (nowMs() - lastAnswer) / 1000;
      break;
    }
    await sleep(100);
  }
  log(convergeSeconds === null ? `burst: NOT converged within ${o.timeoutMs / 1000} s (host at revision ${applied} of ${finalRevision})` : `burst: host at the final revision ${round(convergeSeconds, 2)} s after the last create`);
  const hwm = agent.running ? memory(pid).hwm : 0;
  sampling = false;
  await Promise.all([sampler, scraper]);
  const applies = agent.lines.filter((l) => l.msg === 'applied').length;
  const atRest: number[] = [];
  let metricsBytes = 0;
  for (let i = 0; i < REST_SCRAPES; i++) {
    const t0 = nowMs();
    metricsBytes = Buffer.byteLength(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    atRest.push(nowMs() - t0);
  }

  const t = nowMs();
  agent.child.kill('SIGTERM');
  const exit = await Promise.race([agent.exited, sleep(60_000).then(() => undefined)]);
  const sigtermExitMs = exit ? nowMs() - t : null;
  if (!exit) await killed(agent.child, 'SIGKILL');
  let tmpFilesLeft: string[] = [];
  try {
    tmpFilesLeft = readdirSync(stateDir).filter((f) => f.endsWith('.tmp'));
  } catch {
    /* no state directory */
  }
  // For comparison: a fresh agent that finds the 10,000 classes at start (one list, one apply).
  let restart: BurstBenchResult['restart'] = null;
  const again = startAgentChild(args, token);
  onCleanup('stop the second agent child', () => killed(again.child, 'SIGKILL'));
  const t0 = nowMs();
  const done = await until('the fresh agent to apply the final revision', () => again.find('applied', 0, (l) => (l.revision as number) >= finalRevision), 60_000, 50).catch(() => undefined);
  if (done) restart = { seconds: round((nowMs() - t0) / 1000, 2), peakRssMb: Math.round(memory(again.child.pid!).hwm) };
  await killed(again.child, 'SIGTERM');
  return {
    restart,
    classes: o.classes,
    createSeconds: round(createSeconds, 1),
    createsPerSecond: Math.round(o.classes / createSeconds),
    finalRevision,
    convergeSeconds: convergeSeconds === null ? null : round(convergeSeconds, 2),
    appliedRevisionAtEnd: applied,
    peakRssMb: Math.round(Math.max(peakRss, hwm)),
    metricsScrapes: scrapes.count,
    metricsFailures: scrapes.failures,
    metricsMedianMs: Math.round(scrapes.times.length === 0 ? 0 : median(scrapes.times)),
    metricsSlowestMs: Math.round(Math.max(0, ...scrapes.times)),
    metricsAtRestMs: Math.round(median(atRest)),
    metricsAtRestSlowestMs: Math.round(Math.max(...atRest)),
    metricsBytes,
    applies,
    mostApiConnections: mostConnections,
    sigtermExitMs: sigtermExitMs === null ? null : Math.round(sigtermExitMs),
    exitCode: exit ? exit.code : null,
    tmpFilesLeft,
  };
}
