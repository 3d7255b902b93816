/**
 * The whole agent writing to InfluxDB: a real influxd (test/support/influxd.ts), a real API
 * process, a real `pacer agent --influx URL/DB` process enforcing on a veth pair in namespaces this
 * test makes, and real UDP through one of its classes. The points are queried back from InfluxDB
 * and checked against what was sent and against the kernel's own counters; the agent's /metrics
 * too (the delay histogram against the kernel's packets counter).
 *
 *   web    20 Mbit/s → peer(0), a 10 Mbit/s UDP stream (below its rate: nothing is dropped)
 *   quiet   5 Mbit/s → peer(1), no traffic
 *   agg    40 Mbit/s
 *   └─ bulk 5 Mbit/s, ceil 30 → peer(2), 50 Mbit/s: borrows up to its ceil (borrowing every second)
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { InfluxDB } from 'influx';
import { INFLUX_MEASUREMENT } from '../../controller/metrics/influx-sink.js';
import { bucketOf, bucketUpperNs } from '../../shaper-bpf/src/delay-hist.js';
import { freePort, until } from '../support/agent-processes.js';
import { parsePrometheusText } from '../support/prometheus-text.js';
import { useAgentRig } from '../support/agent-rig.js';
import { startInfluxd, type RunningInfluxd } from '../support/influxd.js';
import { startUdpStream, UDP4_FRAME_OVERHEAD, type UdpStream } from '../support/udp-stream.js';

const IFACE = 'ai0';
const HOST = 'influx-node-1';
const DATABASE = 'pacer_agent_test';
const PAYLOAD = 1200;
const FRAME = PAYLOAD + UDP4_FRAME_OVERHEAD;
const SENT_BPS = 10_000_000;
const STREAM_MS = 6_000;

interface Row {
  time: Date;
  host: string;
  iface: string;
  class: string;
  class_id: string;
  mode: string;
  bytes_per_s: number;
  packets_per_s: number;
  delayed: number;
  mean_delay_ns: number;
  horizon_drops: number;
  ce_marks: number;
  contended: number;
  effective_rate_bps: number;
  interval_s: number;
  delay_p50_ns: number | null;
  delay_p99_ns: number | null;
}

describe('pacer agent --influx: per class points for real traffic in a real InfluxDB', function () {
  this.timeout(120_000);
  let influxd: RunningInfluxd | undefined;
  let stream: UdpStream | undefined;
  let metricsPort = 0;
  // Registered before the rig's hooks: influxd is up before the agent starts, and outlives it.
  before(async () => {
    influxd = await startInfluxd();
    metricsPort = await freePort();
  });
  after(async () => {
    await stream?.stop();
    await influxd?.stop();
  });
  const rig = useAgentRig({
    iface: IFACE,
    peerIface: 'ai1',
    subnet: '10.95.0',
    peers: 3,
    host: HOST,
    labels: { zone: 'ai' },
    agentArgs: () => ['--influx', `${influxd!.url}/${DATABASE}`, '--borrow-interval', '1s', '--metrics-listen', `127.0.0.1:${metricsPort}`],
  });
  const ids = { web: 0, quiet: 0, bulk: 0 };
  const rows = (cls: string) => new InfluxDB(`${influxd!.url}/${DATABASE}`).query<Row>(`SELECT * FROM ${INFLUX_MEASUREMENT} WHERE "class" = '${cls}' ORDER BY time`);

  before(async () => {
    ids.web = await rig.createClass({ name: 'web', rate: '20mbit', burst: '20ms', match: { dst: [`${rig.peer(0)}/32`] } });
    ids.quiet = await rig.createClass({ name: 'quiet', rate: '5mbit', match: { dst: [`${rig.peer(1)}/32`] } });
    await rig.createClass({ name: 'agg', rate: '40mbit', burst: '20ms' });
    ids.bulk = await rig.createClass({ name: 'bulk', rate: '5mbit', ceil: '30mbit', burst: '20ms', parent: 'agg', match: { dst: [`${rig.peer(2)}/32`] } });
    await rig.withLog(until('the classes in the kernel', () => (rig.kernel.read().dst4.size === 3 ? true : undefined), 10_000, 50));
  });

  it('writes pacer_class points whose bytes/s are what was sent, and add up to the kernel\'s counter', async () => {
    // The sink's first sample of a class is its baseline: wait for a point, so every byte of the
    // stream falls in an interval that is written.
    await rig.withLog(
      until('a first point for web', async () => {
        // The agent creates the database with its first write.
        const r = await rows('web').catch((err: Error) => (/database not found/.test(err.message) ? [] : Promise.reject(err)));
        return r.length > 0 ? true : undefined;
      }, 15_000, 200),
    );
    const baseline = rig.kernel.stats().classes.get(ids.web)!.bytes;
    assert.equal(baseline, 0, 'no traffic yet');

    stream = await startUdpStream(rig.sender, { to: rig.peer(0), port: 9, size: PAYLOAD, bitsPerSecond: SENT_BPS });
    const startedAt = Date.now();
    await sleep(STREAM_MS);
    const stoppedAt = Date.now();
    const { sent, failed } = (await stream.stop())!;
    assert.equal(failed, 0, 'the kernel took every datagram');
    const sentBps = (sent * FRAME * 8) / ((stoppedAt - startedAt) / 1000);

    // Every byte of the stream is in the points up to the first one sampled after it ended.
    const kernelBytes = rig.kernel.stats().classes.get(ids.web)!.bytes;
    const web = await rig.withLog(
      until('a point sampled after the stream ended', async () => {
        const r = await rows('web');
        return r.some((p) => p.time.getTime() > stoppedAt + 1_000) ? r : undefined;
      }, 15_000, 200),
    );
    const total = web.reduce((s, p) => s + p.bytes_per_s * p.interval_s, 0);
    assert.ok(Math.abs(total - kernelBytes) < 1, `the points add up to the kernel's counter: ${total} bytes in InfluxDB, ${kernelBytes} in class_stats`);
    assert.equal(rig.kernel.stats().classes.get(ids.web)!.bytes, kernelBytes, 'nothing passed after the stream');
    assert.equal(kernelBytes, sent * FRAME, 'the kernel passed every datagram sent, frame for frame');

    for (const p of web) {
      assert.deepEqual(
        { host: p.host, iface: p.iface, class: p.class, class_id: p.class_id, mode: p.mode },
        { host: HOST, iface: IFACE, class: 'web', class_id: String(ids.web), mode: 'policing' },
      );
      assert.equal(p.effective_rate_bps, 20_000_000, 'the class\'s rate, as in class_config');
      assert.ok(p.interval_s > 0);
      assert.equal(p.horizon_drops + p.contended + p.ce_marks, 0, 'below its rate nothing is dropped or marked');
      // One frame size: packets and bytes agree.
      assert.ok(Math.abs(p.packets_per_s * FRAME - p.bytes_per_s) < 1e-6 * FRAME + 1e-6 * p.bytes_per_s, `packets_per_s ${p.packets_per_s} × ${FRAME} = bytes_per_s ${p.bytes_per_s}`);
    }
    // The points wholly inside the stream (after its first second, before its end) carry its rate.
    const inside = web.filter((p) => p.time.getTime() - p.interval_s * 1000 >= startedAt + 500 && p.time.getTime() <= stoppedAt);
    assert.ok(inside.length >= 3, `at least 3 whole seconds of the stream were sampled (${inside.length})`);
    const bps = inside.map((p) => p.bytes_per_s * 8).sort((a, b) => a - b);
    const median = bps[Math.floor(bps.length / 2)]!;
    assert.ok(Math.abs(median - sentBps) <= 0.05 * sentBps, `median ${median} bit/s in InfluxDB vs ${sentBps} sent`);
    // The sender is paced by its clock on a shared machine; what matters is what it really sent.
    assert.ok(sentBps >= 0.8 * SENT_BPS && sentBps <= 1.05 * SENT_BPS, `the stream ran at about its rate: ${sentBps} bit/s`);
    console.log(`      sent ${(sentBps / 1e6).toFixed(2)} Mbit/s; in InfluxDB per second: ${bps.map((b) => (b / 1e6).toFixed(2)).join(', ')}`);

    // Delay percentiles: on every point of an interval in which packets passed, none on the others.
    const kernelHist = rig.kernel.delayHistogram(ids.web)!;
    const highestBucket = kernelHist.buckets.filter((b) => b.count > 0).at(-1)!.upperNs;
    for (const p of web) {
      if (p.packets_per_s === 0) {
        assert.deepEqual([p.delay_p50_ns, p.delay_p99_ns], [null, null], 'no packet in the interval: no percentile fields');
        continue;
      }
      for (const v of [p.delay_p50_ns, p.delay_p99_ns]) {
        assert.ok(typeof v === 'number' && v === bucketUpperNs(bucketOf(v - 1)), `${v} is the upper bound of one of the data plane's buckets`);
        assert.ok(v <= highestBucket, `${v} ns is within what the kernel's histogram holds (up to ${highestBucket} ns)`);
      }
      assert.ok(p.delay_p50_ns! <= p.delay_p99_ns!);
    }
    assert.ok(web.filter((p) => p.delay_p99_ns !== null).length >= inside.length, 'the points of the stream carry percentiles');
    console.log(`      p50/p99 per second (ns): ${inside.map((p) => `${p.delay_p50_ns}/${p.delay_p99_ns}`).join(', ')}`);
  });

  it('/metrics: the class\'s delay histogram counts every packet the kernel passed (its _count = packets), and parses as Prometheus histograms', async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const m = parsePrometheusText(text);
    const labels = { iface: IFACE, class: 'web', class_id: String(ids.web) };
    const packets = rig.kernel.stats().classes.get(ids.web)!.packets;
    assert.ok(packets > 0);
    assert.equal(m.value('pacer_class_packets_total', labels), packets, 'the packets counter is the kernel\'s');
    const h = m.histogram('pacer_class_delay_seconds', labels);
    assert.ok(h, `a delay histogram for web in /metrics:\n${text.slice(0, 2000)}`);
    assert.equal(h.count, packets, 'pacer_class_delay_seconds_count = the packets the class passed');
    assert.equal(h.count, rig.kernel.delayHistogram(ids.web)!.total);
    assert.ok(Math.abs(h.sum - rig.kernel.stats().classes.get(ids.web)!.delay_ns / 1e9) < 1e-9, '_sum is the class\'s delay_ns in seconds');
    // A class that never passed a packet has its counters but no histogram series yet.
    assert.equal(m.value('pacer_class_packets_total', { iface: IFACE, class: 'quiet', class_id: String(ids.quiet) }), 0);
    assert.equal(m.histogram('pacer_class_delay_seconds', { iface: IFACE, class: 'quiet', class_id: String(ids.quiet) }), undefined);
  });

  it('writes points for a class without traffic too: zero bytes, its own rate and tags', async () => {
    const quiet = await rows('quiet');
    assert.ok(quiet.length > 0, 'points for the quiet class');
    for (const p of quiet) {
      assert.deepEqual([p.host, p.iface, p.class_id, p.mode, p.bytes_per_s, p.packets_per_s, p.effective_rate_bps], [HOST, IFACE, String(ids.quiet), 'policing', 0, 0, 5_000_000]);
      assert.deepEqual([p.delay_p50_ns, p.delay_p99_ns], [null, null], 'no packet: no percentiles');
    }
  });

  it('effective_rate_bps follows the borrowing loop: a busy child\'s points rise from its rate to its ceil, and so do its bytes/s', async () => {
    const bulk = await startUdpStream(rig.sender, { to: rig.peer(2), port: 9, size: PAYLOAD, bitsPerSecond: 50_000_000 });
    const startedAt = Date.now();
    try {
      // Two points at the ceil: the second one's whole interval was at that rate.
      const atCeil = await rig.withLog(
        until('two bulk points at its ceil', async () => {
          const r = (await rows('bulk')).filter((p) => p.time.getTime() > startedAt && p.effective_rate_bps === 30_000_000);
          return r.length >= 2 ? r : undefined;
        }, 20_000, 200),
      );
      const last = atCeil.at(-1)!;
      assert.ok(Math.abs(last.bytes_per_s * 8 - 30_000_000) <= 0.1 * 30_000_000, `bulk passed ${last.bytes_per_s * 8} bit/s at a 30 Mbit/s ceil`);
      assert.ok(last.horizon_drops > 0, 'the excess over the ceil is policed, and counted');
      const before = (await rows('bulk')).filter((p) => p.time.getTime() <= startedAt);
      assert.ok(before.length > 0 && before.every((p) => p.effective_rate_bps === 5_000_000), 'its rate before it sent');
      // Held packets: the policer passes packets held up to the class's horizon (its depth, as in the kernel now, at the ceil).
      const horizon = rig.kernel.read().classes.get(ids.bulk)!.horizon_ns;
      assert.ok(last.delay_p99_ns! > 1024 && last.delay_p99_ns! <= bucketUpperNs(bucketOf(horizon)), `p99 ${last.delay_p99_ns} ns: held, and within the ${horizon} ns horizon`);
      console.log(`      bulk at its ceil: p50 ${last.delay_p50_ns} ns, p99 ${last.delay_p99_ns} ns`);
    } finally {
      await bulk.stop();
    }
    // /metrics after the stream: the histogram counts every passed packet, and the held ones above 1.024 µs.
    await sleep(200);
    const m = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    const k = rig.kernel.stats().classes.get(ids.bulk)!;
    const h = m.histogram('pacer_class_delay_seconds', { iface: IFACE, class: 'bulk', class_id: String(ids.bulk) })!;
    assert.equal(h.count, k.packets, '_count = the packets bulk passed');
    const underOneMicro = h.buckets.find((b) => b.le === 1024e-9)!.count;
    assert.ok(h.count - underOneMicro > 0 && h.count - underOneMicro <= k.delayed, `${h.count - underOneMicro} packets held 1.024 µs or more, at most the ${k.delayed} delayed`);
  });

  it('tags are tags (indexed) and fields are fields, as docs/agent.md lists them', async () => {
    const influx = new InfluxDB(`${influxd!.url}/${DATABASE}`);
    const tags = await influx.query<{ tagKey: string }>(`SHOW TAG KEYS FROM ${INFLUX_MEASUREMENT}`);
    assert.deepEqual(tags.map((t) => t.tagKey).sort(), ['class', 'class_id', 'host', 'iface', 'mode']);
    const fields = await influx.query<{ fieldKey: string; fieldType: string }>(`SHOW FIELD KEYS FROM ${INFLUX_MEASUREMENT}`);
    assert.deepEqual(
      fields.map((f) => f.fieldKey).sort(),
      ['bytes_per_s', 'ce_marks', 'contended', 'delay_p50_ns', 'delay_p99_ns', 'delayed', 'effective_rate_bps', 'horizon_drops', 'interval_s', 'mean_delay_ns', 'packets_per_s'],
    );
  });
});
