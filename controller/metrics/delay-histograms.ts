/**
 * The per-class queueing-delay histograms for the agent's metrics (InfluxDB points, /metrics),
 * read from the data plane only for the classes that passed packets since they were last read.
 *
 * A class's histogram changes only when one of its packets passes, and each such packet also
 * bumps its `packets` counter in class_stats, which every reader reads anyway. So the cache keeps,
 * per interface and class, the histogram last read and the `packets` it was read at, and asks the
 * Datapath again only for the classes whose `packets` moved since (or whose histogram did not yet
 * match it: a packet counted in class_stats may reach its histogram a moment later). An idle class
 * costs nothing after its first read. Measured figures and the decision: docs/agent.md
 * ("Queueing-delay percentiles").
 *
 * The histograms are asked for with the list of wanted class ids, and the Datapath reads just
 * those (one read of class_slot, then only their slots' histograms), so the cost follows the busy
 * classes, not the number of classes.
 *
 * A class that never passed a packet (`packets` 0) has an empty histogram: it is neither read nor
 * kept, and readers treat a missing histogram as an empty one. Kept, the 98 buckets of each of
 * 10,000 idle classes were ~70 MB of the agent's heap after its first scrape (docs/benchmarks.md,
 * bench:agent burst), and reading them all took ~200 ms.
 */
import type { DelayHistogram } from '../../shaper-bpf/src/datapath.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';

/** What the cache needs of a Datapath. */
export interface HistogramSource {
  /** class id → histogram for the classes listed that have one (an unknown id is left out). */
  delayHistograms(classIds?: readonly number[]): Map<number, DelayHistogram>;
}

interface Entry {
  /** The class's `packets` when its histogram was read. */
  packets: number;
  /** undefined: the class has no histogram (its slot's group has no inner map). */
  hist: DelayHistogram | undefined;
  /** The histogram matched `packets` (or was read twice at the same `packets`): no need to read it again until `packets` moves. */
  settled: boolean;
}

export class DelayHistogramCache {
  private readonly bySource = new WeakMap<HistogramSource, Map<number, Entry>>();
  /** Histograms read from the data plane, and reads asked for (for tests and the bench). */
  readonly counts = { histograms: 0, reads: 0 };

  /**
   * The histogram of every class in `stats` (the caller's fresh class_stats of `source`) that has
   * one and passed a packet, reading only those whose packets moved since their last read. Classes
   * not in `stats`, or back at 0 packets (a slot freed and given again), are forgotten.
   */
  histograms(source: HistogramSource, stats: ReadonlyMap<number, ClassStats>): Map<number, DelayHistogram> {
    let entries = this.bySource.get(source);
    if (!entries) this.bySource.set(source, (entries = new Map()));
    for (const id of entries.keys()) if ((stats.get(id)?.packets ?? 0) === 0) entries.delete(id);
    const stale: number[] = [];
    for (const [id, s] of stats) {
      if (s.packets === 0) continue; // nothing passed: an empty histogram, not worth a read or a copy
      const e = entries.get(id);
      if (!e || !e.settled || e.packets !== s.packets) stale.push(id);
    }
    if (stale.length > 0) {
      const read = source.delayHistograms(stale);
      this.counts.reads++;
      for (const id of stale) {
        const packets = stats.get(id)!.packets;
        const hist = read.get(id);
        const before = entries.get(id);
        const again = before !== undefined && before.packets === packets;
        entries.set(id, { packets, hist, settled: hist === undefined || hist.total === packets || again });
        if (hist) this.counts.histograms++;
      }
    }
    const out = new Map<number, DelayHistogram>();
    for (const [id, e] of entries) if (e.hist) out.set(id, e.hist);
    return out;
  }
}

/**
 * What a class's histogram gained from `before` to `now`: per bucket, the difference of the
 * cumulative counts. A bucket that went down means the histogram was zeroed meanwhile (the class's
 * slot freed and given again): then everything in `now` is new.
 */
export function histogramIncrease(now: DelayHistogram, before: DelayHistogram | undefined): DelayHistogram {
  if (before === undefined || now.buckets.some((b, i) => b.count < (before.buckets[i]?.count ?? 0))) return now;
  const buckets = now.buckets.map((b, i) => ({ ...b, count: b.count - before.buckets[i]!.count }));
  return { buckets, total: now.total - before.total };
}
