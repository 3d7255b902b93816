/**
 * `npm run bench:agent`: what the agent costs, in one run.
 *
 * 1. kernel   REST PUT acknowledged → the new rate in the kernel map on this host: a real API child
 *             process, a real `pacer agent` child process on a veth in a network namespace this
 *             bench makes (pacer-b-*), 1,000 rate changes one at a time (bench/agent-kernel.ts).
 * 2. reconcile  100,000 classes from empty and a no-op resync through the agent's Reconciler and
 *             the kernel Datapath on pinned maps, against the raw batch update of the same entries
 *             (bench/agent-reconcile.ts).
 * 3. fleet    200 agents with in-memory datapaths against one API child: PUT → all 200 applied
 *             (bench/agent-fleet.ts).
 * 4. burst    10,000 class creations through the API child as fast as it accepts them, with a real
 *             `pacer agent` child on the kernel datapath: last create → host at the final revision,
 *             the agent's peak RSS, /metrics throughout, connections to the API, SIGTERM after
 *             (bench/agent-burst.ts); medians of --burst-rounds rounds, each from scratch.
 *
 * Namespaces, pins, child processes and temporary files are removed on success, error, Ctrl-C and
 * SIGTERM. Results: bench/results/agent-<timestamp>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { kernelBench, type Distribution, type KernelBenchResult } from './agent-kernel.js';
import { reconcileBench, type ReconcileBenchResult } from './agent-reconcile.js';
import { fleetBench, type FleetBenchResult } from './agent-fleet.js';
import { burstBench, type BurstBenchResult } from './agent-burst.js';
import { cleanupOnSignals, runCleanups } from './cleanup.js';
import { removeStaleBenchNetns } from './netns.js';
import { removeStalePinDirs } from './pins.js';
import { fmt, git, log, machineInfo, met, resultsDir, table } from './report.js';
import { median, round } from './stats.js';

const { values: argv } = parseArgs({
  options: {
    changes: { type: 'string', default: '1000' },
    classes: { type: 'string', default: '100000' },
    'per-iface': { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '5' },
    agents: { type: 'string', default: '200' },
    puts: { type: 'string', default: '30' },
    'fleet-workers': { type: 'string', default: '2' },
    'burst-classes': { type: 'string', default: '10000' },
    'burst-rounds': { type: 'string', default: '3' },
    'burst-concurrency': { type: 'string', default: '8' },
    'burst-timeout': { type: 'string', default: '120' },
    'burst-scrape-ms': { type: 'string', default: '1000' },
    only: { type: 'string', default: 'kernel,reconcile,fleet,burst' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (argv.help) {
  process.stdout.write(
    'usage: npm run bench:agent -- [--changes 1000] [--classes 100000] [--per-iface 50000] [--rounds 5]\n' +
      '                             [--agents 200] [--puts 30] [--fleet-workers 2]\n' +
      '                             [--burst-classes 10000] [--burst-rounds 3] [--burst-concurrency 8] [--burst-timeout 120 (s)] [--burst-scrape-ms 1000]\n' +
      '                             [--only kernel,reconcile,fleet,burst]\n',
  );
  process.exit(0);
}
const int = (name: string, s: string, min: number) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} must be an integer ≥ ${min}, got ${s}\n`);
    process.exit(2);
  }
  return n;
};
const opts = {
  changes: int('changes', argv.changes, 1),
  classes: int('classes', argv.classes, 1),
  perIface: int('per-iface', argv['per-iface'], 1),
  rounds: int('rounds', argv.rounds, 1),
  agents: int('agents', argv.agents, 1),
  puts: int('puts', argv.puts, 1),
  fleetWorkers: int('fleet-workers', argv['fleet-workers'], 1),
  burstClasses: int('burst-classes', argv['burst-classes'], 1),
  burstRounds: int('burst-rounds', argv['burst-rounds'], 1),
  burstConcurrency: int('burst-concurrency', argv['burst-concurrency'], 1),
  burstTimeoutMs: int('burst-timeout', argv['burst-timeout'], 1) * 1000,
  burstScrapeMs: int('burst-scrape-ms', argv['burst-scrape-ms'], 100),
  only: new Set(argv.only.split(',').map((s) => s.trim())),
};
for (const s of opts.only) {
  if (!['kernel', 'reconcile', 'fleet', 'burst'].includes(s)) {
    process.stderr.write(`--only: unknown part ${s}\n`);
    process.exit(2);
  }
}

const TARGETS = { kernelP99Ms: 20, reconcileRatio: 2, resyncMs: 100, fleetP99Ms: 500, burstConvergeS: 10, burstRssMb: 300 };

cleanupOnSignals();

async function main(): Promise<void> {
  const startedAt = new Date();
  const stale = removeStalePinDirs();
  if (stale.length > 0) log(`removed pins of earlier runs that are gone: ${stale.join(', ')}`);
  const staleNetns = await removeStaleBenchNetns();
  if (staleNetns.length > 0) log(`removed namespaces of earlier runs that are gone: ${staleNetns.join(', ')}`);
  const machine = machineInfo();
  const code = { head: git(['rev-parse', '--short', 'HEAD']), dirty: git(['status', '--porcelain', '--', 'controller', 'shaper-bpf', 'api', 'bench']).length > 0 };
  log(`pacer agent benchmark: ${machine.cpus} × ${machine.cpuModel}, Linux ${machine.kernel}, load ${machine.loadAverageAtStart.join(' ')}`);

  let kern: KernelBenchResult | undefined;
  if (opts.only.has('kernel')) {
    kern = await kernelBench({ changes: opts.changes });
    await runCleanups(); // the API and agent children stop before the next part
  }
  const rec: ReconcileBenchResult | undefined = opts.only.has('reconcile') ? await reconcileBench({ classes: opts.classes, perIface: opts.perIface, rounds: opts.rounds }) : undefined;

  let fleet: FleetBenchResult | undefined;
  if (opts.only.has('fleet')) {
    fleet = await fleetBench({ agents: opts.agents, workers: opts.fleetWorkers, puts: opts.puts });
    await runCleanups();
  }

  const bursts: BurstBenchResult[] = [];
  if (opts.only.has('burst')) {
    for (let r = 0; r < opts.burstRounds; r++) {
      log(`burst: round ${r + 1}/${opts.burstRounds}`);
      bursts.push(await burstBench({ classes: opts.burstClasses, concurrency: opts.burstConcurrency, timeoutMs: opts.burstTimeoutMs, scrapeMs: opts.burstScrapeMs }));
      await runCleanups(); // every round from scratch: API, agent, namespace, pins
    }
  }

  const out: string[] = [];
  out.push(`\npacer agent — ${startedAt.toISOString()} — ${machine.cpus} × ${machine.cpuModel}, Linux ${machine.kernel}, Node ${machine.node}, HEAD ${code.head}${code.dirty ? ' (+ uncommitted changes)' : ''}, load at start ${machine.loadAverageAtStart.join(' ')}`);
  const dist = (d: Distribution) => [fmt(d.p50, 2), fmt(d.p90, 2), fmt(d.p99, 2), fmt(d.max, 2)];
  if (kern) {
    out.push(
      `\nREST PUT → kernel map: ${fmt(kern.changes)} rate changes one at a time (after 20 not counted); pacer api and pacer agent in child processes, ` +
        `the agent on a veth in a bench namespace (${kern.mode}); class_config read through pacer's binding every ~1 ms after the PUT's answer ` +
        `(one lookup: ${kern.lookupUs} µs median)\n`,
    );
    out.push(
      table([
        ['what', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target', 'result'],
        ['PUT answered → new rate in class_config', ...dist(kern.answerToKernel), `p99 ≤ ${TARGETS.kernelP99Ms} ms`, met(kern.answerToKernel.p99 <= TARGETS.kernelP99Ms)],
        ['PUT sent → new rate in class_config', ...dist(kern.sendToKernel), '(information)', ''],
        ['PUT round trip', ...dist(kern.put), '(information)', ''],
        ["PUT answered → agent's 'applied' log line (ms clock)", ...dist(kern.answerToAgentLog), '(cross-check)', ''],
        ['polls until seen (count)', ...dist(kern.polls), '', ''],
      ]),
    );
    out.push(
      `\nhow loaded the machine was meanwhile: this process's 1 ms timer fired late by p50 ${kern.timerLateness.p50} ms, p99 ${kern.timerLateness.p99} ms, max ${kern.timerLateness.max} ms ` +
        `(a 1 s idle check here gave p50 0.08 ms); every hop (API → agent → this process) waits like that to be scheduled`,
    );
  }
  if (rec) {
    out.push(
      `\n${fmt(rec.classes)} classes (${rec.interfaces} interfaces × ${fmt(rec.perIface)}; one mark each, ${fmt(ROOTS_NOTE)} roots per interface and the rest their children) ` +
        `through the Reconciler + kernel Datapath on pinned maps, from empty; median of ${rec.rounds} rounds, ms summed over the interfaces\n`,
    );
    const s = (x: { median: number; min: number; max: number }) => [fmt(x.median, 1), `${fmt(x.min, 1)}–${fmt(x.max, 1)}`];
    out.push(
      table([
        ['what', 'ms (median)', 'spread (min–max)', 'vs raw', 'target', 'result'],
        ['raw: the same entries, batch writes + histogram maps created (floor)', ...s(rec.raw), '1.00', '—', '—'],
        ['  of which: batch writes of the pre-encoded entries', ...s(rec.rawMaps), '', '', ''],
        ['  of which: delay histograms (DelayHistMap.reset, the call the Datapath makes)', ...s(rec.rawHists), '', '', ''],
        ['reconcile from empty (apply + snapshot serialization)', ...s(rec.reconcile), rec.ratio.toFixed(2), `≤ ${TARGETS.reconcileRatio}× raw`, met(rec.ratio <= TARGETS.reconcileRatio)],
        ['  of which: the full apply (Datapath.apply)', ...s(rec.reconcileApply), rec.applyRatio.toFixed(2), `≤ ${TARGETS.reconcileRatio}× raw`, met(rec.applyRatio <= TARGETS.reconcileRatio)],
        ['  of which: serializing the snapshot (written to disk off the event loop)', ...s(rec.reconcileSnapshot), '', '', ''],
        ['no-op resync (desired == kernel)', ...s(rec.resync), '', `≤ ${TARGETS.resyncMs} ms`, met(rec.resync.median <= TARGETS.resyncMs)],
        ['  of which: Datapath.apply (reads the maps, diffs)', ...s(rec.resyncApply), '', '', ''],
        ['  of which: serializing the snapshot (none: the state was snapshotted)', ...s(rec.resyncSnapshot), '', '', ''],
        ['floor: reading class_slot, class_config, mark_class with BPF_MAP_LOOKUP_BATCH', ...s(rec.resyncFloor), '', '', ''],
      ]),
    );
    out.push(
      `\nper-round ratios to the same round's floor: reconcile ${rec.perRoundRatio.min.toFixed(2)}–${rec.perRoundRatio.max.toFixed(2)} (median ${rec.perRoundRatio.median.toFixed(2)}), ` +
        `full apply ${rec.perRoundApplyRatio.min.toFixed(2)}–${rec.perRoundApplyRatio.max.toFixed(2)} (median ${rec.perRoundApplyRatio.median.toFixed(2)})`,
    );
    out.push(`entries the reconcile wrote on one interface: ${JSON.stringify(rec.entriesWritten)}`);
  }
  if (fleet) {
    out.push(
      `\n${fleet.agents} agents (in-memory datapaths, ${fleet.workers} worker threads of this process, each agent its own host, token and watch) against one pacer api child; ` +
        `${fleet.puts} PUTs of one class matching every host, one at a time (after 3 not counted), ${500} ms apart; started and converged in ${fmt(fleet.startupMs / 1000, 1)} s\n`,
    );
    out.push(
      table([
        ['what', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target', 'result'],
        [`PUT answered → all ${fleet.agents} applied`, ...dist(fleet.answerToAll), `p99 ≤ ${TARGETS.fleetP99Ms} ms`, met(fleet.answerToAll.p99 <= TARGETS.fleetP99Ms)],
        [`PUT sent → all ${fleet.agents} applied`, ...dist(fleet.sendToAll), '(information)', ''],
        ['PUT answered → each agent applied', ...dist(fleet.answerToEach), '(information)', ''],
        ['PUT round trip', ...dist(fleet.put), '(information)', ''],
      ]),
    );
    const e = fleet.workerEventLoopUtilization;
    out.push(
      `\nis this process the bottleneck? worker threads' event-loop utilization while a PUT propagated: p50 ${e.p50}, p90 ${e.p90}, max ${e.max} (1 = busy the whole time); ` +
        `CPU over those windows: this process ${fleet.benchCpuPct}% of one core (all threads), the API child ${fleet.apiCpuPct}%; ` +
        `this process's CPU per agent per change ${fleet.cpuMsPerAgentChange} ms, so ${fleet.agents} agents need ${fmt(fleet.cpuMsPerAgentChange * fleet.agents, 0)} ms of CPU per change, ` +
        `${fmt((fleet.cpuMsPerAgentChange * fleet.agents) / Math.min(fleet.workers, os.cpus().length), 0)} ms on each of ${Math.min(fleet.workers, os.cpus().length)} cores if they had them to themselves`,
    );
  }
  if (bursts.length > 0) {
    const b0 = bursts[0]!;
    out.push(
      `\n${fmt(b0.classes)} classes created through the API (${opts.burstConcurrency} creates in flight), a pacer agent child on the kernel datapath (veth in a bench namespace) ` +
        `following them; /metrics scraped every ${opts.burstScrapeMs} ms; ${bursts.length} rounds from scratch, median last; waited at most ${opts.burstTimeoutMs / 1000} s after the last create\n`,
    );
    const conv = (b: BurstBenchResult) => (b.convergeSeconds === null ? `> ${opts.burstTimeoutMs / 1000} (at ${b.appliedRevisionAtEnd} of ${b.finalRevision})` : fmt(b.convergeSeconds, 2));
    const rows = bursts.map((b, i) => [
      `round ${i + 1}`,
      `${fmt(b.createSeconds, 1)} (${b.createsPerSecond}/s)`,
      conv(b),
      fmt(b.peakRssMb),
      `${b.metricsScrapes - b.metricsFailures}/${b.metricsScrapes}; ${fmt(b.metricsMedianMs)} / ${fmt(b.metricsSlowestMs)} ms; at rest ${fmt(b.metricsAtRestMs)} / ${fmt(b.metricsAtRestSlowestMs)} ms (${fmt(b.metricsBytes / 1e6, 1)} MB)`,
      fmt(b.applies),
      String(b.mostApiConnections),
      b.sigtermExitMs === null ? '> 60000 (killed)' : `${fmt(b.sigtermExitMs)} (exit ${b.exitCode})`,
      b.tmpFilesLeft.length === 0 ? 'none' : b.tmpFilesLeft.join(' '),
      b.restart ? `${fmt(b.restart.seconds, 2)} s, ${fmt(b.restart.peakRssMb)} MB` : 'not within 60 s',
    ]);
    const med = (f: (b: BurstBenchResult) => number) => median(bursts.map(f));
    const convergeMedian = med((b) => b.convergeSeconds ?? Infinity);
    const rssMedian = med((b) => b.peakRssMb);
    out.push(
      table([
        ['', 'creates s', 'last create → host at final revision, s', 'agent peak RSS MB', '/metrics answered; during the burst median / slowest; at rest median / slowest', 'applies', 'most connections to the API', 'SIGTERM → exit ms', '*.tmp left', 'then a fresh agent: start → final revision applied, peak RSS'],
        ...rows,
        ['median', fmt(med((b) => b.createSeconds), 1), Number.isFinite(convergeMedian) ? fmt(convergeMedian, 2) : `> ${opts.burstTimeoutMs / 1000}`, fmt(rssMedian), `${fmt(med((b) => b.metricsMedianMs))} / ${fmt(med((b) => b.metricsSlowestMs))} ms; at rest ${fmt(med((b) => b.metricsAtRestMs))} / ${fmt(med((b) => b.metricsAtRestSlowestMs))} ms`, fmt(med((b) => b.applies)), String(med((b) => b.mostApiConnections)), fmt(med((b) => b.sigtermExitMs ?? Infinity)), '', ''],
        ['target', '', `≤ ${TARGETS.burstConvergeS} ${met(convergeMedian <= TARGETS.burstConvergeS)}`, `< ${TARGETS.burstRssMb} ${met(rssMedian < TARGETS.burstRssMb)}`, `all ${met(bursts.every((b) => b.metricsFailures === 0))}`, '', '', '', `none ${met(bursts.every((b) => b.tmpFilesLeft.length === 0))}`, ''],
      ]),
    );
  }
  const printed = out.join('\n');
  process.stdout.write(`${printed}\n`);
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `agent-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const result = {
    date: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npm run bench:agent${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((n) => round(n, 2)) },
    code,
    options: { ...opts, only: [...opts.only] },
    targets: TARGETS,
    kernel: kern,
    reconcile: rec,
    fleet,
    burst: bursts,
    printed,
  };
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`\nresults: ${file}\n`);
}

const ROOTS_NOTE = 1000;

main().then(
  () => runCleanups(),
  async (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    await runCleanups();
    process.exit(1);
  },
);
