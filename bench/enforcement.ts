/**
 * `npm run bench:enforcement`: how closely pacer holds a budget on a kernel with fq, end to end
 * (REST → agent → maps → EDT → fq → wire). Boots Debian 12's 6.1 kernel under qemu
 * (vm/runner.ts) and runs bench/enforcement-guest.js inside: one class at 10, 50, 100 and
 * 200 Mbit/s in turn, iperf3 TCP at each. Reports achieved vs. budget (mean error and worst
 * per-second error, on wire rates as the budget counts them), retransmits, and the p50/p99 of the
 * per-packet delay from pacer's delay histogram; the unpaced baseline (no class) is what the VM
 * could push in the same run. Target: mean error ≤ 1% at every rate.
 *
 *   npm run bench:enforcement [-- --rates 10,50,100,200 --seconds 10 --icount-shift 3]
 *
 * qemu runs at nice -10 (a starved TCG paces below budget). `--icount-shift N` runs the guest on
 * qemu's instruction clock, as the enforcement tier does (docs/vm-tier.md, "A busy host"): a busy
 * host then slows the run instead of costing the guest time, but the guest is a 1000/2^N MIPS
 * machine, which caps the rates it can send (shift 3: compare with the unpaced baseline). Writes
 * bench/results/enforcement-<stamp>.json and prints a Markdown table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { prepareVm, runInVm, VmRunError } from '../vm/runner.js';
import { errorPct, mean, round2, steady } from '../test/enforcement/report.js';
import type { BenchReport } from './enforcement-guest.js';
import { fmt, git, log, machineInfo, met, resultsDir, table } from './report.js';

const TARGET_MEAN_ERROR_PCT = 1;

const { values: args } = parseArgs({ options: { rates: { type: 'string', default: '10,50,100,200' }, seconds: { type: 'string', default: '10' }, 'icount-shift': { type: 'string' } } });
const rates = args.rates!.split(',').map(Number);
const seconds = Number(args.seconds);
if (rates.some((r) => !Number.isInteger(r) || r < 1 || r > 250)) throw new Error(`--rates: whole Mbit/s from 1 to 250 (TCG caps what the VM can push), got ${args.rates}`);
if (!Number.isInteger(seconds) || seconds < 3 || seconds > 60) throw new Error(`--seconds: a whole number from 3 to 60, got ${args.seconds}`);

const icountShift = args['icount-shift'] === undefined ? undefined : Number(args['icount-shift']);
const machine = machineInfo();
const vm = prepareVm();
log(`booting ${vm.kernelVersion}${icountShift === undefined ? '' : ` (icount shift ${icountShift})`}: rates ${rates.join(', ')} Mbit/s, ${seconds} s each (host load ${machine.loadAverageAtStart.join(' ')})`);
const timeoutMs = 90_000 + rates.length * (seconds + 15) * 1000;
// On the instruction clock the budget is the guest's time, and the host's clock only a backstop.
const clock = icountShift === undefined ? {} : { clock: { icountShift }, guestTimeoutS: 200 + (timeoutMs / 1000), stallTimeoutMs: 300_000 };
let results: Record<string, string>;
try {
  results = (await runInVm({ script: 'node dist/bench/enforcement-guest.js > "$RESULTS/guest.log" 2>&1', env: { BENCH_RATES: rates.join(','), BENCH_SECONDS: String(seconds) }, nice: -10, ...clock, timeoutMs: icountShift === undefined ? timeoutMs : 25 * 60_000 }, vm)).results;
} catch (err) {
  if (!(err instanceof VmRunError)) throw err;
  log(err.message.split('\n')[0]!);
  results = err.results;
}
if (!results['bench.json']) throw new Error(`the guest wrote no bench.json; guest.log:\n${results['guest.log'] ?? '(none)'}`);
const report = JSON.parse(results['bench.json']) as BenchReport;
if (report.error) log(`the guest failed: ${report.error}\n${results['guest.log'] ?? ''}`);

const rows = report.steps.map((s) => {
  const samples = steady(s.run);
  const meanMbps = mean(samples);
  const worst = Math.max(...samples.map((x) => Math.abs(errorPct(x, s.budgetMbps))));
  return {
    budgetMbps: s.budgetMbps,
    achievedMbps: round2(meanMbps),
    meanErrorPct: errorPct(meanMbps, s.budgetMbps),
    worstSecondErrorPct: round2(worst),
    retransmits: s.run.retransmits,
    horizonDrops: s.stats.horizon_drops,
    delayedShare: round2((s.stats.delayed / Math.max(1, s.stats.packets)) * 100),
    meanDelayUs: s.stats.delayed ? round2(s.stats.delay_ns / s.stats.delayed / 1000) : 0,
    delayP50Us: s.delayP50Ns === undefined ? undefined : round2(s.delayP50Ns / 1000),
    delayP99Us: s.delayP99Ns === undefined ? undefined : round2(s.delayP99Ns / 1000),
    samplesMbps: samples,
  };
});
const unpacedMbps = report.unpaced ? round2(mean(steady(report.unpaced))) : NaN;

const out = {
  when: new Date().toISOString(),
  commit: git(['rev-parse', '--short', 'HEAD']),
  machine: { ...machine, loadAverageAtEnd: (await import('node:os')).loadavg().map((n) => round2(n)) },
  guest: { kernel: report.kernel, loadStart: report.loadStart, loadEnd: report.loadEnd, icountShift },
  seconds,
  unpacedMbps,
  rows,
  error: report.error,
};
mkdirSync(resultsDir, { recursive: true });
const file = join(resultsDir, `enforcement-${out.when.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(out, null, 2));

console.log(
  table([
    ['Budget Mbit/s', 'Achieved (wire, mean)', 'Mean error', 'Worst second', 'Retransmits', 'Horizon drops', 'Delayed', 'Delay mean / p50 / p99 µs', `Mean error ≤ ${TARGET_MEAN_ERROR_PCT}%`],
    ...rows.map((r) => [
      String(r.budgetMbps),
      fmt(r.achievedMbps, 2),
      `${r.meanErrorPct > 0 ? '+' : ''}${fmt(r.meanErrorPct, 2)}%`,
      `${fmt(r.worstSecondErrorPct, 2)}%`,
      String(r.retransmits),
      String(r.horizonDrops),
      `${fmt(r.delayedShare, 1)}%`,
      `${fmt(r.meanDelayUs, 0)} / ${r.delayP50Us === undefined ? 'n/a' : fmt(r.delayP50Us, 0)} / ${r.delayP99Us === undefined ? 'n/a' : fmt(r.delayP99Us, 0)}`,
      met(Math.abs(r.meanErrorPct) <= TARGET_MEAN_ERROR_PCT),
    ]),
  ]),
);
console.log(`\nUnpaced baseline (no class, same VM and path): ${fmt(unpacedMbps, 1)} Mbit/s on the wire. Guest load ${report.loadStart} → ${report.loadEnd}; host load at start ${machine.loadAverageAtStart.join(' ')}.`);
console.log(`Results: ${file}`);
if (report.error || rows.length < rates.length) process.exitCode = 1;
