/**
 * The agent's Prometheus metrics (`/metrics`), read from the maps at scrape time so a scrape shows
 * what the kernel has now: per interface and class the kernel's counters (as counters), the
 * effective rate, and the queueing-delay histogram (pacer_class_delay_seconds, a Prometheus
 * histogram); per interface its mode; the applied revision. Names, types and the histogram's `le`
 * bounds are documented in docs/agent.md ("Metrics in Prometheus").
 *
 * The per-host and per-interface metrics are prom-client's, in the registry. The per-class
 * families are written by exposition.ts after the registry's text: the kernel keeps the counts
 * (prom-client's Counter and Histogram only count what the process observes, with no way to set a
 * histogram's buckets), and at 10,000 classes the registry's formatting of 70,000 label objects
 * was most of a scrape. Each class's label text, and its histogram's lines, are kept between
 * scrapes and made again only when the class's name (or its histogram) changes.
 */
import { Gauge, Counter, type Registry } from 'prom-client';
import type { ApiConnection } from '../api-client/api-client.js';
import type { Datapath, DelayHistogram } from '../../shaper-bpf/src/datapath.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import type { InterfaceMode } from '../../shaper-bpf/src/interface.js';
import { DelayHistogramCache, type HistogramSource } from './delay-histograms.js';
import type { AttachmentState } from '../datapath/attachment-watch.js';
import { ATTACHMENT_STATES } from '../../api/contract/host.js';
import { CachedFamily, labelText, valueText, type Family } from './exposition.js';

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

type Sample = { labels: Record<string, string>; value: number };

/** A counter whose samples are set from a snapshot (the API client's, the attachment watch's) before each scrape. */
class SnapshotCounter extends Counter<string> {
  samples: Sample[] = [];
  override async get() {
    return { ...(await super.get()), values: this.samples };
  }
}

/** `le` label values in seconds, as Prometheus reads them. */
const LE_LABELS = DELAY_LE_NS.map((ns) => String(ns / 1e9));

/** The lines of one class's histogram: cumulative count at each `le`, +Inf, _sum, _count. */
function histogramLines(name: string, labels: string, hist: DelayHistogram, delaySumNs: number): string {
  const out: string[] = [];
  let cumulative = 0;
  let b = 0;
  for (let i = 0; i < DELAY_LE_NS.length; i++) {
    // Every data plane bucket that ends at or below this bound (delays are below its upperNs).
    while (b < hist.buckets.length && hist.buckets[b]!.upperNs <= DELAY_LE_NS[i]!) cumulative += hist.buckets[b++]!.count;
    out.push(`${name}_bucket{${labels},le="${LE_LABELS[i]!}"} ${cumulative}`);
  }
  out.push(`${name}_bucket{${labels},le="+Inf"} ${hist.total}`);
  out.push(`${name}_sum{${labels}} ${valueText(delaySumNs / 1e9)}`);
  out.push(`${name}_count{${labels}} ${hist.total}`);
  return out.join('\n');
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

/** What is kept of one class on one interface between scrapes. */
interface ClassText {
  name: string;
  /** `iface="…",class="…",class_id="…"`, escaped. */
  labels: string;
  /** Its histogram's lines, with the histogram object and delay sum they were made from. */
  hist?: { of: DelayHistogram; delayNs: number; lines: string };
}

const RATE: Family = { name: 'pacer_class_effective_rate_bps', help: 'Rate in the class\'s config map (the borrowing loop\'s effective rate), bits/s', type: 'gauge' };
const DELAY: Family = {
  name: DELAY_HISTOGRAM,
  help: 'Time pacer held each passed packet of the class (departure time - now), seconds; le bounds are the data plane\'s bucket bounds, exclusive to the ns',
  type: 'histogram',
};
const COUNTER_KEYS = Object.keys(COUNTERS) as (keyof typeof COUNTERS)[];

export class PrometheusMetrics {
  private readonly applied: Gauge;
  private readonly mode: Gauge<'iface' | 'mode'>;
  private readonly attachment: Gauge<'iface' | 'state'>;
  private readonly lapses: SnapshotCounter;
  private readonly pinsRecreated: SnapshotCounter;
  private readonly apiConnected: Gauge;
  private readonly apiDisconnectedFor: Gauge;
  private readonly apiFailures: SnapshotCounter;
  private readonly histograms: DelayHistogramCache;
  /** Per interface, class id → its label text and histogram lines (classes gone from the maps are dropped at each collect). */
  private readonly classTexts = new Map<string, Map<number, ClassText>>();
  /** The per-class families, each kept as text between scrapes while its samples stay the same. */
  private readonly counterFamilies = Object.fromEntries(COUNTER_KEYS.map((k) => [k, new CachedFamily({ name: COUNTERS[k][0], help: COUNTERS[k][1], type: 'counter' })])) as Record<keyof typeof COUNTERS, CachedFamily>;
  private readonly rateFamily = new CachedFamily(RATE);
  private readonly delayFamily = new CachedFamily(DELAY);
  /** The per-class families' texts of the last collect(), one per family. */
  private classFamilies: string[] = [];

  constructor(private readonly o: PrometheusMetricsOptions) {
    const registers = [o.registry];
    this.histograms = o.histograms ?? new DelayHistogramCache();
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

  /** Reads the maps and returns the exposition text: the registry's, then the per-class families. */
  async render(): Promise<string> {
    return (await this.chunks()).join('');
  }

  /**
   * render()'s text in pieces, for a response written piece by piece: at 10,000 classes the
   * families are 5.6 MB, kept between scrapes, and one string of them all was as much again.
   */
  async chunks(): Promise<string[]> {
    this.collect();
    return [await this.o.registry.metrics(), ...this.classFamilies.map((f) => `\n${f}`)];
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
    // Per family: the label text and value of each sample (the histogram: each class's lines).
    const labels: string[] = [];
    const counters = Object.fromEntries(COUNTER_KEYS.map((k) => [k, [] as number[]])) as Record<keyof typeof COUNTERS, number[]>;
    const rateLabels: string[] = [];
    const rates: number[] = [];
    const delays: string[] = [];
    const seen = new Set<string>();
    for (const src of this.o.sources()) {
      seen.add(src.iface);
      for (const m of ['shaping', 'policing'] as const) this.mode.set({ iface: src.iface, mode: m }, src.mode === m ? 1 : 0);
      if (src.attachment) {
        for (const state of ATTACHMENT_STATES) this.attachment.set({ iface: src.iface, state }, src.attachment.state === state ? 1 : 0);
        lapses.push({ labels: { iface: src.iface }, value: src.attachment.lapses });
        repins.push({ labels: { iface: src.iface }, value: src.attachment.pinsRecreated ?? 0 });
      }
      const configs = src.datapath.read().classes;
      const stats = src.datapath.stats().classes;
      const hists = this.histograms.histograms(src.datapath, stats);
      const texts = this.textsOf(src.iface, stats);
      for (const [id, s] of stats) {
        const t = this.classText(texts, src.iface, id);
        labels.push(t.labels);
        for (const k of COUNTER_KEYS) counters[k].push(s[k]);
        const c = configs.get(id);
        if (c) {
          rateLabels.push(t.labels);
          rates.push(c.rate_bps);
        }
        // Like prom-client's own labelled histograms, a class's series appear with its first packet.
        const h = hists.get(id);
        if (h && h.total > 0) {
          if (t.hist?.of !== h || t.hist.delayNs !== s.delay_ns) t.hist = { of: h, delayNs: s.delay_ns, lines: histogramLines(DELAY_HISTOGRAM, t.labels, h, s.delay_ns) };
          delays.push(t.hist.lines);
        } else t.hist = undefined;
      }
    }
    for (const iface of this.classTexts.keys()) if (!seen.has(iface)) this.classTexts.delete(iface);
    this.lapses.samples = lapses;
    this.pinsRecreated.samples = repins;
    this.classFamilies = [...COUNTER_KEYS.map((k) => this.counterFamilies[k].samples(labels, counters[k])), this.rateFamily.samples(rateLabels, rates), this.delayFamily.lines(delays)];
  }

  /** The interface's kept class texts, without the classes no longer in its stats. */
  private textsOf(iface: string, stats: ReadonlyMap<number, ClassStats>): Map<number, ClassText> {
    let texts = this.classTexts.get(iface);
    if (!texts) this.classTexts.set(iface, (texts = new Map()));
    for (const id of texts.keys()) if (!stats.has(id)) texts.delete(id);
    return texts;
  }

  /** A class's kept text, made again when its name changed (the API's name replacing the id, or the snapshot's). */
  private classText(texts: Map<number, ClassText>, iface: string, id: number): ClassText {
    const name = this.o.className?.(id) ?? String(id);
    let t = texts.get(id);
    if (t?.name !== name) texts.set(id, (t = { name, labels: labelText({ iface, class: name, class_id: String(id) }) }));
    return t;
  }
}
