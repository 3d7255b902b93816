/**
 * bench:enforcement, INSIDE the VM (bench/enforcement.ts boots it): one class set through REST to
 * each rate in turn, iperf3 TCP through pacer's agent on fq for BENCH_SECONDS at each, and what
 * the receiver got, what pacer's stats and delay histogram say. Also one run of unclassified
 * traffic (no class: not paced) as the baseline of what the VM can push. Writes
 * $RESULTS/bench.json after every step; bench/enforcement.ts does the arithmetic and the table.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { delayQuantile, type DelayHistogram } from '../shaper-bpf/src/datapath.js';
import { Lab, now, RECEIVERS, type IperfRun } from '../test/enforcement/guest-lab.js';
import { statsDelta, type StatsDelta } from '../test/enforcement/report.js';

export interface BenchStep {
  budgetMbps: number;
  run: IperfRun;
  stats: StatsDelta;
  /** Quantiles of the per-packet delay pacer held the packets for during this run (ns, bucket upper bounds). */
  delayP50Ns?: number;
  delayP99Ns?: number;
  delayPackets: number;
}

export interface BenchReport {
  kernel: string;
  loadStart: string;
  loadEnd?: string;
  seconds: number;
  /** Unclassified traffic (no class matches it: not paced), same path. */
  unpaced?: IperfRun;
  steps: BenchStep[];
  error?: string;
}

const resultsDir = process.env.RESULTS;
if (!resultsDir) throw new Error('enforcement-guest: RESULTS is not set (run it through runInVm)');
const rates = (process.env.BENCH_RATES ?? '10,50,100,200').split(',').map(Number);
const seconds = Number(process.env.BENCH_SECONDS ?? '10');
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').trim();
const report: BenchReport = { kernel: release(), loadStart: loadavg(), seconds, steps: [] };
const save = (): void => writeFileSync(join(resultsDir, 'bench.json'), JSON.stringify(report, null, 2));
const log = (msg: string): void => console.log(`[guest ${(now() / 1000).toFixed(1)} s] ${msg}`);

/** The packets counted between two readings of a class's histogram. */
function histogramDelta(before: DelayHistogram, after: DelayHistogram): DelayHistogram {
  const buckets = after.buckets.map((b, i) => ({ ...b, count: b.count - before.buckets[i]!.count }));
  return { buckets, total: after.total - before.total };
}

const lab = new Lab();
save();
try {
  await lab.start(log);
  await lab.iperfServer(5201);
  log('lab ready');
  report.unpaced = await lab.iperf(RECEIVERS[1], 5201, Math.min(seconds, 6));
  log(`unpaced: ${report.unpaced.receivedMbps} Mbit/s`);
  save();
  const name = 'bench';
  const { id } = await lab.createClass({ name, rate: `${rates[0]}mbit`, match: { dst: [`${RECEIVERS[0]}/32`] } });
  for (const budgetMbps of rates) {
    await lab.patchClass(name, { rate: `${budgetMbps}mbit` }).catch(() => undefined); // the first is already set
    await lab.kernelRateIs(id, budgetMbps * 1e6);
    const stats = lab.stats(id);
    const hist = lab.delayHistogram(id);
    const run = await lab.iperf(RECEIVERS[0], 5201, seconds);
    const delays = histogramDelta(hist, lab.delayHistogram(id));
    report.steps.push({ budgetMbps, run, stats: statsDelta(stats, lab.stats(id)), delayP50Ns: delayQuantile(delays, 0.5), delayP99Ns: delayQuantile(delays, 0.99), delayPackets: delays.total });
    log(`${budgetMbps} Mbit/s: received ${run.receivedMbps} Mbit/s of payload`);
    save();
  }
} catch (err) {
  report.error = (err as Error).stack ?? String(err);
  log(`failed: ${report.error}`);
} finally {
  report.loadEnd = loadavg();
  save();
  await lab.stop().catch((err: Error) => log(`lab stop: ${err.message}`));
}
