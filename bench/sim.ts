/**
 * `npm run bench:sim`: the simulator's cost, in one process (no worker threads, so CPU time is
 * the simulation's own):
 *   - the 10 s dumbbell: two NewReno flows, 1 Gbit/s bottleneck, 100-packet drop-tail buffer
 *     (10 Gbit/s access links, 25 us per link, as in test/sim/tcp.spec.ts);
 *   - the incast sweep: sim/examples/incast.yaml (1 MB block, 100 rounds, 32 KB buffer) for
 *     N = 1, 2, 4, 8, 16, 32, 48 servers at RTOmin 200 ms and 1 ms;
 *   - RPCs: sim/examples/rpc-web-search.yaml (web-search sizes, open-loop Poisson arrivals at
 *     60% of the front-end's link in two classes, a new TCP connection per request and per
 *     response) for 10 s simulated.
 * Prints simulated events per wall second, CPU µs (user + system, process.cpuUsage) per delivered
 * data segment — the unit that compares across simulators — and memory: RSS at 25/50/75/100% of
 * the dumbbell's simulated time and the peak RSS (process.resourceUsage().maxRSS).
 *
 * Delivered data segments are counted from delivered application bytes: ceil(bytes / MSS) per
 * bulk flow, per incast round ceil(share / MSS) for each server's share of the block, and for
 * RPCs the workload's own count (requests and responses, sim/workload/rpc.ts).
 * Retransmitted copies are not counted: they are cost, not delivery.
 *
 * Reference (issue 6): ns-3 3.37 (Debian build) on this machine, ~31 µs/segment on the dumbbell
 * and ~44 µs/segment on incast N = 48. Target: ≤ 5 µs/segment, memory flat over simulated time.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenario } from '../sim/scenario/load.js';
import { Simulation, type SimResult } from '../sim/run.js';
import { grid, parseAxis, pointText } from '../sim/sweep.js';

const here = dirname(fileURLToPath(import.meta.url));
const INCAST = join(here, '../../sim/examples/incast.yaml');
const RPC = join(here, '../../sim/examples/rpc-web-search.yaml');
const TARGET_US = 5;

const DUMBBELL = `description: dumbbell, two NewReno flows, 1 Gbit/s bottleneck, 100-packet drop-tail
seed: 1
duration: 10s
bin: 1s
topology:
  switch: { bufferPackets: 100 }
  hosts:
    receiver: { link: { rate: 1gbit, delay: 25us } }
    sender1: { link: { rate: 10gbit, delay: 25us } }
    sender2: { link: { rate: 10gbit, delay: 25us } }
tcp: { variant: newreno, mss: 1448, initialWindow: 10, rtoMin: 200ms, rtoForm: linux, delayedAck: false }
workloads:
  - bulk: { from: sender1, to: receiver }
  - bulk: { from: sender2, to: receiver }
`;

interface Measured {
  result: SimResult;
  wallMs: number;
  cpuUs: number;
  segments: number;
}

function segmentsOf(r: SimResult, mss: number): number {
  let n = 0;
  for (const f of r.flows) n += Math.ceil(f.bytes / mss);
  for (const i of r.incast) n += i.roundsCompleted * i.servers * Math.ceil(i.blockBytes / i.servers / mss);
  for (const w of r.rpc) n += w.deliveredSegments;
  return n;
}

async function measure(text: string, name: string, onFraction?: (f: number) => void): Promise<Measured> {
  // The file's path when there is one: an RPC scenario may name a CDF relative to it.
  const scenario = loadScenario(text, name);
  const mss = scenario.workloads[0]!.tcp.mss;
  const sim = new Simulation(scenario);
  const marks = [0.25, 0.5, 0.75];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await sim.run({
    yieldEveryMs: 1_000,
    onProgress: (p) => {
      while (marks.length > 0 && p.simulatedNs >= marks[0]! * p.durationNs) {
        const f = marks.shift()!;
        onFraction?.(f);
      }
    },
  });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  onFraction?.(1);
  return { result, wallMs, cpuUs: cpu.user + cpu.system, segments: segmentsOf(result, mss) };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const perSeg = (m: { cpuUs: number; segments: number }) => m.cpuUs / Math.max(m.segments, 1);
const evPerS = (m: { result: SimResult; wallMs: number }) => m.result.events / (m.wallMs / 1000);

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${cpus().length} CPU (${cpus()[0]?.model ?? '?'}), ${new Date().toISOString()}`);

  // Warm-up: JIT the hot paths on a short run so the dumbbell measures steady state.
  await measure(DUMBBELL.replace('duration: 10s', 'duration: 300ms'), 'warmup');

  console.log('\ndumbbell (2 × NewReno, 1 Gbit/s bottleneck, 100-packet buffer, 10 s simulated)');
  const rss: string[] = [];
  const d = await measure(DUMBBELL, 'dumbbell', (f) => rss.push(`${Math.round(f * 100)}%: ${mib(process.memoryUsage.rss())}`));
  const goodput = d.result.flows.reduce((a, f) => a + f.goodputBps, 0);
  console.log(`  events ${d.result.events}, wall ${(d.wallMs / 1000).toFixed(2)} s, ${(evPerS(d) / 1e6).toFixed(2)} M events/s`);
  console.log(`  delivered segments ${d.segments}, CPU ${(d.cpuUs / 1e6).toFixed(2)} s → ${perSeg(d).toFixed(2)} µs/segment (ns-3 3.37: ~31; target ≤ ${TARGET_US})`);
  console.log(`  goodput ${(goodput / 1e6).toFixed(1)} Mbit/s, drops ${d.result.drops.buffer}`);
  console.log(`  RSS over simulated time: ${rss.join(', ')}`);

  console.log('\nincast sweep (sim/examples/incast.yaml: 1 MB block, 100 rounds; RTOmin × N)');
  const text = readFileSync(INCAST, 'utf8');
  const axes = [parseAxis('tcp.rtoMin=200ms,1ms', text), parseAxis('incast.servers=1,2,4,8,16,32,48', text)];
  const total = { cpuUs: 0, segments: 0, events: 0, wallMs: 0 };
  console.log('  RTOMIN  N   SIMULATED   EVENTS     M EV/S  SEGMENTS  µs/SEG  GOODPUT');
  for (const choice of grid(axes)) {
    const m = await measure(pointText(text, axes, choice), 'incast');
    total.cpuUs += m.cpuUs;
    total.segments += m.segments;
    total.events += m.result.events;
    total.wallMs += m.wallMs;
    const [rto, n] = [axes[0]!.raw[choice[0]!]!, axes[1]!.raw[choice[1]!]!];
    console.log(
      `  ${rto.padEnd(6)}  ${n.padStart(2)}  ${(m.result.simulatedNs / 1e9).toFixed(2).padStart(8)} s  ${String(m.result.events).padStart(9)}  ${(evPerS(m) / 1e6).toFixed(2).padStart(5)}  ${String(m.segments).padStart(8)}  ${perSeg(m).toFixed(2).padStart(6)}  ${(m.result.incast[0]!.goodputBps / 1e6).toFixed(1).padStart(6)} Mbit/s`,
    );
  }
  console.log(`  all 14 points: ${total.events} events, ${(total.wallMs / 1000).toFixed(2)} s wall, ${(total.events / (total.wallMs / 1000) / 1e6).toFixed(2)} M events/s, ${(total.cpuUs / total.segments).toFixed(2)} µs/segment (ns-3 3.37 at N=48: ~44)`);

  // The TCP models beyond NewReno cost more per ACK (CUBIC's cube root, the SACK scoreboard, pacing timers).
  console.log('\nTCP variants (the same dumbbell; incast N = 48 at RTOmin 1 ms)');
  console.log('  SCENARIO   TCP                                            EVENTS     M EV/S  SEGMENTS  µs/SEG  GOODPUT');
  const variants: Array<[string, string, string]> = [];
  for (const tcp of ['variant: cubic, sack: true', 'variant: cubic, sack: true, pacing: true', 'variant: newreno, sack: true, delayedAck: true']) {
    variants.push(['dumbbell', tcp, DUMBBELL.replace(/variant: newreno,[^}]*delayedAck: false/, `${tcp}, mss: 1448, initialWindow: 10, rtoMin: 200ms`)]);
  }
  const n48 = [parseAxis('tcp.rtoMin=1ms', text), parseAxis('incast.servers=48', text)];
  const incast48 = pointText(text, n48, [0, 0]).replace(/^  variant: newreno$/m, '  variant: cubic\n  sack: true');
  if (!incast48.includes('sack: true')) throw new Error('bench: could not set CUBIC + SACK in the incast scenario');
  variants.push(['incast 48', 'variant: cubic, sack: true', incast48]);
  for (const [name, tcp, scenario] of variants) {
    const m = await measure(scenario, name);
    const g = m.result.flows.reduce((a, f) => a + f.goodputBps, 0) + m.result.incast.reduce((a, i) => a + i.goodputBps, 0);
    console.log(`  ${name.padEnd(9)}  ${tcp.padEnd(45)}  ${String(m.result.events).padStart(9)}  ${(evPerS(m) / 1e6).toFixed(2).padStart(5)}  ${String(m.segments).padStart(8)}  ${perSeg(m).toFixed(2).padStart(6)}  ${(g / 1e6).toFixed(1).padStart(6)} Mbit/s`);
  }

  console.log('\nRPCs (sim/examples/rpc-web-search.yaml: web-search sizes, Poisson arrivals, 60% load, two classes; 10 s simulated)');
  const rpcRss: string[] = [];
  const rpcText = readFileSync(RPC, 'utf8').replace(/^duration: .*$/m, 'duration: 10s');
  const q = await measure(rpcText, RPC, (f) => rpcRss.push(`${Math.round(f * 100)}%: ${mib(process.memoryUsage.rss())}`));
  const rpcs = q.result.rpc.reduce((a, w) => a + w.completed, 0);
  console.log(`  events ${q.result.events}, wall ${(q.wallMs / 1000).toFixed(2)} s, ${(evPerS(q) / 1e6).toFixed(2)} M events/s`);
  console.log(`  delivered segments ${q.segments}, CPU ${(q.cpuUs / 1e6).toFixed(2)} s → ${perSeg(q).toFixed(2)} µs/segment (target ≤ ${TARGET_US})`);
  console.log(`  RPCs completed ${rpcs} (${(rpcs / 10).toFixed(0)}/s), connections opened ${2 * q.result.rpc.reduce((a, w) => a + w.arrivals, 0)}, goodput ${(q.result.rpc.reduce((a, w) => a + w.goodputBps, 0) / 1e6).toFixed(1)} Mbit/s`);
  console.log(`  RSS over simulated time: ${rpcRss.join(', ')}`);

  console.log(`\npeak RSS (process.resourceUsage().maxRSS): ${mib(process.resourceUsage().maxRSS * 1024)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
