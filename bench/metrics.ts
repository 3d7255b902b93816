/**
 * `node dist/bench/metrics.js` (after `npm run build`): what the agent's per-class metrics cost on
 * the real kernel, with the delay histograms (controller/metrics/), for `--classes` classes on a
 * real pinned EgressObject (pacer_tc.o, pins under /sys/fs/bpf/pacer-bench-<pid>-*, removed
 * however the run ends: bench/pins.ts). Packets are passed through chosen classes with
 * BPF_PROG_TEST_RUN (by mark), so their counters and histograms really move.
 *
 * Per class count, median of `--rounds` rounds (rounds interleave the rows, so noise hits all):
 * - before: stats() + read(), what one InfluxDB sample or one scrape read before histograms;
 * - delayHistograms(): every class's histogram read through the Datapath;
 * - delayHistogram(id) of one class (a read of class_slot and one histogram);
 * - DelayHistogramCache.histograms() when a fraction of the classes passed packets since the last
 *   sample (0 = idle), which asks the Datapath for just those classes; the same list read by
 *   delayHistograms(ids) directly; and the floor under it: the histogram map's getMany for just
 *   those slots (what the list costs without the read of class_slot);
 * - a whole InfluxSink.sample() and a whole PrometheusMetrics.render() (the scrape), with and
 *   without the histograms' cost, and the scrape's size.
 * Results: bench/results/metrics-<timestamp>.json and a Markdown table on stdout.
 *
 * Options: --classes 1000,10000 --rounds 7 --active 0,0.01,0.1,1
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { EgressObject } from '../shaper-bpf/src/egress.js';
import { Datapath, type ShaperState } from '../shaper-bpf/src/datapath.js';
import { skbContext } from '../shaper-bpf/src/libbpf/index.js';
import { DelayHistogramCache } from '../controller/metrics/delay-histograms.js';
import { InfluxSink } from '../controller/metrics/influx-sink.js';
import { PrometheusMetrics } from '../controller/metrics/prometheus.js';
import { frame } from '../test/support/packets.js';
import { makeBenchPinDir, removeBenchPinDir, removeStalePinDirs, trackObject } from './pins.js';
import { fmt, git, log, machineInfo, resultsDir, summary, table, type Summary } from './report.js';
import { nowMs } from './stats.js';

const { values: args } = parseArgs({
  options: {
    classes: { type: 'string', default: '1000,10000' },
    rounds: { type: 'string', default: '7' },
    active: { type: 'string', default: '0,0.01,0.1,1' },
  },
});
const CLASS_COUNTS = args.classes.split(',').map(Number);
const ROUNDS = Number(args.rounds);
const ACTIVE = args.active.split(',').map(Number);
const WIRE_LEN = 1500;

function desired(n: number): ShaperState {
  const cfg = { rate_bps: 400_000_000_000, burst_ns: 0, horizon_ns: 10_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 };
  return {
    classes: new Map(Array.from({ length: n }, (_, i) => [i + 1, cfg] as const)),
    marks: new Map(Array.from({ length: n }, (_, i) => [i + 1, i + 1] as const)),
    cgroups: new Map(),
    dst4: new Map(),
    dst6: new Map(),
    settings: { default_class: 0, flags: 0 },
  };
}

interface Row {
  key: string;
  label: string;
  /** Work done before the timed part, not timed (passing packets). */
  prepare?: () => void;
  run: () => unknown;
}

function measure(rows: Row[]): Map<string, Summary> {
  const times = new Map<string, number[]>(rows.map((r) => [r.key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const r of rows) {
      r.prepare?.();
      const t = nowMs();
      r.run();
      times.get(r.key)!.push(nowMs() - t);
    }
  }
  return new Map([...times].map(([k, v]) => [k, summary(v)]));
}

async function benchClasses(n: number) {
  log(`${fmt(n)} classes: loading pacer_tc.o on fresh pins and applying`);
  const pinRoot = makeBenchPinDir();
  const eg = trackObject(EgressObject.load({ pinRoot }));
  try {
    const datapath = new Datapath(eg);
    datapath.apply(desired(n));
    const slots = datapath.slots();
    const data = frame('192.0.2.1', { length: WIRE_LEN });
    // One packet through each of the first k classes (by mark), so their counters and histograms move.
    const pass = (k: number) => {
      for (let id = 1; id <= k; id++) eg.program.testRun({ data, ctxIn: skbContext({ mark: id, wireLen: WIRE_LEN }) });
    };
    const cache = new DelayHistogramCache();
    const sinkCache = new DelayHistogramCache();
    // Never flushed: sample() only reads the maps and queues points.
    const sink = new InfluxSink({ url: 'http://127.0.0.1:9/bench', host: 'bench', sources: () => [{ iface: 'bench0', mode: 'shaping', datapath }], intervalMs: 0, maxBuffer: 2 * n, histograms: sinkCache });
    const registry = new Registry();
    const prometheus = new PrometheusMetrics({ registry, sources: () => [{ iface: 'bench0', mode: 'shaping', datapath }], appliedRevision: () => 1, histograms: new DelayHistogramCache() });
    let scrapeBytes = 0;
    let scrapeBytesNoHistograms = 0;
    // Before any packet: no class has histogram series yet, the scrape of counters and rates only.
    const noHistogramRegistry = new Registry();
    const noHistograms = new PrometheusMetrics({ registry: noHistogramRegistry, sources: () => [{ iface: 'bench0', mode: 'shaping', datapath }], appliedRevision: () => 1 });
    const noHistogramScrapes: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const t = nowMs();
      scrapeBytesNoHistograms = (await noHistograms.render()).length;
      noHistogramScrapes.push(nowMs() - t);
    }
    pass(n); // every class has sent once: idle classes have non-empty histograms (the worst case)
    const rows: Row[] = [
      { key: 'before', label: 'stats() + read() (a sample before histograms)', run: () => [datapath.stats(), datapath.read()] },
      { key: 'allHists', label: 'delayHistograms(): every class', run: () => datapath.delayHistograms() },
      { key: 'oneHist', label: 'delayHistogram(id): one class', run: () => datapath.delayHistogram(1) },
    ];
    for (const f of ACTIVE) {
      const k = Math.round(f * n);
      let stats = datapath.stats().classes;
      rows.push({
        key: `cache:${f}`,
        label: `cache.histograms(), ${fmt(k)} classes passed packets`,
        // Each row's reader first catches up with what other rows passed, so only its k classes moved.
        prepare: () => {
          cache.histograms(datapath, datapath.stats().classes);
          pass(k);
          stats = datapath.stats().classes;
        },
        run: () => cache.histograms(datapath, stats),
      });
      const activeIds = Array.from({ length: k }, (_, i) => i + 1);
      rows.push({ key: `list:${f}`, label: `delayHistograms(ids) of those ${fmt(k)} classes`, run: () => datapath.delayHistograms(activeIds) });
      const activeSlots = activeIds.map((id) => slots.get(id)!);
      rows.push({ key: `floor:${f}`, label: `delay_hist getMany of those ${fmt(k)} slots only (the list without class_slot)`, run: () => eg.hists.getMany(activeSlots) });
      rows.push({ key: `influx:${f}`, label: `InfluxSink.sample(), ${fmt(k)} classes passed packets`, prepare: () => (sink.sample(), pass(k)), run: () => sink.sample() });
      rows.push({
        key: `scrape:${f}`,
        label: `/metrics render, ${fmt(k)} classes passed packets`,
        prepare: () => (prometheus.collect(), pass(k)),
        run: async () => {
          scrapeBytes = (await prometheus.render()).length;
        },
      });
      rows.push({ key: `scrape:${f}:collect`, label: `  of which collect() (maps and histograms read)`, prepare: () => (prometheus.collect(), pass(k)), run: () => prometheus.collect() });
      rows.push({ key: `scrape:${f}:text`, label: `  of which registry.metrics() (prom-client's text)`, run: () => registry.metrics() });
    }
    // Warm the caches (first read of every class) outside the rounds.
    cache.histograms(datapath, datapath.stats().classes);
    sink.sample();
    const results = measure(rows.filter((r) => !r.key.startsWith('scrape:')));
    results.set('scrapeNoHistograms', summary(noHistogramScrapes));
    rows.unshift({ key: 'scrapeNoHistograms', label: `/metrics render before any packet (no histogram series; ${fmt(scrapeBytesNoHistograms / 1024)} KiB)`, run: () => undefined });
    return { n, rows, results, sink, prometheus, scrapeRows: rows.filter((r) => r.key.startsWith('scrape:')), scrapeBytes: () => scrapeBytes, cache, sinkCache };
  } catch (err) {
    eg.close();
    removeBenchPinDir(pinRoot);
    throw err;
  }
}

/** Scrapes are async (prom-client renders with promises): measured in their own loop. */
async function measureScrapes(rows: Row[]): Promise<Map<string, Summary>> {
  const times = new Map<string, number[]>(rows.map((r) => [r.key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const r of rows) {
      r.prepare?.();
      const t = nowMs();
      await r.run();
      times.get(r.key)!.push(nowMs() - t);
    }
  }
  return new Map([...times].map(([k, v]) => [k, summary(v)]));
}

async function main() {
  const stale = removeStalePinDirs();
  if (stale.length > 0) log(`removed pins of dead runs: ${stale.join(', ')}`);
  const out: Record<string, unknown> = { machine: machineInfo(), commit: git(['rev-parse', 'HEAD']), rounds: ROUNDS, results: {} };
  for (const n of CLASS_COUNTS) {
    const b = await benchClasses(n);
    const scrapes = await measureScrapes(b.scrapeRows);
    const all = new Map([...b.results, ...scrapes]);
    const before = all.get('before')!.median;
    const rows = [['what', 'median ms', 'min–max ms', 'µs per class', '× before']];
    for (const r of b.rows) {
      const s = all.get(r.key)!;
      rows.push([r.label, fmt(s.median, 2), `${fmt(s.min, 2)}–${fmt(s.max, 2)}`, fmt((s.median * 1000) / n, 1), (s.median / before).toFixed(2)]);
    }
    console.log(`\n### ${fmt(n)} classes (scrape: ${fmt(b.scrapeBytes() / 1024)} KiB)\n\n${table(rows)}`);
    (out.results as Record<string, unknown>)[n] = { medians: Object.fromEntries([...all].map(([k, s]) => [k, s])), scrapeBytes: b.scrapeBytes(), reads: b.cache.counts };
  }
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `metrics-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  log(`results: ${file}`);
}

await main();
