/**
 * Builds a simulation from a validated scenario, runs it in slices of simulated time (so a CLI
 * can show progress and stop on Ctrl-C between slices), and reports a JSON-serialisable result.
 *
 * Determinism: the result depends only on the scenario and the seed. Slices are fixed in
 * simulated time and wall-clock figures never enter the result, so the same scenario and seed
 * give byte-identical JSON.
 */
import { EventList, Timer, type TimeNs } from './engine/events.js';
import { Rng } from './engine/rng.js';
import { DROP_REASONS, type DropReason, type Packet } from './net/packet.js';
import type { Port } from './net/port.js';
import { SharedBuffer } from './net/shared-buffer.js';
import { Star } from './topology/star.js';
import { Incast } from './workload/incast.js';
import { idealTransferNs } from './workload/ideal.js';
import { OnOffSource } from './workload/onoff.js';
import { streamSeed } from './workload/random.js';
import { RpcWorkload, type RpcBucket } from './workload/rpc.js';
import type { TcpReceiver, TcpSender } from './tcp/tcp.js';
import type { RpcRoute, Scenario, SimHost, SimWorkload } from './scenario/load.js';
import { formatDuration, formatRate } from '../api/contract/units.js';
import { CumulativeSeries, Histogram, percentile, type ExactSummary, type Percentiles } from './stats.js';

export const UNCLASSIFIED = '(unclassified)';
/** Simulated time between checks for completion, progress and Ctrl-C. */
const SLICE_NS = 1_000_000;
/** An always-busy sender writes this much more whenever it has written everything (see bulk.ts). */
const CHUNK = 1 << 30;

export interface Progress {
  simulatedNs: TimeNs;
  durationNs: TimeNs;
  events: number;
  /** Every workload is finite: the run ends when they are done, perhaps well before durationNs. */
  mayEndEarly: boolean;
}

export interface RunOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Called after each slice; cheap, the caller rate-limits printing. */
  onProgress?: (p: Progress) => void;
  /** Checked between slices; true ends the run early with complete: false. */
  shouldStop?: () => boolean;
  /** Wall-clock ms between yields to the Node event loop (so signals are handled). */
  yieldEveryMs?: number;
}

interface FlowState {
  workload: number;
  from: string;
  to: string;
  cls: number;
  bytes: number | null;
  startNs: TimeNs;
  endNs: TimeNs | null;
  idealNs: number | null;
  sender: TcpSender;
  receiver: TcpReceiver;
  /** Delivered bytes, per bin. */
  delivered: CumulativeSeries;
}

class PortProbe {
  readonly queue = new Histogram();
  /** Host NICs only: the EDT hold (time to send − arrival) and fq queueing after it. */
  readonly shaper = new Histogram();
  /** ∫ queue bytes dt and drops, per bin. */
  queueSeries!: CumulativeSeries;
  dropSeries!: CumulativeSeries;
  constructor(readonly port: Port, readonly kind: 'host' | 'switch') {}
}

type RpcEntry = { w: Extract<SimWorkload, { kind: 'rpc' }>; rpc: RpcWorkload; delivered: CumulativeSeries; completed: CumulativeSeries; clientRateBps: number };
type OnOffEntry = { w: Extract<SimWorkload, { kind: 'onoff' }>; flows: Array<{ id: number; source: OnOffSource; sender: TcpSender; receiver: TcpReceiver; delivered: CumulativeSeries }> };

export class Simulation {
  readonly events = new EventList();
  readonly seed: number;
  private readonly star: Star;
  private readonly flows: FlowState[] = [];
  private readonly incasts: Array<{ w: Extract<SimWorkload, { kind: 'incast' }>; incast: Incast; startNs: TimeNs }> = [];
  private readonly rpcs: RpcEntry[] = [];
  private readonly onoffs: OnOffEntry[] = [];
  private readonly probes: PortProbe[] = [];
  private readonly shared: SharedBuffer | null;
  /** Every per-bin series, marked at each bin boundary. */
  private readonly series: CumulativeSeries[] = [];
  /** Bytes leaving host NICs per class id per bin. */
  private readonly bins = new Map<number, number[]>();
  /** Per class id: the hosts that sent in it, and when its first packet left a host. */
  private readonly senders = new Map<number, Set<string>>();
  private readonly firstSentNs = new Map<number, TimeNs>();
  private lastCompletion: TimeNs = 0;

  constructor(readonly scenario: Scenario, seed = scenario.seed) {
    this.seed = seed;
    const rng = new Rng(seed);
    this.star = new Star(this.events);
    this.shared = scenario.sharedBuffer ? new SharedBuffer(scenario.sharedBuffer) : null;
    const switchPort = this.shared ? { ...scenario.switchPort, shared: this.shared } : scenario.switchPort;
    for (const h of scenario.hosts) {
      const sh = this.star.addHost({ name: h.name, link: h.link, switchPort, classes: h.classes });
      this.probe(new PortProbe(sh.egress.nic, 'host'));
      this.probe(new PortProbe(sh.port, 'switch'));
    }
    for (const w of scenario.workloads) {
      const start = (): TimeNs => w.startNs + (w.jitterNs > 0 ? Math.floor(rng.next() * w.jitterNs) : 0);
      if (w.kind === 'bulk') for (let i = 0; i < w.flows; i++) this.addFlow(w, start());
      else if (w.kind === 'incast') {
        const incast = new Incast(this.events, this.star, { client: w.client, servers: w.servers, blockBytes: w.blockBytes, rounds: w.rounds, cls: w.cls, ackCls: w.ackCls }, w.tcp);
        const startNs = start();
        this.incasts.push({ w, incast, startNs });
        this.at(startNs, () => incast.start());
      } else if (w.kind === 'rpc') this.addRpc(w);
      else this.addOnOff(w, start);
    }
    // Series are marked at every bin boundary: one event per bin, whatever the traffic.
    const sampler = new Timer(this.events, () => {
      for (const x of this.series) x.mark();
      sampler.set(this.events.now() + scenario.binNs);
    });
    sampler.set(scenario.binNs);
  }

  /** True when every workload is finite, so `finished` can end the run before its duration. */
  get mayEndEarly(): boolean {
    return this.scenario.workloads.every((w) => (w.kind === 'bulk' ? w.bytes !== null : w.kind === 'incast' ? true : w.kind === 'rpc' ? w.count !== null : false));
  }

  /** True when every workload is finite and finished: the rest of `duration` would be idle. */
  get finished(): boolean {
    return (
      this.flows.every((f) => f.bytes !== null && f.endNs !== null) &&
      this.incasts.every((i) => i.incast.done) &&
      this.rpcs.every((r) => r.rpc.done) &&
      this.onoffs.length === 0
    );
  }

  private seriesOf(read: () => number): CumulativeSeries {
    const x = new CumulativeSeries(read);
    this.series.push(x);
    return x;
  }

  /** Runs until the duration, completion, or shouldStop(); resolves with the result. */
  async run(opts: RunOptions = {}): Promise<SimResult> {
    const yieldMs = opts.yieldEveryMs ?? 50;
    const { durationNs } = this.scenario;
    let lastYield = Date.now();
    let stopped = false;
    while (this.events.now() < durationNs && !this.finished) {
      this.events.run(Math.min(this.events.now() + SLICE_NS, durationNs));
      opts.onProgress?.({ simulatedNs: this.events.now(), durationNs, events: this.events.eventsRun(), mayEndEarly: this.mayEndEarly });
      if (Date.now() - lastYield >= yieldMs) {
        await new Promise((r) => setImmediate(r));
        lastYield = Date.now();
      }
      if (opts.shouldStop?.()) {
        stopped = true;
        break;
      }
    }
    return this.result(!stopped);
  }

  private probe(p: PortProbe): void {
    this.probes.push(p);
    p.queueSeries = this.seriesOf(() => p.port.queueIntegralTo(this.events.now()));
    p.dropSeries = this.seriesOf(() => p.port.stats.dropped);
    p.port.onService = (pkt: Packet, waited: TimeNs) => {
      p.queue.add(waited);
      if (p.kind !== 'host') return;
      p.shaper.add(Math.max(0, pkt.tstamp - pkt.enqueuedAt));
      const bin = Math.floor(this.events.now() / this.scenario.binNs);
      let hosts = this.senders.get(pkt.cls);
      if (!hosts) {
        this.senders.set(pkt.cls, (hosts = new Set()));
        this.firstSentNs.set(pkt.cls, pkt.enqueuedAt);
      }
      hosts.add(p.port.name);
      let series = this.bins.get(pkt.cls);
      if (!series) this.bins.set(pkt.cls, (series = []));
      while (series.length <= bin) series.push(0);
      series[bin]! += pkt.size;
    };
  }

  private at(t: TimeNs, fn: () => void): void {
    if (t <= 0) fn();
    else new Timer(this.events, fn).set(t);
  }

  private addFlow(w: Extract<SimWorkload, { kind: 'bulk' }>, startNs: TimeNs): void {
    const c = this.star.connect(w.from, w.to, w.tcp, w.cls, w.ackCls);
    const f: FlowState = {
      workload: w.index, from: w.from, to: w.to, cls: w.cls, bytes: w.bytes, startNs, endNs: null, idealNs: null, sender: c.sender, receiver: c.receiver,
      delivered: this.seriesOf(() => (w.bytes === null ? c.receiver.rcvNxt : Math.min(c.receiver.rcvNxt, w.bytes))),
    };
    this.flows.push(f);
    if (w.bytes === null) {
      this.at(startNs, () => c.sender.write(CHUNK));
      c.sender.onAllAcked = () => c.sender.write(CHUNK);
      return;
    }
    const bytes = w.bytes;
    f.idealNs = this.idealNs(w.from, w.to, w, bytes);
    c.receiver.onDelivered = (total) => {
      if (f.endNs === null && total >= bytes) {
        f.endNs = this.events.now();
        this.lastCompletion = Math.max(this.lastCompletion, f.endNs);
      }
    };
    this.at(startNs, () => c.sender.write(bytes));
  }

  /** FCT on an idle network, a true lower bound (workload/ideal.ts): slowdown = FCT / this ≥ 1. */
  private idealNs(from: string, to: string, route: RpcRoute, bytes: number): number {
    const a = this.host(from);
    return idealTransferNs({ from: a.link, to: this.host(to).link, classes: a.classes, cls: route.cls, mss: route.tcp.mss, headerBytes: route.tcp.headerBytes }, bytes);
  }

  private addRpc(w: Extract<SimWorkload, { kind: 'rpc' }>): void {
    const rpc = new RpcWorkload(
      this.events, this.star,
      { pairs: w.pairs, cdf: w.cdf, arrivalsPerSecond: w.arrivalsPerSecond, requestBytes: w.requestBytes, count: w.count, buckets: w.buckets, startNs: w.startNs },
      streamSeed(this.seed, w.index), (from, to, route, bytes) => this.idealNs(from, to, route, bytes),
    );
    const clientRateBps = w.clients.reduce((a, c) => a + this.host(c).link.rateBps, 0);
    this.rpcs.push({ w, rpc, clientRateBps, delivered: this.seriesOf(() => rpc.deliveredBytes), completed: this.seriesOf(() => rpc.completed) });
    rpc.start();
  }

  private addOnOff(w: Extract<SimWorkload, { kind: 'onoff' }>, start: () => TimeNs): void {
    const entry: OnOffEntry = { w, flows: [] };
    for (let i = 0; i < w.flows; i++) {
      const c = this.star.connect(w.from, w.to, w.tcp, w.cls, w.ackCls);
      const source = new OnOffSource(this.events, c.sender, { rateBps: w.rateBps, onNs: w.onNs, offNs: w.offNs, periods: w.periods, startNs: start(), chunkBytes: w.tcp.mss }, streamSeed(this.seed, w.index, i));
      entry.flows.push({ id: c.flow, source, sender: c.sender, receiver: c.receiver, delivered: this.seriesOf(() => c.receiver.rcvNxt) });
      source.start();
    }
    this.onoffs.push(entry);
  }

  private host(name: string): SimHost {
    return this.scenario.hosts.find((h) => h.name === name)!;
  }

  result(complete: boolean): SimResult {
    const s = this.scenario;
    const endNs = this.finished ? this.lastCompletionTime() : Math.min(this.events.now(), s.durationNs);
    const bps = (bytes: number, ns: number) => (ns > 0 ? Math.round((bytes * 8e9) / ns) : 0);
    const className = (id: number) => (id === 0 ? UNCLASSIFIED : s.classes[id - 1]!.spec.name);
    const nBins = Math.ceil(endNs / s.binNs);
    const binWidth = (b: number) => Math.min(s.binNs, endNs - b * s.binNs);
    /** A cumulative byte counter as bits/s per bin. */
    const bpsSeries = (x: CumulativeSeries) => x.increments(nBins).map((bytes, b) => bps(bytes, binWidth(b)));

    const flows = this.flows.map((f, i) => {
      const delivered = Math.min(f.receiver.rcvNxt, f.bytes ?? Infinity);
      const fct = f.endNs === null ? null : f.endNs - f.startNs;
      return {
        id: i + 1,
        workload: f.workload,
        from: f.from,
        to: f.to,
        class: className(f.cls),
        bytes: delivered,
        goodputBps: bps(delivered, fct ?? Math.max(endNs - f.startNs, 0)),
        completed: f.endNs !== null,
        fctNs: fct,
        slowdown: fct === null || f.idealNs === null ? null : round3(fct / f.idealNs),
        retransmits: f.sender.stats.retransmits,
        timeouts: f.sender.stats.timeouts,
        goodputSeriesBps: bpsSeries(f.delivered),
      };
    });
    const done = flows.filter((f) => f.fctNs !== null);

    const rpc = this.rpcs.map(({ w, rpc: r, clientRateBps, delivered, completed }) => {
      const windowNs = Math.max(endNs - w.startNs, 0);
      const tcp = r.tcpStats();
      const { all, buckets } = r.fctSummary();
      return {
        workload: w.index,
        class: className(w.cls),
        sizes: w.cdf.name,
        meanSizeBytes: Math.round(w.cdf.meanBytes),
        load: w.load,
        arrivalsPerSecond: round3(w.arrivalsPerSecond),
        requestBytes: w.requestBytes,
        arrivals: r.arrivals,
        completed: r.completed,
        inFlight: r.inFlight,
        offeredBps: bps(r.offeredBytes, windowNs),
        /** Offered response bytes per second over the clients' total link rate. */
        offeredLoad: windowNs > 0 ? round3((r.offeredBytes * 8e9) / windowNs / clientRateBps) : 0,
        goodputBps: bps(r.deliveredBytes, windowNs),
        deliveredSegments: r.deliveredSegments,
        fct: all,
        buckets,
        byClass: r.fctByClass().map(({ cls, summary }) => ({ class: className(cls), ...summary })),
        retransmits: tcp.retransmits,
        timeouts: tcp.timeouts,
        goodputSeriesBps: bpsSeries(delivered),
        completedSeries: completed.increments(nBins),
      };
    });

    const onoff = this.onoffs.map(({ w, flows: fs }) => {
      const windowNs = Math.max(endNs - w.startNs, 0);
      const list = fs.map((f) => ({
        id: f.id,
        onPeriods: f.source.onPeriods,
        dutyCycle: windowNs > 0 ? round3(f.source.onTimeTo(endNs) / windowNs) : 0,
        offeredBps: bps(f.source.written, windowNs),
        goodputBps: bps(f.receiver.rcvNxt, windowNs),
        retransmits: f.sender.stats.retransmits,
        timeouts: f.sender.stats.timeouts,
        goodputSeriesBps: bpsSeries(f.delivered),
      }));
      return {
        workload: w.index,
        class: className(w.cls),
        from: w.from,
        to: w.to,
        rate: formatRate(w.rateBps),
        on: formatDuration(w.onNs),
        off: formatDuration(w.offNs),
        periods: w.periods,
        dutyCycleExpected: round3(w.onNs / (w.onNs + w.offNs)),
        goodputBps: list.reduce((a, f) => a + f.goodputBps, 0),
        flows: list,
      };
    });

    const incast = this.incasts.map(({ w, incast, startNs }) => {
      const r = incast.result();
      return {
        workload: w.index,
        class: className(w.cls),
        client: w.client,
        servers: r.servers,
        blockBytes: w.blockBytes,
        rounds: w.rounds,
        roundsCompleted: r.rounds,
        startNs,
        goodputBps: r.goodputBps,
        roundNs: { p50: percentile(r.roundNs, 0.5), p99: percentile(r.roundNs, 0.99), max: Math.max(0, ...r.roundNs) },
        roundGoodputBps: r.roundNs.map((ns) => bps(w.blockBytes, ns)),
        /** The completed rounds' total time (excluding any partial round). */
        roundTimeTotalNs: r.roundNs.reduce((a, b) => a + b, 0),
        retransmits: r.retransmits,
        timeouts: r.timeouts,
      };
    });

    const classIds = [...s.classes.map((c) => c.id), ...(this.bins.has(0) ? [0] : [])];
    const classes = classIds.map((id) => {
      const series = (this.bins.get(id) ?? []).slice(0, nBins);
      const bytes = series.reduce((a, b) => a + b, 0);
      const spec = id === 0 ? null : s.classes[id - 1]!.spec;
      const name = className(id);
      // Application bytes delivered in this class, by every kind of workload.
      const delivered =
        flows.filter((f) => f.class === name).reduce((a, f) => a + f.bytes, 0) +
        this.incasts.filter((x) => x.w.cls === id).reduce((a, x) => a + x.w.blockBytes * x.incast.result().rounds, 0) +
        this.rpcs.reduce((a, x) => a + (x.rpc.deliveredByClass.get(id) ?? 0), 0) +
        this.onoffs.filter((x) => x.w.cls === id).reduce((a, x) => a + x.flows.reduce((b, f) => b + f.receiver.rcvNxt, 0), 0);
      // Throughput and goodput over one span: from the class's first packet to the end of the run,
      // so a class that starts late is not diluted by the time before it started (issue 15).
      const startNs = Math.min(this.firstSentNs.get(id) ?? endNs, endNs);
      const sendingHosts = this.senders.get(id)?.size ?? 0;
      return {
        name,
        rate: spec ? formatRate(spec.rate) : null,
        /** The budget is per host: with several sending hosts, the class's total is rate × hosts. */
        sendingHosts,
        rateTimesHosts: spec ? formatRate(spec.rate * Math.max(sendingHosts, 1)) : null,
        parent: spec?.parent ?? null,
        bytes,
        deliveredBytes: delivered,
        startNs,
        throughputBps: bps(bytes, endNs - startNs),
        goodputBps: bps(delivered, endNs - startNs),
        // The last bin may be cut short by the end of the run: its rate is over its real width.
        throughputSeriesBps: Array.from({ length: nBins }, (_, b) => bps(series[b] ?? 0, Math.min(s.binNs, endNs - b * s.binNs))),
      };
    });

    const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    const port = (p: PortProbe) => {
      for (const r of DROP_REASONS) drops[r] += p.port.stats.drops[r];
      // Series only for ports where something happened: a 48-server incast has ~100 idle ones.
      const busy = p.port.stats.maxQueueBytes > 0 || p.port.stats.dropped > 0;
      return {
        name: p.port.name,
        sentPackets: p.port.stats.sentPackets,
        drops: p.port.stats.dropped,
        dropsByReason: Object.fromEntries(DROP_REASONS.filter((r) => p.port.stats.drops[r] > 0).map((r) => [r, p.port.stats.drops[r]])),
        maxQueueBytes: p.port.stats.maxQueueBytes,
        // Over the simulated time actually run (a finished run may have run past its last completion).
        meanQueueBytes: this.events.now() > 0 ? Math.round(p.port.queueIntegralTo(this.events.now()) / this.events.now()) : 0,
        queueDelay: p.queue.summary(),
        ...(p.kind === 'host' && { shaperDelay: p.shaper.summary() }),
        ...(busy && {
          queueSeriesBytes: p.queueSeries.increments(nBins).map((byteNs, b) => Math.round(byteNs / binWidth(b))),
          dropSeries: p.dropSeries.increments(nBins),
        }),
      };
    };
    const hostPorts = this.probes.filter((p) => p.kind === 'host').map(port);
    const switchPorts = this.probes.filter((p) => p.kind === 'switch').map(port);

    return {
      scenario: s.name,
      seed: this.seed,
      complete,
      durationNs: s.durationNs,
      simulatedNs: endNs,
      events: this.events.eventsRun(),
      binNs: s.binNs,
      classes,
      flows,
      fct: {
        completed: done.length,
        p50Ns: percentile(done.map((f) => f.fctNs!), 0.5),
        p99Ns: percentile(done.map((f) => f.fctNs!), 0.99),
        slowdownP50: percentile(done.map((f) => f.slowdown!), 0.5),
        slowdownP99: percentile(done.map((f) => f.slowdown!), 0.99),
      },
      incast,
      rpc,
      onoff,
      hosts: hostPorts,
      switchPorts,
      switch: this.shared && {
        sharedBufferBytes: this.shared.poolBytes,
        alpha: this.shared.alpha,
        maxUsedBytes: this.shared.maxUsed,
        meanUsedBytes: this.events.now() > 0 ? Math.round(this.shared.integralTo(this.events.now()) / this.events.now()) : 0,
        drops: this.shared.drops,
      },
      drops,
      retransmits: flows.reduce((a, f) => a + f.retransmits, 0) + incast.reduce((a, x) => a + x.retransmits, 0) + rpc.reduce((a, x) => a + x.retransmits, 0) + onoff.reduce((a, x) => a + x.flows.reduce((b, f) => b + f.retransmits, 0), 0),
      timeouts: flows.reduce((a, f) => a + f.timeouts, 0) + incast.reduce((a, x) => a + x.timeouts, 0) + rpc.reduce((a, x) => a + x.timeouts, 0) + onoff.reduce((a, x) => a + x.flows.reduce((b, f) => b + f.timeouts, 0), 0),
    };
  }

  private lastCompletionTime(): TimeNs {
    let t = this.lastCompletion;
    for (const { rpc } of this.rpcs) t = Math.max(t, rpc.lastCompletionNs);
    for (const { incast, startNs } of this.incasts) {
      const r = incast.result();
      t = Math.max(t, startNs + r.totalNs);
    }
    return t;
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export type SimResult = {
  scenario: string;
  /** Set by `pacer sim run --classes-from-api`: the classes were the API's at this revision, not the file's. */
  classesFrom?: { url: string; revision: number };
  seed: number;
  complete: boolean;
  durationNs: number;
  simulatedNs: number;
  events: number;
  binNs: number;
  /**
   * Per class: `rate` is the per-host budget, `rateTimesHosts` that budget times the hosts that
   * sent in the class; throughput (bytes leaving host NICs, headers included) and goodput
   * (application bytes delivered) are both over [startNs, simulatedNs]: from the class's first
   * packet to the end of the run.
   */
  classes: Array<{ name: string; rate: string | null; sendingHosts: number; rateTimesHosts: string | null; parent: string | null; bytes: number; deliveredBytes: number; startNs: number; throughputBps: number; goodputBps: number; throughputSeriesBps: number[] }>;
  flows: Array<{ id: number; workload: number; from: string; to: string; class: string; bytes: number; goodputBps: number; completed: boolean; fctNs: number | null; slowdown: number | null; retransmits: number; timeouts: number; goodputSeriesBps: number[] }>;
  fct: { completed: number; p50Ns: number; p99Ns: number; slowdownP50: number; slowdownP99: number };
  incast: Array<{ workload: number; class: string; client: string; servers: number; blockBytes: number; rounds: number; roundsCompleted: number; startNs: number; goodputBps: number; roundNs: { p50: number; p99: number; max: number }; roundGoodputBps: number[]; roundTimeTotalNs: number; retransmits: number; timeouts: number }>;
  rpc: RpcResult[];
  onoff: OnOffResult[];
  hosts: PortResult[];
  switchPorts: PortResult[];
  /** The shared buffer, when the switch has one. */
  switch: { sharedBufferBytes: number; alpha: number | null; maxUsedBytes: number; meanUsedBytes: number; drops: number } | null;
  drops: Record<DropReason, number>;
  retransmits: number;
  timeouts: number;
};

export type PortResult = {
  name: string;
  sentPackets: number;
  drops: number;
  dropsByReason: Partial<Record<DropReason, number>>;
  maxQueueBytes: number;
  /** Time-average queue over the run. */
  meanQueueBytes: number;
  queueDelay: Percentiles;
  shaperDelay?: Percentiles;
  /** Mean queue per bin, and drops per bin: only for ports that queued or dropped. */
  queueSeriesBytes?: number[];
  dropSeries?: number[];
};

export type RpcResult = {
  workload: number;
  /** The class of responses to the first client (classes can differ per client by prefix). */
  class: string;
  sizes: string;
  meanSizeBytes: number;
  load: number | null;
  arrivalsPerSecond: number;
  requestBytes: number;
  arrivals: number;
  completed: number;
  inFlight: number;
  offeredBps: number;
  offeredLoad: number;
  goodputBps: number;
  /** Data segments delivered in order (requests and responses). */
  deliveredSegments: number;
  fct: ExactSummary;
  buckets: RpcBucket[];
  /** FCT and slowdown by the responses' class (one entry unless classes differ per client). */
  byClass: Array<ExactSummary & { class: string }>;
  retransmits: number;
  timeouts: number;
  goodputSeriesBps: number[];
  completedSeries: number[];
};

export type OnOffResult = {
  workload: number;
  class: string;
  from: string;
  to: string;
  rate: string;
  on: string;
  off: string;
  periods: string;
  dutyCycleExpected: number;
  goodputBps: number;
  flows: Array<{ id: number; onPeriods: number; dutyCycle: number; offeredBps: number; goodputBps: number; retransmits: number; timeouts: number; goodputSeriesBps: number[] }>;
};

/** Convenience: build and run. */
export function runScenario(scenario: Scenario, opts: RunOptions = {}): Promise<SimResult> {
  return new Simulation(scenario, opts.seed).run(opts);
}

