/**
 * `pacer sim compare A.yaml B.yaml`: two plans side by side. Both are run with the same seed (each
 * scenario's own unless --seed), so a difference comes from the plans, not from the dice. The
 * comparison holds both results whole (for the report's charts) and the rows a planner reads:
 * the key metrics of each (sweep.ts's metricsOf, so compare and sweep agree), and each class's
 * budget × hosts, throughput and goodput in A and in B.
 */
import type { SimResult } from './run.js';
import { metricsOf, type PointMetrics } from './sweep.js';

export interface Comparison {
  /** "A (name)", "B (name)": the labels of the two plans everywhere in the report. */
  labels: [string, string];
  files: [string, string];
  results: [SimResult, SimResult];
  metrics: [PointMetrics, PointMetrics];
  /** Every class of either plan, in A's order then B's new ones; null where a plan lacks it. */
  classes: Array<{ name: string; a: SimResult['classes'][number] | null; b: SimResult['classes'][number] | null }>;
}

export function compare(files: [string, string], results: [SimResult, SimResult]): Comparison {
  const [a, b] = results;
  const names = [...new Set([...a.classes.map((c) => c.name), ...b.classes.map((c) => c.name)])];
  return {
    labels: [`A (${a.scenario})`, `B (${b.scenario})`],
    files,
    results,
    metrics: [metricsOf(a), metricsOf(b)],
    classes: names.map((name) => ({ name, a: a.classes.find((c) => c.name === name) ?? null, b: b.classes.find((c) => c.name === name) ?? null })),
  };
}

/** The metrics compared, with how to show them; `ratio` is B / A where both are numbers above 0. */
export const COMPARED_METRICS: ReadonlyArray<{ key: keyof PointMetrics; label: string; unit: 'bps' | 'ns' | 'count' | 'x' }> = [
  { key: 'goodputBps', label: 'goodput (all workloads)', unit: 'bps' },
  { key: 'incastGoodputOverRoundsBps', label: 'incast goodput over the rounds (round-time-weighted)', unit: 'bps' },
  { key: 'fctP50Ns', label: 'FCT p50', unit: 'ns' },
  { key: 'fctP99Ns', label: 'FCT p99', unit: 'ns' },
  { key: 'slowdownP99', label: 'slowdown p99', unit: 'x' },
  { key: 'drops', label: 'drops', unit: 'count' },
  { key: 'retransmits', label: 'retransmits', unit: 'count' },
  { key: 'timeouts', label: 'RTO timeouts', unit: 'count' },
  { key: 'simulatedNs', label: 'simulated time', unit: 'ns' },
];

export function ratio(a: number | boolean | null, b: number | boolean | null): number | null {
  return typeof a === 'number' && typeof b === 'number' && a > 0 ? Math.round((b / a) * 1000) / 1000 : null;
}
