/**
 * The InfluxDB sink against a real influxd (Debian package `influxdb`, InfluxDB 1.6) started on
 * free 127.0.0.1 ports with its data in a temp dir (test/support/influxd.ts). In-memory datapaths
 * with stats the test writes; the sink's clock is the test's, ticks are driven by hand.
 */
import assert from 'node:assert/strict';
import { InfluxDB } from 'influx';
import { Datapath, memoryTables, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import { InfluxSink, INFLUX_MEASUREMENT } from '../../controller/metrics/influx-sink.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { DelayHistogramCache } from '../../controller/metrics/delay-histograms.js';
import { bucketOf, bucketUpperNs } from '../../shaper-bpf/src/delay-hist.js';
import { startInfluxd, type RunningInfluxd } from '../support/influxd.js';

const ZERO: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };

/** An in-memory datapath with classes at the given rates and counters (by class id) the test sets. */
function fakeDatapath(rates: Record<number, number>) {
  const tables = memoryTables();
  const counters = new Map<number, ClassStats>();
  tables.stats = {
    get: (slot) => {
      const id = [...tables.slots.entries()].find(([, s]) => s === slot)?.[0];
      return (id !== undefined && counters.get(id)) || ZERO;
    },
    zeroMany: () => {},
  };
  const datapath = new Datapath(tables);
  const state: ShaperState = {
    classes: new Map(Object.entries(rates).map(([id, rate_bps]) => [Number(id), { rate_bps, burst_ns: 1_000_000, horizon_ns: 2_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 }])),
    marks: new Map(),
    cgroups: new Map(),
    dst4: new Map(),
    dst6: new Map(),
    settings: { default_class: 0, flags: 0 },
  };
  datapath.apply(state);
  const add = (id: number, d: Partial<ClassStats>) => {
    const s = { ...(counters.get(id) ?? ZERO) };
    for (const [k, v] of Object.entries(d) as [keyof ClassStats, number][]) s[k] += v;
    counters.set(id, s);
  };
  /** n packets of the class pass, each held delayNs: counted in its histogram and its counters, as the program does. */
  const pass = (id: number, delayNs: number, n: number) => {
    const slot = datapath.slots().get(id)!;
    for (let i = 0; i < n; i++) tables.hists.record(slot, delayNs);
    add(id, { packets: n, bytes: 1000 * n, delayed: delayNs > 0 ? n : 0, delay_ns: delayNs * n });
  };
  return { datapath, add, pass };
}

/** What the data plane reports for a delay: the upper bound of its bucket, ns. */
const reported = (delayNs: number) => bucketUpperNs(bucketOf(delayNs));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('InfluxDB sink (real influxd)', function () {
  this.timeout(60_000);
  let influxd: RunningInfluxd | undefined;

  before(async () => {
    influxd = await startInfluxd();
  });

  after(async () => {
    await influxd?.stop();
  });

  it('config: --influx / PACER_INFLUX, with the database in the path', () => {
    const c = resolveAgentConfig({ api: 'http://a:1', iface: ['eth0'] }, { PACER_TOKEN: 't', PACER_INFLUX: 'http://127.0.0.1:8086/pacer' });
    assert.equal(c.settings.influx, 'http://127.0.0.1:8086/pacer');
    assert.throws(() => resolveAgentConfig({ api: 'http://a:1', iface: ['eth0'], influx: 'http://127.0.0.1:8086' }, { PACER_TOKEN: 't' }), /influx: must be/);
  });

  it('writes one pacer_class point per class and interface per interval, with rates since the previous sample', async () => {
    const eth0 = fakeDatapath({ 7: 10_000_000, 8: 2_000_000 });
    const eth1 = fakeDatapath({ 7: 5_000_000 });
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
    let now = t0;
    const sink = new InfluxSink({
      url: `${influxd!.url}/pacer_test`,
      host: 'node-t',
      sources: () => [
        { iface: 'eth0', mode: 'shaping', datapath: eth0.datapath },
        { iface: 'eth1', mode: 'policing', datapath: eth1.datapath },
      ],
      className: (id) => ({ 7: 'web', 8: 'bulk' })[id],
      intervalMs: 0,
      now: () => now,
    });
    await sink.tick(); // the baseline: no point yet
    assert.equal(sink.written, 0);
    eth0.add(7, { bytes: 1_250_000, packets: 1000, delayed: 100, delay_ns: 500_000_000, horizon_drops: 3, ce_marks: 2 });
    eth0.add(8, { bytes: 500_000, packets: 400 });
    eth1.add(7, { bytes: 300_000, packets: 200, contended: 4 });
    now += 2_000; // two seconds: rates are per second
    await sink.tick();
    assert.equal(sink.lastError, null);
    assert.equal(sink.written, 3);
    assert.equal(sink.pending, 0);

    const q = new InfluxDB(`${influxd!.url}/pacer_test`);
    const rows = await q.query<Record<string, unknown>>(`SELECT * FROM ${INFLUX_MEASUREMENT} ORDER BY time`);
    assert.equal(rows.length, 3);
    const by = (iface: string, id: string) => rows.find((r) => r.iface === iface && r.class_id === id)!;
    const web0 = by('eth0', '7');
    assert.equal((web0.time as Date).getTime(), t0 + 2_000);
    assert.deepEqual(
      { host: web0.host, iface: web0.iface, class: web0.class, class_id: web0.class_id, mode: web0.mode },
      { host: 'node-t', iface: 'eth0', class: 'web', class_id: '7', mode: 'shaping' },
    );
    assert.equal(web0.bytes_per_s, 625_000);
    assert.equal(web0.packets_per_s, 500);
    assert.equal(web0.delayed, 100);
    assert.equal(web0.mean_delay_ns, 5_000_000);
    assert.equal(web0.horizon_drops, 3);
    assert.equal(web0.ce_marks, 2);
    assert.equal(web0.effective_rate_bps, 10_000_000);
    assert.equal(web0.interval_s, 2);
    const bulk = by('eth0', '8');
    assert.deepEqual([bulk.class, bulk.bytes_per_s, bulk.mean_delay_ns, bulk.effective_rate_bps], ['bulk', 250_000, 0, 2_000_000]);
    const web1 = by('eth1', '7');
    assert.deepEqual([web1.mode, web1.bytes_per_s, web1.contended, web1.effective_rate_bps], ['policing', 150_000, 4, 5_000_000]);
    // The tags are tags (indexed), not fields.
    const tagKeys = await q.query<{ tagKey: string }>(`SHOW TAG KEYS FROM ${INFLUX_MEASUREMENT}`);
    assert.deepEqual(tagKeys.map((t) => t.tagKey).sort(), ['class', 'class_id', 'host', 'iface', 'mode']);
    await sink.stop();
  });

  it('delay_p50_ns and delay_p99_ns: of the packets passed in each interval, not since start; absent when none passed', async () => {
    const eth0 = fakeDatapath({ 7: 10_000_000, 8: 2_000_000 });
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 90_000;
    let now = t0;
    const histograms = new DelayHistogramCache();
    const sink = new InfluxSink({
      url: `${influxd!.url}/pacer_delays`,
      host: 'node-d',
      sources: () => [{ iface: 'eth0', mode: 'shaping', datapath: eth0.datapath }],
      intervalMs: 0,
      now: () => now,
      histograms,
    });
    eth0.pass(7, 0, 5); // before the baseline: in no interval
    await sink.tick();
    // Second 1: class 7 sends 98 packets at once and 2 held 5 ms; class 8 nothing. A /metrics
    // scrape reads the shared cache in between: the sink's interval still holds all 100.
    eth0.pass(7, 0, 98);
    histograms.histograms(eth0.datapath, eth0.datapath.stats().classes);
    eth0.pass(7, 5_000_000, 2);
    now += 1_000;
    await sink.tick();
    // Second 2: class 7 sends 10 packets held 100 µs; class 8 one held beyond 2^34 ns (the overflow bucket).
    eth0.pass(7, 100_000, 10);
    eth0.pass(8, 2 ** 34 + 5, 1);
    now += 1_000;
    await sink.tick();
    // Second 3: nothing passes: no histogram is read at all.
    const reads = histograms.counts.reads;
    now += 1_000;
    await sink.tick();
    assert.equal(histograms.counts.reads, reads, 'an idle second reads no histogram');
    assert.equal(sink.lastError, null);

    const rows = await new InfluxDB(`${influxd!.url}/pacer_delays`).query<Record<string, unknown>>(`SELECT * FROM ${INFLUX_MEASUREMENT} ORDER BY time`);
    const at = (id: string, second: number) => rows.find((r) => r.class_id === id && (r.time as Date).getTime() === t0 + second * 1000)!;
    const fields = (r: Record<string, unknown>) => [r.delay_p50_ns, r.delay_p99_ns];
    // Rank ⌈0.5 × 100⌉ = 50 is a packet sent at once (under 1.024 µs); rank 99 one held 5 ms.
    assert.deepEqual(fields(at('7', 1)), [1024, reported(5_000_000)]);
    // Only second 2's packets: 100 µs, although most of the class's packets so far were not delayed.
    assert.deepEqual(fields(at('7', 2)), [reported(100_000), reported(100_000)]);
    assert.deepEqual(fields(at('8', 2)), [2 ** 34, 2 ** 34], 'the overflow bucket is written as its lower bound');
    for (const [id, second] of [['8', 1], ['7', 3], ['8', 3]] as const) {
      assert.deepEqual(fields(at(id, second)), [null, null], `class ${id}, second ${second}: no packet, no percentile (not 0)`);
      assert.equal(at(id, second).packets_per_s, 0);
    }
    await sink.stop();
  });

  it('while influxd is down, keeps at most maxBuffer points (oldest dropped, counted) and writes them when it is back', async () => {
    const eth0 = fakeDatapath({ 9: 1_000_000 });
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 120_000;
    let now = t0;
    const warnings: unknown[] = [];
    const sink = new InfluxSink({
      url: `${influxd!.url}/pacer_buffered`,
      host: 'node-b',
      sources: () => [{ iface: 'eth0', mode: 'shaping', datapath: eth0.datapath }],
      intervalMs: 0,
      maxBuffer: 5,
      now: () => now,
      log: { warn: (o: unknown) => warnings.push(o), info: () => {} },
    });
    await influxd!.halt();
    await sink.tick();
    for (let i = 1; i <= 8; i++) {
      eth0.add(9, { bytes: 1000 * i, packets: i });
      now += 1_000;
      const started = Date.now();
      await sink.tick(); // never rejects, never waits long
      assert.ok(Date.now() - started < 3_000, 'a failed write returns quickly');
    }
    assert.equal(sink.pending, 5);
    assert.equal(sink.dropped, 3);
    assert.equal(sink.written, 0);
    assert.notEqual(sink.lastError, null);
    assert.equal(warnings.length, 1, 'one warning when writes start failing, not one per tick');

    await influxd!.resume();
    const end = Date.now() + 20_000;
    while (sink.pending > 0) {
      if (Date.now() > end) throw new Error(`buffered points not written after influxd came back: ${sink.lastError}`);
      await sink.flush();
      if (sink.pending > 0) await sleep(200);
    }
    assert.equal(sink.written, 5);
    const rows = await new InfluxDB(`${influxd!.url}/pacer_buffered`).query<Record<string, unknown>>(`SELECT * FROM ${INFLUX_MEASUREMENT} ORDER BY time`);
    // The newest five survived: seconds 4..8, with 1000 × i bytes in second i.
    assert.deepEqual(
      rows.map((r) => [(r.time as Date).getTime() - t0, r.bytes_per_s, r.host, r.class]),
      [4, 5, 6, 7, 8].map((i) => [i * 1000, 1000 * i, 'node-b', '9']),
    );
    await sink.stop();
  });
});
