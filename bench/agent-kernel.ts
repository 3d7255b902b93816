/**
 * bench:agent, part 1: REST PUT acknowledged → the new rate in the kernel map on this host.
 *
 * Real parts only: `pacer api` in a child process on a temporary SQLite file, `pacer agent` in a
 * child process enforcing on a veth in a network namespace this bench makes (pacer-b-*), its pins
 * under /sys/fs/bpf/pacer-bench-*. One class (a mark selector) has its rate changed by a full
 * PUT with If-Match, one change at a time; after each PUT's answer the bench reads the class's
 * class_config entry from the pinned map (one BPF_MAP_LOOKUP_ELEM through pacer's own binding)
 * every millisecond until it holds the new rate. Resolution: the poll interval (Node's 1 ms
 * timer, ~1.1 ms in practice) plus one lookup (a few µs); the figure can only be late by that,
 * never early. The agent's own 'applied' log line (pino, ms timestamps) is the cross-check.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { EgressObject } from '../shaper-bpf/src/egress.js';
import { request } from '../test/support/api-server.js';
import { killed, startAgentChild, until, type AgentChild } from '../test/support/agent-processes.js';
import { agentBenchRig } from './agent-api.js';
import { onCleanup } from './cleanup.js';
import { trackObject } from './pins.js';
import { log } from './report.js';
import { nowMs, percentile, round } from './stats.js';

const IFACE = 'pb0';
const PEER = 'pb1';
const HOST = 'bench-kernel-host';
const CLASS = 'bench-kernel';
const WARMUP = 20;

export interface KernelBenchOptions {
  changes: number;
}

export interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export const distribution = (xs: readonly number[]): Distribution => ({
  count: xs.length,
  p50: round(percentile(xs, 50), 2),
  p90: round(percentile(xs, 90), 2),
  p99: round(percentile(xs, 99), 2),
  max: round(Math.max(...xs), 2),
});

export interface KernelBenchResult {
  changes: number;
  mode: string;
  /** From the PUT's answer (last byte read) to the new rate seen in class_config, ms. */
  answerToKernel: Distribution;
  /** From sending the PUT to the new rate seen, ms. */
  sendToKernel: Distribution;
  /** The PUT's round trip, ms. */
  put: Distribution;
  /** From the PUT's answer to the agent's 'applied' log line (ms clock, logged after the snapshot is written). */
  answerToAgentLog: Distribution;
  /** Polls per change before the rate was seen (1 = already there at the first read). */
  polls: Distribution;
  /** How long one poll's lookup takes, µs (median). */
  lookupUs: number;
  /** How late this process's timers fired during the changes, ms (p50, p99): how much CPU the machine left to wake a process up. */
  timerLateness: { p50: number; p99: number; max: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function kernelBench(o: KernelBenchOptions): Promise<KernelBenchResult> {
  const { stateDir, netnsPath, pinBase, api, token } = await agentBenchRig('agent', IFACE, PEER, HOST);
  let agent: AgentChild | undefined;
  agent = startAgentChild(['--api', api.url, '--iface', IFACE, '--netns', netnsPath, '--host', HOST, '--label', 'bench=kernel', '--state-dir', stateDir, '--pin-base', pinBase], token);
  onCleanup('stop the agent child', () => killed(agent?.child, 'SIGTERM'));
  const withLog = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${agent?.tail() ?? ''}`);
    }
  };
  const ready = await withLog(until('the agent to install', () => agent!.find('interface ready'), 30_000, 20));

  let rateKbit = 10_000;
  const spec = () => ({ rate: `${rateKbit}kbit`, match: { marks: [7] }, hosts: { matchLabels: { bench: 'kernel' } } });
  const created = await request(api.url, 'POST', '/v1/classes', { body: { name: CLASS, ...spec() } });
  if (created.status !== 201) throw new Error(`creating the class: ${created.status} ${JSON.stringify(created.body)}`);
  const id = created.body.id as number;
  let etag = created.body.etag as string;
  const egress = trackObject(EgressObject.load({ pinRoot: join(pinBase, IFACE) }));
  const slot = await withLog(until('the class in class_slot', () => egress.slots.get(id), 15_000, 5));
  const rateNow = () => egress.config.get(slot)?.rate_bps;
  await withLog(until('the class in class_config', () => (rateNow() === rateKbit * 1000 ? true : undefined), 15_000, 5));

  const rows = { answer: [] as number[], send: [] as number[], put: [] as number[], log: [] as number[], polls: [] as number[] };
  const lookups: number[] = [];
  const lateness = monitorEventLoopDelay({ resolution: 1 });
  for (let k = -WARMUP; k < o.changes; k++) {
    if (k === 0) lateness.enable();
    rateKbit = rateKbit >= 900_000 ? 10_000 : rateKbit + 1;
    const want = rateKbit * 1000;
    const fromLine = agent.lines.length;
    const sent = nowMs();
    const sentWall = Date.now();
    const r = await request(api.url, 'PUT', `/v1/classes/${CLASS}`, { body: spec(), headers: { 'if-match': etag } });
    const answered = nowMs();
    const answeredWall = Date.now();
    if (r.status !== 200) throw new Error(`PUT: ${r.status} ${JSON.stringify(r.body)}`);
    etag = r.body.etag as string;
    let polls = 0;
    let seen: number | undefined;
    const deadline = answered + 10_000;
    for (;;) {
      polls++;
      const t = nowMs();
      const rate = rateNow();
      const after = nowMs();
      lookups.push((after - t) * 1000);
      if (rate === want) {
        seen = t; // the read that saw it began here: the rate was there by then
        break;
      }
      if (after > deadline) throw new Error(`change ${k}: the rate ${want} was not in class_config after 10 s (it holds ${rate})\n${agent.tail()}`);
      await sleep(1);
    }
    const line = await withLog(until('the agent\'s applied line', () => agent!.find('applied', fromLine, (l) => l.revision === r.body.revision), 10_000, 1));
    if (k < 0) continue;
    rows.answer.push(seen - answered);
    rows.send.push(seen - sent);
    rows.put.push(answered - sent);
    rows.log.push(line.time - answeredWall);
    rows.polls.push(polls);
    void sentWall;
    if ((k + 1) % 250 === 0) log(`kernel: ${k + 1}/${o.changes} changes, p50 ${round(percentile(rows.answer, 50), 2)} ms, p99 ${round(percentile(rows.answer, 99), 2)} ms`);
  }
  lateness.disable();
  assert.ok(agent.running, 'the agent is still running');
  const errors = agent.lines.filter((l) => l.level >= 50);
  if (errors.length > 0) throw new Error(`the agent logged errors: ${JSON.stringify(errors.slice(0, 3))}`);
  return {
    changes: o.changes,
    mode: String(ready.modeDetail ?? ready.mode),
    answerToKernel: distribution(rows.answer),
    sendToKernel: distribution(rows.send),
    put: distribution(rows.put),
    answerToAgentLog: distribution(rows.log),
    polls: distribution(rows.polls),
    lookupUs: round(percentile(lookups, 50), 1),
    // monitorEventLoopDelay records the intervals of a 1 ms timer, in ns: lateness is what exceeds 1 ms.
    timerLateness: { p50: round(lateness.percentile(50) / 1e6 - 1, 2), p99: round(lateness.percentile(99) / 1e6 - 1, 2), max: round(lateness.max / 1e6 - 1, 2) },
  };
}
