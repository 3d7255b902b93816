/**
 * What the demo's table shows each second, read from the real parts: the classes and the host's
 * mode from pacer's API (what an operator sees), the effective rates, drops and queueing-delay
 * histograms from the kernel's maps the agent filled (read through pacer's binding on the agent's
 * pins, as `pacer dp` reads them), and what each class delivered from the sender's TCP sockets.
 */
import { join } from 'node:path';
import { Datapath, delayQuantile, type DelayHistogram } from '../shaper-bpf/src/datapath.js';
import { EgressObject } from '../shaper-bpf/src/egress.js';
import type { ClassStats } from '../shaper-bpf/src/layout.js';
import { histogramIncrease } from '../controller/metrics/delay-histograms.js';

/** A class as GET /v1/classes returns it (the fields the demo shows). */
export interface ApiClass {
  id: number;
  name: string;
  rate: { bitsPerSecond: number };
  ceil: { bitsPerSecond: number } | null;
  parent: string | null;
}

/** One second of one class. */
export interface ClassSecond {
  name: string;
  id: number;
  parent: string | null;
  rateBps: number;
  ceilBps: number | null;
  /** The rate the kernel enforces now (after borrowing); undefined until the agent wrote it. */
  effectiveBps?: number;
  /**
   * Wire bits per second the class delivered in the second, as the receiver acknowledged it
   * (delivered.ts); for a class the demo sends no traffic to of its own, what the data plane
   * passed. A parent's is its children's sum.
   */
  achievedBps: number;
  /** Mean and 99th percentile of the time the program held the class's packets in the second (ns). */
  meanDelayNs?: number;
  p99DelayNs?: number;
  /** Packets dropped at the horizon (under policing: the policer's depth) in the second. */
  drops: number;
}

export interface Second {
  /** Seconds since the traffic started. */
  t: number;
  /** How long the second's delivered rates were measured over (s; about 1). */
  intervalS: number;
  mode: string;
  modeDetail?: string;
  classErrors: Array<{ class: string; error: string }>;
  classes: ClassSecond[];
}

interface Counters {
  stats: ClassStats;
  hist?: DelayHistogram;
}

export class KernelReader {
  private readonly egress: EgressObject;
  private readonly datapath: Datapath;
  private last = new Map<number, Counters>();
  private lastAt = 0;

  constructor(pinBase: string, iface: string) {
    this.egress = EgressObject.load({ pinRoot: join(pinBase, iface), requirePinned: true });
    this.datapath = new Datapath(this.egress);
  }

  /** Starts the deltas from now (call when the traffic starts). */
  reset(): void {
    this.last = this.counters();
    this.lastAt = performance.now();
  }

  private counters(): Map<number, Counters> {
    const stats = this.datapath.stats().classes;
    const hists = this.datapath.delayHistograms(stats.keys());
    return new Map([...stats].map(([id, s]) => [id, { stats: s, hist: hists.get(id) }]));
  }

  /**
   * One second of every class the API has: deltas since the previous call. `delivered`: wire bits
   * per second by destination address; `receivers`: the address each class's traffic goes to.
   */
  second(
    t: number,
    classes: readonly ApiClass[],
    host: { mode: string; modeDetail?: string; classErrors?: Second['classErrors'] },
    delivered: { bps: ReadonlyMap<string, number>; intervalS: number },
    receivers: ReadonlyMap<string, string>,
  ): Second {
    const now = this.counters();
    const at = performance.now();
    const dt = (at - this.lastAt) / 1000;
    const config = this.datapath.read().classes;
    const rows: ClassSecond[] = classes.map((c) => {
      const cur = now.get(c.id);
      const prev = this.last.get(c.id);
      const bytes = cur && prev ? cur.stats.bytes - prev.stats.bytes : 0;
      const packets = cur && prev ? cur.stats.packets - prev.stats.packets : 0;
      const delayNs = cur && prev ? cur.stats.delay_ns - prev.stats.delay_ns : 0;
      const hist = cur?.hist ? histogramIncrease(cur.hist, prev?.hist) : undefined;
      return {
        name: c.name,
        id: c.id,
        parent: c.parent,
        rateBps: c.rate.bitsPerSecond,
        ceilBps: c.ceil?.bitsPerSecond ?? null,
        effectiveBps: config.get(c.id)?.rate_bps,
        achievedBps: receivers.has(c.name) ? (delivered.bps.get(receivers.get(c.name)!) ?? 0) : dt > 0 ? (bytes * 8) / dt : 0,
        meanDelayNs: packets > 0 ? delayNs / packets : undefined,
        p99DelayNs: hist && hist.total > 0 ? delayQuantile(hist, 0.99) : undefined,
        drops: cur && prev ? cur.stats.horizon_drops - prev.stats.horizon_drops : 0,
      };
    });
    // A parent's traffic is its children's: the program counts a packet in its leaf class.
    for (const row of rows) {
      const children = rows.filter((r) => r.parent === row.name);
      if (children.length === 0) continue;
      row.achievedBps = children.reduce((a, r) => a + r.achievedBps, 0);
      row.drops = children.reduce((a, r) => a + r.drops, 0);
    }
    this.last = now;
    this.lastAt = at;
    return { t, intervalS: delivered.intervalS, mode: host.mode, modeDetail: host.modeDetail, classErrors: host.classErrors ?? [], classes: rows };
  }

  close(): void {
    this.egress.close();
  }
}
