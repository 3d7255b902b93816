/**
 * The agent's Prometheus metrics (`/metrics`), read from the maps at scrape time so a scrape shows
 * what the kernel has now: per interface and class the kernel's counters (as counters), the
 * effective rate, and the queueing-delay histogram (pacer_class_delay_seconds, a Prometheus
 * histogram); per interface its mode; the applied revision. Names, types and the histogram's `le`
 * bounds are documented in docs/agent.md ("Metrics in Prometheus").
 *
 * The kernel keeps the counts; prom-client's Counter and Histogram only count what the process
 * itself observes (inc, observe: no way to set a histogram's bucket counts). So the per class
 * metrics are prom-client metrics whose get() returns the samples of the scrape's snapshot: the
 * exposition text, escaping and `+Inf` are prom-client's own.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ApiConnection } from '../api-client/api-client.js';
import type { Datapath, DelayHistogram } from '../../shaper-bpf/src/datapath.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import type { InterfaceMode } from '../../shaper-bpf/src/interface.js';
import { DelayHistogramCache, type HistogramSource } from './delay-histograms.js';
import type { AttachmentState } from '../datapath/attachment-watch.js';
import { ATTACHMENT_STATES } from '../../api/contract/host.js';

export interface MetricsSource {
  iface: string;
  mode: InterfaceMode;
  datapath: Pick<Datapath, 'stats' | 'read'> & HistogramSource;
  /** pacer's tc program on the interface (controller/datapath/attachment-watch.ts); absent = not reported. */
  attachment?: { state: AttachmentState; lapses: number; pinsRecreated?: number };
}

/**
 * The `le` bounds of pacer_class_delay_seconds, in ns: every power of two from 2^10 ns (1.024 µs)
 * to 2^34 ns (17.2 s), each one of the data plane's own bucket bounds (every fourth), so each
 * cumulative count is exact. 25 bounds + `+Inf`: 28 series per class that passed a packet, with
 * _sum and _count, not the 100 of all 98 buckets (docs/agent.md says why).
 */
export const DELAY_LE_NS: readonly number[] = Array.from({ length: 25 }, (_, i) => 2 ** (10 + i));

/** `class` is the class's name (the id in text while unknown, as InfluxDB's tag); `class_id` stays, the stable key. */
type ClassLabel = 'iface' | 'class' | 'class_id';
type Sample = { labels: Record<string, string>; value: number; metricName?: string };

/** A counter whose samples are set from a snapshot (the kernel's counters, the API client's) before each scrape. */
class SnapshotCounter extends Counter<ClassLabel> {
  samples: Sample[] = [];
  override async get() {
    return { ...(await super.get()), values: this.samples };
  }
}

class SnapshotGauge extends Gauge<ClassLabel> {
  samples: Sample[] = [];
  override async get() {
    return { ...(await super.get()), values: this.samples };
  }
}

/**
 * prom-client's own Histogram.getForPromString (not in its typings): what the registry renders a
 * histogram from; with no observations it returns the metric's name, help, type and no values.
 */
const histogramHeader = (Histogram.prototype as unknown as { getForPromString(this: Histogram<ClassLabel>): Promise<{ values: unknown[] }> }).getForPromString;

/**
 * A histogram whose cumulative buckets, sum and count are the kernel's (set before each scrape).
 * The registry renders a histogram from getForPromString(), getMetricsAsJSON from get(): both
 * return the snapshot.
 */
class KernelHistogram extends Histogram<ClassLabel> {
  samples: Sample[] = [];
  async getForPromString() {
    return { ...(await histogramHeader.call(this)), values: this.samples };
  }
  override async get() {
    return (await this.getForPromString()) as unknown as Awaited<ReturnType<Histogram<ClassLabel>['get']>>;
  }
}

/** `le` label values in seconds, as Prometheus reads them. */
const LE_LABELS = DELAY_LE_NS.map((ns) => String(ns / 1e9));

/** The samples of one class's histogram: cumulative count at each `le`, +Inf, _sum, _count. */
function histogramSamples(name: string, labels: Record<ClassLabel, string>, hist: DelayHistogram, delaySumNs: number): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  let b = 0;
  for (let i = 0; i < DELAY_LE_NS.length; i++) {
    // Every data plane bucket that ends at or below this bound (delays are below its upperNs).
    while (b < hist.buckets.length && hist.buckets[b]!.upperNs <= DELAY_LE_NS[i]!) cumulative += hist.buckets[b++]!.count;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: LE_LABELS[i]! }, value: cumulative });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: hist.total });
  out.push({ metricName: `${name}_sum`, labels, value: delaySumNs / 1e9 });
  out.push({ metricName: `${name}_count`, labels, value: hist.total });
  return out;
}

const COUNTERS = {
  bytes: ['pacer_class_bytes_total', 'Bytes passed by the class'],
  packets: ['pacer_class_packets_total', 'Packets passed by the class'],
  delayed: ['pacer_class_delayed_packets_total', 'Packets of the class given a later departure time'],
  horizon_drops: ['pacer_class_horizon_drops_total', 'Packets of the class dropped beyond its horizon'],
  ce_marks: ['pacer_class_ce_marks_total', 'Packets of the class marked CE'],
  contended: ['pacer_class_contended_total', 'Lost races between CPUs for the class schedule (each retried or resolved by fetch-and-add; no packet is dropped for it)'],
} as const satisfies Partial<Record<keyof ClassStats, readonly [string, string]>>;

export const DELAY_HISTOGRAM = 'pacer_class_delay_seconds';

export interface PrometheusMetricsOptions {
  registry: Registry;
  /** The interfaces, read at every scrape. */
  sources: () => MetricsSource[];
  /** The API revision applied on every interface. */
  appliedRevision: () => number;
  /** Whether the agent follows the API now; absent = not reported. */
  api?: () => ApiConnection;
  /** Shared with the InfluxDB sink so that a histogram is read once however many readers want it. */
  histograms?: DelayHistogramCache;
  /** Class id → name (the `class` label); the id in text when unknown. */
  className?: (id: number) => string | undefined;
}

export class PrometheusMetrics {
  private readonly counters: Record<keyof typeof COUNTERS, SnapshotCounter>;
  private readonly rate: SnapshotGauge;
  private readonly delay: KernelHistogram;
  private readonly applied: Gauge;
  private readonly mode: Gauge<'iface' | 'mode'>;
  private readonly attachment: Gauge<'iface' | 'state'>;
  private readonly lapses: SnapshotCounter;
  private readonly pinsRecreated: SnapshotCounter;
  private readonly apiConnected: Gauge;
  private readonly apiDisconnectedFor: Gauge;
  private readonly apiFailures: SnapshotCounter;
  private readonly histograms: DelayHistogramCache;
  /**
   * A class's histogram samples, kept with the histogram they were made from: the cache returns the
   * same object until the class passes packets, so an idle class's 28 samples are not made again.
   */
  private readonly delaySamples = new WeakMap<DelayHistogram, { delayNs: number; name: string; samples: Sample[] }>();

  constructor(private readonly o: PrometheusMetricsOptions) {
    const registers = [o.registry];
    const labelNames = ['iface', 'class', 'class_id'] as const;
    this.histograms = o.histograms ?? new DelayHistogramCache();
    this.counters = Object.fromEntries(
      Object.entries(COUNTERS).map(([k, [name, help]]) => [k, new SnapshotCounter({ name, help, labelNames, registers })]),
    ) as Record<keyof typeof COUNTERS, SnapshotCounter>;
    this.rate = new SnapshotGauge({ name: 'pacer_class_effective_rate_bps', help: 'Rate in the class\'s config map (the borrowing loop\'s effective rate), bits/s', labelNames, registers });
    this.delay = new KernelHistogram({
      name: DELAY_HISTOGRAM,
      help: 'Time pacer held each passed packet of the class (departure time - now), seconds; le bounds are the data plane\'s bucket bounds, exclusive to the ns',
      labelNames,
      buckets: DELAY_LE_NS.map((ns) => ns / 1e9),
      registers,
    });
    this.applied = new Gauge({ name: 'pacer_agent_applied_revision', help: 'API revision applied on every interface', registers });
    // The API being out of reach never stops enforcement (the maps and the snapshot go on); these say it.
    this.apiConnected = new Gauge({ name: 'pacer_agent_api_connected', help: '1 while the agent follows the API\'s watch (caught up), 0 while it cannot reach it (enforcement goes on from the maps)', registers });
    this.apiDisconnectedFor = new Gauge({ name: 'pacer_agent_api_unreachable_seconds', help: 'How long the agent has not been following the API; 0 while connected', registers });
    this.apiFailures = new SnapshotCounter({ name: 'pacer_agent_api_failures_total', help: 'Failed attempts to list or watch the API', registers });
    this.attachment = new Gauge({ name: 'pacer_interface_attachment', help: 'pacer\'s tc program on the interface: 1 for its state (attached; repaired: re-attached in the last 10 minutes; error: not attached and cannot be, nothing is enforced), 0 for the others', labelNames: ['iface', 'state'], registers });
    this.lapses = new SnapshotCounter({ name: 'pacer_interface_lapses_total', help: 'Times the agent found pacer\'s tc program not attached to the interface (filter deleted, clsact removed, interface re-created)', labelNames: ['iface'], registers });
    this.pinsRecreated = new SnapshotCounter({ name: 'pacer_interface_pins_recreated_total', help: 'Times the agent found pacer\'s pins (maps, program) removed under its pin directory and pinned them again (enforcement went on; a restarted agent adopts the state through them)', labelNames: ['iface'], registers });
    this.mode = new Gauge({ name: 'pacer_interface_mode', help: 'What the interface does: 1 for its mode (shaping with fq, or policing without), 0 for the other', labelNames: ['iface', 'mode'], registers });
  }

  /** Reads the maps and returns the exposition text of the whole registry. */
  async render(): Promise<string> {
    this.collect();
    return this.o.registry.metrics();
  }

  /** One snapshot of every interface's maps into the metrics. */
  collect(): void {
    this.applied.set(this.o.appliedRevision());
    const api = this.o.api?.();
    if (api) {
      this.apiConnected.set(api.connected ? 1 : 0);
      this.apiDisconnectedFor.set(api.connected ? 0 : (Date.now() - api.sinceMs) / 1000);
      this.apiFailures.samples = [{ labels: {}, value: api.failures }];
    }
    this.mode.reset();
    this.attachment.reset();
    const lapses: Sample[] = [];
    const repins: Sample[] = [];
    const counters = Object.fromEntries(Object.keys(COUNTERS).map((k) => [k, [] as Sample[]])) as Record<keyof typeof COUNTERS, Sample[]>;
    const rates: Sample[] = [];
    const delays: Sample[] = [];
    for (const src of this.o.sources()) {
      for (const m of ['shaping', 'policing'] as const) this.mode.set({ iface: src.iface, mode: m }, src.mode === m ? 1 : 0);
      if (src.attachment) {
        for (const state of ATTACHMENT_STATES) this.attachment.set({ iface: src.iface, state }, src.attachment.state === state ? 1 : 0);
        lapses.push({ labels: { iface: src.iface }, value: src.attachment.lapses });
        repins.push({ labels: { iface: src.iface }, value: src.attachment.pinsRecreated ?? 0 });
      }
      const configs = src.datapath.read().classes;
      const stats = src.datapath.stats().classes;
      const hists = this.histograms.histograms(src.datapath, stats);
      for (const [id, s] of stats) {
        const name = this.o.className?.(id) ?? String(id);
        const labels = { iface: src.iface, class: name, class_id: String(id) };
        for (const k of Object.keys(COUNTERS) as (keyof typeof COUNTERS)[]) counters[k].push({ labels, value: s[k] });
        const c = configs.get(id);
        if (c) rates.push({ labels, value: c.rate_bps });
        // Like prom-client's own labelled histograms, a class's series appear with its first packet.
        const h = hists.get(id);
        if (h && h.total > 0) {
          let made = this.delaySamples.get(h);
          if (made?.delayNs !== s.delay_ns || made.name !== name) this.delaySamples.set(h, (made = { delayNs: s.delay_ns, name, samples: histogramSamples(DELAY_HISTOGRAM, labels, h, s.delay_ns) }));
          for (const sample of made.samples) delays.push(sample);
        }
      }
    }
    for (const k of Object.keys(COUNTERS) as (keyof typeof COUNTERS)[]) this.counters[k].samples = counters[k];
    this.lapses.samples = lapses;
    this.pinsRecreated.samples = repins;
    this.rate.samples = rates;
    this.delay.samples = delays;
  }
}
