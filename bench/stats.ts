/** Small helpers of `npm run bench:api`: a clock and order statistics. */

/** process.hrtime (CLOCK_MONOTONIC) in milliseconds with microsecond resolution; shared by all threads. */
export const nowMs = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export function round(n: number, digits = 1): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
