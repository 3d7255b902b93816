/**
 * RPC workloads (sim/workload/rpc.ts): open-loop Poisson arrivals, offered load, and FCT
 * slowdown against the ideal (pFabric, SIGCOMM 2013; HOMA, SIGCOMM 2018: FCT normalised by the
 * best possible FCT on an idle network, so ≥ 1, and ≈ 1 when the network is lightly loaded).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventList } from '../../sim/engine/events.js';
import { Rng } from '../../sim/engine/rng.js';
import { Star } from '../../sim/topology/star.js';
import { tcpConfig } from '../../sim/tcp/tcp.js';
import { idealTransferNs } from '../../sim/workload/ideal.js';
import { loadCdf, parseCdf, sampleSize } from '../../sim/workload/cdf.js';
import { PoissonArrivals } from '../../sim/workload/random.js';
import { RpcWorkload } from '../../sim/workload/rpc.js';
import { ScenarioError, loadScenario, loadScenarioFile } from '../../sim/scenario/load.js';
import { runScenario } from '../../sim/run.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLES = join(here, '../../../sim/examples');
const SEC = 1_000_000_000;

function meanCv(xs: number[]): { mean: number; cv: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, cv: Math.sqrt(variance) / mean };
}

/** A star of `clients` and `servers` on 1 Gbit/s, 25 µs links; an RPC workload among them. */
function scenario(rpc: string, opts: { clients?: number; servers?: number; duration?: string; extra?: string } = {}): string {
  return `duration: ${opts.duration ?? '2s'}
topology:
  switch: { buffer: 256kb }
  hosts:
    fe: { count: ${opts.clients ?? 1}, address: 10.0.0.1, labels: { role: fe }, link: { rate: 1gbit, delay: 25us } }
    be: { count: ${opts.servers ?? 4}, address: 10.0.1.1, labels: { role: be }, link: { rate: 1gbit, delay: 25us } }
${opts.extra ?? ''}workloads:
  - rpc: ${rpc}
`;
}

describe('sim workload: RPCs with open-loop Poisson arrivals', function () {
  this.timeout(120_000);

  it('Poisson gaps: mean 1/λ within 1% and coefficient of variation 1 within 2% (100,000 gaps)', () => {
    // For exponential gaps the sample mean has relative s.d. 1/√n = 0.32%, so 1% is > 3σ.
    const p = new PoissonArrivals(new Rng(11), 5000);
    const gaps = Array.from({ length: 100_000 }, () => p.nextGapNs());
    const { mean, cv } = meanCv(gaps);
    assert.ok(Math.abs(mean / 200_000 - 1) < 0.01, `mean gap ${mean} ns, expected 200000`);
    assert.ok(Math.abs(cv - 1) < 0.02, `CV ${cv}`);
  });

  it('the workload arrives as a Poisson process in a run: mean gap and CV ≈ 1, and the arrival count ≈ λT', async () => {
    const events = new EventList();
    const star = new Star(events);
    const link = { rateBps: 1e9, delayNs: 25_000 };
    for (const name of ['c', 's']) star.addHost({ name, link, switchPort: { bufferBytes: 1 << 20 } });
    const tcp = tcpConfig();
    const route = { cls: 0, ackCls: 0, tcp };
    const cdf = parseCdf('1000 0\n4000 1\n', 'small.cdf');
    const ideal = (_a: string, _b: string, r: typeof route, bytes: number) => idealTransferNs({ from: link, to: link, classes: new Map(), cls: r.cls, mss: tcp.mss, headerBytes: tcp.headerBytes }, bytes);
    const rpc = new RpcWorkload(events, star, { pairs: [[{ client: 'c', server: 's', request: route, response: route }]], cdf, arrivalsPerSecond: 2000, requestBytes: 64, count: null, buckets: [100_000], startNs: 0 }, 5, ideal);
    rpc.arrivalLog = [];
    rpc.start();
    events.run(5 * SEC);
    const times = rpc.arrivalLog;
    // Count over 5 s: Poisson(10,000), s.d. 100.
    assert.ok(Math.abs(times.length - 10_000) < 400, `${times.length} arrivals, expected 10000 ± 400 (4σ)`);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    const { mean, cv } = meanCv(gaps);
    assert.ok(Math.abs(mean / 500_000 - 1) < 0.04, `mean gap ${mean}`);
    assert.ok(Math.abs(cv - 1) < 0.05, `CV ${cv}`);
    // Open loop at 2000/s × 2.5 KB ≈ 40 Mbit/s: every RPC but the last few completes.
    assert.ok(rpc.completed >= times.length - 5 && rpc.completed <= times.length);
  });

  it('web-search at 60% load: the generator offers 60% of the link within 3% (100,000 arrivals)', () => {
    // Offered load = Σ sizes · 8 / elapsed / rate. With size CV ≈ 2.3 the relative s.d. is
    // √(1 + CV²)/√n ≈ 0.8%, so 3% is > 3σ; a wrong λ (bits for bytes, mean from the wrong
    // interpolation, the mean of the points) is off by far more.
    const cdf = loadCdf('web-search', '.');
    const load = 0.6;
    const lambda = (load * 1e9) / 8 / cdf.meanBytes;
    const arrivals = new PoissonArrivals(new Rng(1), lambda);
    const sizes = new Rng(2);
    let t = 0;
    let bytes = 0;
    for (let i = 0; i < 100_000; i++) {
      t += arrivals.nextGapNs();
      bytes += sampleSize(cdf, sizes.next());
    }
    const offered = (bytes * 8 * SEC) / t / 1e9;
    assert.ok(Math.abs(offered / load - 1) < 0.03, `offered ${offered}`);
  });

  it('a 30% load over two clients is offered (within 2%) and delivered (the network keeps up)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-rpc-'));
    writeFileSync(join(dir, 'kv.cdf'), '# key-value-like\n1000 0\n1000 0.5\n10000 1\n');
    const s = loadScenario(scenario('{ clients: [fe], servers: [be], sizes: kv.cdf, load: 30% }', { clients: 2 }), join(dir, 'kv.yaml'));
    const r = await runScenario(s);
    const w = r.rpc[0]!;
    // λ = 0.3 · 2 Gbit/s / 8 / 3250 B ≈ 23,077/s → ~46,000 RPCs in 2 s.
    assert.ok(Math.abs(w.arrivalsPerSecond - (0.3 * 2e9) / 8 / 3250) < 0.01);
    assert.ok(Math.abs(w.offeredLoad / 0.3 - 1) < 0.02, `offered load ${w.offeredLoad}`);
    assert.ok(Math.abs(w.goodputBps / w.offeredBps - 1) < 0.02, `goodput ${w.goodputBps} of offered ${w.offeredBps}`);
    assert.ok(w.completed > 40_000 && w.inFlight < 50);
  });

  it('slowdown is ≥ 1 for every RPC at 60% load, in every size bucket', async () => {
    const heavy = await runScenario({ ...loadScenarioFile(join(EXAMPLES, 'rpc-web-search.yaml')), durationNs: 2 * SEC });
    for (const w of heavy.rpc) {
      assert.ok(w.completed > 20, `${w.completed} completed`);
      assert.ok(w.fct.slowdownMin >= 1, `slowdown min ${w.fct.slowdownMin}`);
      for (const b of w.buckets) if (b.count > 0) assert.ok(b.slowdownMin >= 1, `${b.label}: ${b.slowdownMin}`);
      assert.ok(w.fct.slowdownP99 > w.fct.slowdownP50, 'queues at 60% load spread the slowdowns');
    }
  });

  it('slowdown ≈ 1 at low load: web-search at 1%, mean < 1.05 and p99 < 1.1', async () => {
    // At 1% load RPCs rarely overlap, and the BDP (1 Gbit/s × 100 µs ≈ 8.6 segments) is below
    // the initial window of 10, so slow start costs nothing: a response takes about its ideal.
    // (At 5% a few large responses already overlap, fill the 256 KB port and meet a 200 ms RTO:
    // the median stays ≈ 1 but the mean does not — NewReno fills any buffer it shares.)
    const r = await runScenario(loadScenario(scenario('{ clients: [fe], servers: [be], sizes: web-search, load: 1% }', { duration: '120s' })));
    const w = r.rpc[0]!;
    assert.ok(w.completed >= 60, `${w.completed} completed`);
    assert.ok(w.fct.slowdownMin >= 1);
    assert.ok(w.fct.slowdownMean < 1.05, `mean slowdown ${w.fct.slowdownMean}`);
    assert.ok(w.fct.slowdownP99 < 1.1, `p99 slowdown ${w.fct.slowdownP99}`);
  });

  it('all-to-all: a host is never its own server, and the load is of the clients\' links', async () => {
    const s = loadScenario(scenario('{ clients: [be], servers: [be], sizes: web-search, load: 10% }', { servers: 4, duration: '200ms' }));
    const w = s.workloads[0]!;
    assert.ok(w.kind === 'rpc');
    assert.deepEqual(w.pairs.map((row) => row.map((p) => `${p.client}>${p.server}`)), [
      ['be1>be2', 'be1>be3', 'be1>be4'],
      ['be2>be1', 'be2>be3', 'be2>be4'],
      ['be3>be1', 'be3>be2', 'be3>be4'],
      ['be4>be1', 'be4>be2', 'be4>be3'],
    ]);
    // 10% of 4 × 1 Gbit/s.
    assert.ok(Math.abs(w.arrivalsPerSecond - (0.1 * 4e9) / 8 / w.cdf.meanBytes) < 1e-9);
    const r = await runScenario(s);
    assert.ok(r.rpc[0]!.arrivals > 0);
  });

  it('count: after that many arrivals the run ends when the last RPC completes, not at its duration', async () => {
    const r = await runScenario(loadScenario(scenario('{ clients: [fe], servers: [be], sizes: web-search, arrivalsPerSecond: 100, count: 50 }', { duration: '60s' })));
    const w = r.rpc[0]!;
    assert.equal(r.complete, true);
    assert.deepEqual([w.arrivals, w.completed, w.inFlight], [50, 50, 0]);
    assert.ok(r.simulatedNs < 5 * SEC, `ended at ${r.simulatedNs} ns`);
    assert.ok(r.simulatedNs >= w.fct.fctMaxNs, 'the end is the last completion, not before');
  });

  it('requestBytes 0: one-way responses from the arrival (pFabric\'s flows), the same sizes without the request', async () => {
    // 5 RPCs/s of web-search is about 7% of the link: little queueing, so the request's time shows.
    const light = (req: number) => runScenario(loadScenario(scenario(`{ clients: [fe], servers: [be], sizes: web-search, arrivalsPerSecond: 5, count: 30, requestBytes: ${req} }`, { duration: '60s' })));
    const [withRequest, oneWay] = [(await light(64)).rpc[0]!, (await light(0)).rpc[0]!];
    assert.equal(oneWay.requestBytes, 0);
    assert.equal(oneWay.completed, 30);
    // Sizes come from their own RNG stream: the same 30 sizes, so the same buckets.
    assert.deepEqual(oneWay.buckets.map((b) => b.count), withRequest.buckets.map((b) => b.count));
    assert.ok(oneWay.fct.slowdownMin >= 1);
    assert.ok(oneWay.fct.fctP50Ns < withRequest.fct.fctP50Ns, `one-way p50 ${oneWay.fct.fctP50Ns} vs ${withRequest.fct.fctP50Ns} with a request`);
  });

  it('responses are assigned to classes by the workload selectors, and the requests by destination prefix', async () => {
    const r = await runScenario({ ...loadScenarioFile(join(EXAMPLES, 'rpc-web-search.yaml')), durationNs: SEC });
    const cls = (n: string) => r.classes.find((c) => c.name === n)!;
    assert.equal(r.rpc[0]!.class, 'search');
    assert.equal(r.rpc[1]!.class, 'batch');
    // A class's goodput is over its own span (from its first packet); its delivered bytes over the
    // workload's window (from 0) are the workload's goodput.
    const overRun = (n: string) => (cls(n).deliveredBytes * 8e9) / r.simulatedNs;
    assert.ok(Math.abs(overRun('search') - r.rpc[0]!.goodputBps) <= 1);
    assert.ok(Math.abs(overRun('batch') - r.rpc[1]!.goodputBps) <= 1);
    // The front-end has no class installed: requests and ACKs leave it unclassified.
    assert.ok(cls('(unclassified)').bytes > 0);
  });

  it('without a selector each response takes its client\'s destination-prefix class; FCTs are reported per class', async () => {
    const classes = [
      'classes:',
      '  - { name: first, rate: 300mbit, match: { dst: [10.0.0.1/32] }, hosts: { matchLabels: { role: be } } }',
      '  - { name: second, rate: 300mbit, match: { dst: [10.0.0.2/32] }, hosts: { matchLabels: { role: be } } }',
      '',
    ].join('\n');
    const r = await runScenario(loadScenario(scenario('{ clients: [fe], servers: [be], sizes: web-search, load: 10% }', { clients: 2, duration: '3s', extra: classes })));
    const w = r.rpc[0]!;
    assert.deepEqual(w.byClass.map((c) => c.class), ['first', 'second']);
    assert.equal(w.byClass.reduce((a, c) => a + c.count, 0), w.completed);
    assert.ok(w.byClass.every((c) => c.count > 0 && c.slowdownMin >= 1));
    const delivered = (n: string) => r.classes.find((c) => c.name === n)!.deliveredBytes;
    assert.ok(Math.abs(((delivered('first') + delivered('second')) * 8e9) / r.simulatedNs - w.goodputBps) <= 1, 'the two classes carry all of it');
  });

  it('refuses a selector whose class is not installed on the servers, and jitter (arrivals are already random)', () => {
    const classes = 'classes:\n  - { name: fast, rate: 100mbit, match: { marks: [3] }, hosts: { matchLabels: { role: fe } } }\n';
    for (const [rpc, message] of [
      ['{ clients: [fe], servers: [be], sizes: web-search, load: 10%, mark: 3 }', /workloads\[0\]\.rpc\.mark: mark 3 selects class fast, which is not installed on be1/],
      ['{ clients: [fe], servers: [be], sizes: web-search, load: 10%, jitter: 1ms }', /workloads\[0\]\.rpc\.jitter: rpc arrivals are already random/],
      ['{ clients: [fe], servers: [be], sizes: web-search }', /rpc needs exactly one of load .* and arrivalsPerSecond/],
      ['{ clients: [fe], servers: [be], sizes: web-search, load: 10%, cgroup: app.slice }', /workloads\[0\]\.rpc\.cgroup: a cgroup is an absolute cgroup v2 path/],
      ['{ clients: [fe], servers: [be], sizes: web-search, load: 150 }', /load is a fraction of the link rate/],
      ['{ clients: [fe], servers: [be], sizes: web-search, load: 10%, buckets: [10mb, 1mb] }', /bucket bounds must increase/],
    ] as const) {
      assert.throws(() => loadScenario(scenario(rpc, { extra: classes }), 'x.yaml'), (e: unknown) => e instanceof ScenarioError && message.test(e.message), rpc);
    }
  });

  it('determinism: the same seed gives byte-identical JSON; another seed draws other RPCs', async () => {
    const s = { ...loadScenarioFile(join(EXAMPLES, 'rpc-web-search.yaml')), durationNs: 500_000_000 };
    const a = JSON.stringify(await runScenario(s));
    const b = JSON.stringify(await runScenario(s));
    const c = JSON.stringify(await runScenario(s, { seed: 2 }));
    assert.equal(a, b);
    assert.notEqual(a, c);
  });
});
