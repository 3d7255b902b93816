/**
 * The random processes workloads draw from, on the scenario's seeded RNG (sim/engine/rng.ts), in
 * integer nanoseconds: open-loop Poisson arrivals and on/off period lengths.
 */
import type { Rng } from '../engine/rng.js';

/**
 * An exponential draw with the given mean, rounded to whole ns and at least 1 (two events at
 * the same instant would be one). −ln(1 − u) with u ∈ [0, 1) never takes the log of 0.
 */
export function exponentialNs(rng: Rng, meanNs: number): number {
  return Math.max(1, Math.round(-Math.log(1 - rng.next()) * meanNs));
}

/**
 * Gaps of a Poisson process: exponential inter-arrival times with mean 1/λ (so the coefficient
 * of variation of the gaps is 1, and arrivals in disjoint intervals are independent).
 */
export class PoissonArrivals {
  readonly meanGapNs: number;
  constructor(private readonly rng: Rng, arrivalsPerSecond: number) {
    if (!(arrivalsPerSecond > 0) || !Number.isFinite(arrivalsPerSecond)) throw new RangeError(`arrivals per second must be positive, got ${arrivalsPerSecond}`);
    this.meanGapNs = 1e9 / arrivalsPerSecond;
  }

  nextGapNs(): number {
    return exponentialNs(this.rng, this.meanGapNs);
  }
}

export type PeriodKind = 'exponential' | 'fixed';

/** Lengths of on (or off) periods: fixed, or exponential with that mean (ns-2's Exponential On/Off). */
export function periodNs(rng: Rng, kind: PeriodKind, meanNs: number): number {
  if (meanNs === 0) return 0;
  return kind === 'fixed' ? meanNs : exponentialNs(rng, meanNs);
}

/**
 * An RNG stream per workload (and per flow within it), so that adding a workload to a scenario
 * does not change what the others draw. splitmix-style mixing of the seed and the stream number.
 */
export function streamSeed(seed: number, ...stream: number[]): number {
  let h = seed >>> 0;
  for (const s of stream) {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ Math.imul((s + 1) >>> 0, 0x9e3779b9);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}
