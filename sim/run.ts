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
import { DROP_REASONS, wireBytes, type DropReason, type Packet } from './net/packet.js';
import type { Port } from './net/port.js';
import { Star } from './topology/star.js';
import { Incast } from './workload/incast.js';
import type { TcpReceiver, TcpSender } from './tcp/tcp.js';
import type { Scenario, SimHost, SimWorkload } from './scenario/load.js';
import { formatRate } from '../api/contract/units.js';
import { Histogram, percentile, type Percentiles } from './stats.js';

export const UNCLASSIFIED = '(unclassified)';
/** Simulated time between checks for completion, progress and Ctrl-C. */
const SLICE_NS = 1_000_000;
/** An always-busy sender writes this much more whenever it has written everything (see bulk.ts). */
const CHUNK = 1 << 30;

export interface Progress {
  simulatedNs: TimeNs;
  durationNs: TimeNs;
  events: number;
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
}

class PortProbe {
  readonly queue = new Histogram();
  /** Host NICs only: the EDT hold (time to send − arrival) and fq queueing after it. */
  readonly shaper = new Histogram();
  constructor(readonly port: Port, readonly kind: 'host' | 'switch') {}
}

export class Simulation {
  readonly events = new EventList();
  readonly seed: number;
  private readonly star: Star;
  private readonly flows: FlowState[] = [];
  private readonly incasts: Array<{ w: Extract<SimWorkload, { kind: 'incast' }>; incast: Incast; startNs: TimeNs }> = [];
  private readonly probes: PortProbe[] = [];
  /** Bytes leaving host NICs per class id per bin. */
  private readonly bins = new Map<number, number[]>();
  private lastCompletion: TimeNs = 0;

  constructor(readonly scenario: Scenario, seed = scenario.seed) {
    this.seed = seed;
    const rng = new Rng(seed);
    this.star = new Star(this.events);
    for (const h of scenario.hosts) {
      const sh = this.star.addHost({ name: h.name, link: h.link, switchPort: scenario.switchPort, classes: h.classes });
      this.probe(new PortProbe(sh.egress.nic, 'host'));
      this.probe(new PortProbe(sh.port, 'switch'));
    }
    for (const w of scenario.workloads) {
      const start = (): TimeNs => w.startNs + (w.jitterNs > 0 ? Math.floor(rng.next() * w.jitterNs) : 0);
      if (w.kind === 'bulk') for (let i = 0; i < w.flows; i++) this.addFlow(w, start());
      else {
        const incast = new Incast(this.events, this.star, { client: w.client, servers: w.servers, blockBytes: w.blockBytes, rounds: w.rounds, cls: w.cls, ackCls: w.ackCls }, w.tcp);
        const startNs = start();
        this.incasts.push({ w, incast, startNs });
        this.at(startNs, () => incast.start());
      }
    }
  }

  /** True when every workload is finite and finished: the rest of `duration` would be idle. */
  get finished(): boolean {
    return this.flows.every((f) => f.bytes !== null && f.endNs !== null) && this.incasts.every((i) => i.incast.done);
  }

  /** Runs until the duration, completion, or shouldStop(); resolves with the result. */
  async run(opts: RunOptions = {}): Promise<SimResult> {
    const yieldMs = opts.yieldEveryMs ?? 50;
    const { durationNs } = this.scenario;
    let lastYield = Date.now();
    let stopped = false;
    while (this.events.now() < durationNs && !this.finished) {
      this.events.run(Math.min(this.events.now() + SLICE_NS, durationNs));
      opts.onProgress?.({ simulatedNs: this.events.now(), durationNs, events: this.events.eventsRun() });
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
    p.port.onService = (pkt: Packet, waited: TimeNs) => {
      p.queue.add(waited);
      if (p.kind !== 'host') return;
      p.shaper.add(Math.max(0, pkt.tstamp - pkt.enqueuedAt));
      const bin = Math.floor(this.events.now() / this.scenario.binNs);
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
    const f: FlowState = { workload: w.index, from: w.from, to: w.to, cls: w.cls, bytes: w.bytes, startNs, endNs: null, idealNs: null, sender: c.sender, receiver: c.receiver };
    this.flows.push(f);
    if (w.bytes === null) {
      this.at(startNs, () => c.sender.write(CHUNK));
      c.sender.onAllAcked = () => c.sender.write(CHUNK);
      return;
    }
    const bytes = w.bytes;
    f.idealNs = this.idealNs(w, bytes);
    c.receiver.onDelivered = (total) => {
      if (f.endNs === null && total >= bytes) {
        f.endNs = this.events.now();
        this.lastCompletion = Math.max(this.lastCompletion, f.endNs);
      }
    };
    this.at(startNs, () => c.sender.write(bytes));
  }

  /**
   * FCT on an idle network: propagation both links, every wire byte at the bottleneck (the slower
   * link or the class budget on the sender), one segment's store-and-forward at the switch.
   * Slow start and the handshake are not in it, so short flows show slowdowns above 1 even alone.
   */
  private idealNs(w: Extract<SimWorkload, { kind: 'bulk' }>, bytes: number): number {
    const a = this.host(w.from);
    const b = this.host(w.to);
    let budget = Infinity;
    for (let id = w.cls; id !== 0; ) {
      const c = a.classes.get(id);
      if (!c) break;
      budget = Math.min(budget, c.rateBps);
      id = c.parentId;
    }
    const links = [a.link, b.link];
    const segs = Math.ceil(bytes / w.tcp.mss);
    const segWire = (l: (typeof links)[number]) => wireBytes(w.tcp.mss + w.tcp.headerBytes, l.overheadBytes ?? 38);
    const totalWire = bytes + segs * (w.tcp.headerBytes + (b.link.overheadBytes ?? 38));
    const bottleneck = Math.min(a.link.rateBps, b.link.rateBps, budget);
    return a.link.delayNs + b.link.delayNs + Math.ceil((totalWire * 8e9) / bottleneck) + Math.ceil((segWire(a.link) * 8e9) / a.link.rateBps);
  }

  private host(name: string): SimHost {
    return this.scenario.hosts.find((h) => h.name === name)!;
  }

  result(complete: boolean): SimResult {
    const s = this.scenario;
    const endNs = this.finished ? this.lastCompletionTime() : Math.min(this.events.now(), s.durationNs);
    const span = Math.max(endNs, 1);
    const bps = (bytes: number, ns: number) => (ns > 0 ? Math.round((bytes * 8e9) / ns) : 0);
    const className = (id: number) => (id === 0 ? UNCLASSIFIED : s.classes[id - 1]!.spec.name);
    const nBins = Math.ceil(endNs / s.binNs);

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
      };
    });
    const done = flows.filter((f) => f.fctNs !== null);

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
        retransmits: r.retransmits,
        timeouts: r.timeouts,
      };
    });

    const classIds = [...s.classes.map((c) => c.id), ...(this.bins.has(0) ? [0] : [])];
    const classes = classIds.map((id) => {
      const series = (this.bins.get(id) ?? []).slice(0, nBins);
      const bytes = series.reduce((a, b) => a + b, 0);
      const spec = id === 0 ? null : s.classes[id - 1]!.spec;
      const goodput = flows.filter((f) => f.class === className(id)).reduce((a, f) => a + f.goodputBps, 0) + incast.filter((x) => x.class === className(id)).reduce((a, x) => a + x.goodputBps, 0);
      return {
        name: className(id),
        rate: spec ? formatRate(spec.rate) : null,
        parent: spec?.parent ?? null,
        bytes,
        throughputBps: bps(bytes, span),
        goodputBps: goodput,
        // The last bin may be cut short by the end of the run: its rate is over its real width.
        throughputSeriesBps: Array.from({ length: nBins }, (_, b) => bps(series[b] ?? 0, Math.min(s.binNs, endNs - b * s.binNs))),
      };
    });

    const drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    const port = (p: PortProbe) => {
      for (const r of DROP_REASONS) drops[r] += p.port.stats.drops[r];
      return {
        name: p.port.name,
        sentPackets: p.port.stats.sentPackets,
        drops: p.port.stats.dropped,
        maxQueueBytes: p.port.stats.maxQueueBytes,
        queueDelay: p.queue.summary(),
        ...(p.kind === 'host' && { shaperDelay: p.shaper.summary() }),
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
      hosts: hostPorts,
      switchPorts,
      drops,
      retransmits: flows.reduce((a, f) => a + f.retransmits, 0) + incast.reduce((a, x) => a + x.retransmits, 0),
      timeouts: flows.reduce((a, f) => a + f.timeouts, 0) + incast.reduce((a, x) => a + x.timeouts, 0),
    };
  }

  private lastCompletionTime(): TimeNs {
    let t = this.lastCompletion;
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
  seed: number;
  complete: boolean;
  durationNs: number;
  simulatedNs: number;
  events: number;
  binNs: number;
  classes: Array<{ name: string; rate: string | null; parent: string | null; bytes: number; throughputBps: number; goodputBps: number; throughputSeriesBps: number[] }>;
  flows: Array<{ id: number; workload: number; from: string; to: string; class: string; bytes: number; goodputBps: number; completed: boolean; fctNs: number | null; slowdown: number | null; retransmits: number; timeouts: number }>;
  fct: { completed: number; p50Ns: number; p99Ns: number; slowdownP50: number; slowdownP99: number };
  incast: Array<{ workload: number; class: string; client: string; servers: number; blockBytes: number; rounds: number; roundsCompleted: number; startNs: number; goodputBps: number; roundNs: { p50: number; p99: number; max: number }; roundGoodputBps: number[]; retransmits: number; timeouts: number }>;
  hosts: Array<{ name: string; sentPackets: number; drops: number; maxQueueBytes: number; queueDelay: Percentiles; shaperDelay?: Percentiles }>;
  switchPorts: Array<{ name: string; sentPackets: number; drops: number; maxQueueBytes: number; queueDelay: Percentiles }>;
  drops: Record<DropReason, number>;
  retransmits: number;
  timeouts: number;
};

/** Convenience: build and run. */
export function runScenario(scenario: Scenario, opts: RunOptions = {}): Promise<SimResult> {
  return new Simulation(scenario, opts.seed).run(opts);
}

