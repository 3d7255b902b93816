/**
 * Request/response RPCs with open-loop Poisson arrivals, the workload of the pFabric, PIAS and
 * HOMA evaluations: arrivals do not wait for earlier RPCs (open loop), so the offered load does
 * not fall when the network is slow, and queues show what that load does.
 *
 * Each arrival picks a client uniformly, then a server uniformly among that client's servers,
 * and draws the response size from the CDF (three RNG streams, so changing one choice does not
 * change the others). The client writes a request of `requestBytes` on a new TCP connection;
 * when the server has all of it, the server writes the response on a new connection back, as
 * the papers' flows start in slow start with the initial window. With requestBytes 0 the
 * response starts at the arrival (pFabric's one-way flows).
 *
 * The completion time (FCT) runs from the arrival to the last response byte delivered at the
 * client; its ideal is the ideal of the request plus that of the response (ideal.ts), so the
 * slowdown FCT / ideal is ≥ 1 and near 1 on an idle network.
 */
import { Timer, type EventList, type TimeNs } from '../engine/events.js';
import { Rng } from '../engine/rng.js';
import type { Star } from '../topology/star.js';
import type { TcpSender } from '../tcp/tcp.js';
import type { RpcPair, RpcRoute } from '../scenario/load.js';
import { sampleSize, type SizeCdf } from './cdf.js';
import { PoissonArrivals, streamSeed } from './random.js';
import { summarizeExact, type ExactSummary } from '../stats.js';

export interface RpcSpec {
  /** By client: the pairs a request from that client may use (see load.ts). */
  pairs: RpcPair[][];
  cdf: SizeCdf;
  arrivalsPerSecond: number;
  requestBytes: number;
  /** Stop after this many arrivals; null = until the run ends. */
  count: number | null;
  /** Upper bounds of the FCT size buckets, increasing. */
  buckets: number[];
  startNs: TimeNs;
}

/** Ideal transfer time of `bytes` from one host to another on a route (ideal.ts). */
export type IdealFn = (from: string, to: string, route: RpcRoute, bytes: number) => number;

interface Call {
  pair: RpcPair;
  size: number;
  startNs: TimeNs;
  idealNs: number;
  delivered: number;
  senders: TcpSender[];
}

export interface RpcBucket extends ExactSummary {
  /** "≤ 100 KB", "100 KB – 10 MB", "> 10 MB" … */
  label: string;
  /** Sizes in (minBytes, maxBytes]; maxBytes null = no upper bound. */
  minBytes: number;
  maxBytes: number | null;
}

export class RpcWorkload {
  arrivals = 0;
  completed = 0;
  /** Response bytes of every arrival so far: the offered load. */
  offeredBytes = 0;
  /** Response bytes delivered to clients so far. */
  deliveredBytes = 0;
  /** When the last RPC completed (0 = none yet). */
  lastCompletionNs: TimeNs = 0;
  /** Data segments delivered in order, requests and responses (the cost unit of bench/sim.ts). */
  deliveredSegments = 0;
  /** Delivered response bytes by the response's class id. */
  readonly deliveredByClass = new Map<number, number>();
  private readonly active = new Set<Call>();
  private readonly sizes: number[] = [];
  private readonly fcts: number[] = [];
  private readonly slowdowns: number[] = [];
  /** The response's class id of each completed RPC. */
  private readonly classes: number[] = [];
  private finishedRetransmits = 0;
  private finishedTimeouts = 0;
  private readonly arrivalsRng: PoissonArrivals;
  private readonly pickRng: Rng;
  private readonly sizeRng: Rng;
  private readonly timer: Timer;
  /** Arrival times, kept only when asked for (tests of the Poisson process). */
  arrivalLog: number[] | undefined;

  constructor(
    private readonly events: EventList,
    private readonly star: Star,
    private readonly spec: RpcSpec,
    seed: number,
    private readonly ideal: IdealFn,
  ) {
    this.arrivalsRng = new PoissonArrivals(new Rng(streamSeed(seed, 1)), spec.arrivalsPerSecond);
    this.pickRng = new Rng(streamSeed(seed, 2));
    this.sizeRng = new Rng(streamSeed(seed, 3));
    this.timer = new Timer(events, () => this.arrive());
  }

  /** Arms the first arrival: one exponential gap after the workload's start. */
  start(): void {
    this.timer.set(this.spec.startNs + this.arrivalsRng.nextGapNs());
  }

  /** Every arrival there will be has come and completed. */
  get done(): boolean {
    return this.spec.count !== null && this.arrivals >= this.spec.count && this.active.size === 0;
  }

  get inFlight(): number {
    return this.active.size;
  }

  private arrive(): void {
    const now = this.events.now();
    this.arrivals++;
    this.arrivalLog?.push(now);
    if (this.spec.count === null || this.arrivals < this.spec.count) this.timer.set(now + this.arrivalsRng.nextGapNs());
    const row = this.spec.pairs[this.pickRng.int(this.spec.pairs.length)]!;
    const pair = row[this.pickRng.int(row.length)]!;
    const size = sampleSize(this.spec.cdf, this.sizeRng.next());
    this.offeredBytes += size;
    const req = this.spec.requestBytes;
    const idealNs = (req > 0 ? this.ideal(pair.client, pair.server, pair.request, req) : 0) + this.ideal(pair.server, pair.client, pair.response, size);
    const call: Call = { pair, size, startNs: now, idealNs, delivered: 0, senders: [] };
    this.active.add(call);
    if (req === 0) return this.respond(call);
    const c = this.star.connect(pair.client, pair.server, pair.request.tcp, pair.request.cls, pair.request.ackCls);
    call.senders.push(c.sender);
    let answered = false;
    c.receiver.onDelivered = (total) => {
      if (!answered && total >= req) {
        answered = true;
        this.deliveredSegments += Math.ceil(req / pair.request.tcp.mss);
        this.respond(call);
      }
    };
    c.sender.write(req);
  }

  private respond(call: Call): void {
    const { pair } = call;
    const r = pair.response;
    const c = this.star.connect(pair.server, pair.client, r.tcp, r.cls, r.ackCls);
    call.senders.push(c.sender);
    c.receiver.onDelivered = (total) => {
      const more = Math.min(total, call.size) - call.delivered;
      if (more <= 0) return;
      // Segments of the response delivered so far: whole MSS blocks, and the last one when complete.
      const mss = r.tcp.mss;
      this.deliveredSegments += Math.ceil(Math.min(total, call.size) / mss) - Math.ceil(call.delivered / mss);
      call.delivered += more;
      this.deliveredBytes += more;
      this.deliveredByClass.set(r.cls, (this.deliveredByClass.get(r.cls) ?? 0) + more);
      if (call.delivered >= call.size) this.complete(call);
    };
    c.sender.write(call.size);
  }

  private complete(call: Call): void {
    const fct = this.events.now() - call.startNs;
    this.lastCompletionNs = this.events.now();
    this.completed++;
    this.sizes.push(call.size);
    this.fcts.push(fct);
    this.slowdowns.push(fct / call.idealNs);
    this.classes.push(call.pair.response.cls);
    for (const s of call.senders) {
      this.finishedRetransmits += s.stats.retransmits;
      this.finishedTimeouts += s.stats.timeouts;
    }
    this.active.delete(call);
  }

  /** Retransmits and RTO timeouts of every connection so far (finished and in flight). */
  tcpStats(): { retransmits: number; timeouts: number } {
    let retransmits = this.finishedRetransmits;
    let timeouts = this.finishedTimeouts;
    for (const c of this.active) {
      for (const s of c.senders) {
        retransmits += s.stats.retransmits;
        timeouts += s.stats.timeouts;
      }
    }
    return { retransmits, timeouts };
  }

  /** FCT and slowdown of completed RPCs: all, and per size bucket. */
  fctSummary(): { all: ExactSummary; buckets: RpcBucket[] } {
    const bounds = this.spec.buckets;
    const buckets: RpcBucket[] = [];
    for (let b = 0; b <= bounds.length; b++) {
      const min = b === 0 ? 0 : bounds[b - 1]!;
      const max = b < bounds.length ? bounds[b]! : null;
      const idx: number[] = [];
      for (let i = 0; i < this.sizes.length; i++) if (this.sizes[i]! > min && (max === null || this.sizes[i]! <= max)) idx.push(i);
      const label = b === 0 ? `≤ ${bytesText(max!)}` : max === null ? `> ${bytesText(min)}` : `${bytesText(min)} – ${bytesText(max)}`;
      buckets.push({ label, minBytes: min, maxBytes: max, ...summarizeExact(idx.map((i) => this.fcts[i]!), idx.map((i) => this.slowdowns[i]!)) });
    }
    return { all: summarizeExact(this.fcts, this.slowdowns), buckets };
  }

  /** FCT and slowdown by the responses' class id (classes can differ per client by prefix), ids ascending. */
  fctByClass(): Array<{ cls: number; summary: ExactSummary }> {
    const ids = [...new Set(this.classes)].sort((a, b) => a - b);
    return ids.map((cls) => {
      const idx = this.classes.flatMap((c, i) => (c === cls ? [i] : []));
      return { cls, summary: summarizeExact(idx.map((i) => this.fcts[i]!), idx.map((i) => this.slowdowns[i]!)) };
    });
  }
}

/** Decimal units, as the papers label their buckets (100 KB = 100,000 bytes). */
export function bytesText(n: number): string {
  for (const [unit, v] of [['GB', 1e9], ['MB', 1e6], ['KB', 1e3]] as const) if (n >= v && n % (v / 1000) === 0) return `${n / v} ${unit}`;
  return `${n} B`;
}
