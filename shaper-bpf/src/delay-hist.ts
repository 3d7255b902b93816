/**
 * The per-class queueing-delay histogram's bucket rule, the same as shaper-bpf/bpf/delay_hist.h
 * (a kernel test runs both on random delays and requires the same bucket), and what readers do
 * with the counts: bucket bounds and quantiles. Pure; no kernel needed.
 *
 * Buckets (98): 0 holds delays under 2^10 ns (1.024 µs), including every packet not delayed;
 * then four per power of two from 2^10 to 2^34 ns, with lower bounds T_k · 2^(e-8),
 * T = 256, 305, 363, 431 (⌈256 · 2^(k/4)⌉): each at most 19.1% wide; the last holds delays of
 * 2^34 ns (17.2 s) and more.
 */

export const HIST_MIN_SHIFT = 10;
export const HIST_MAX_SHIFT = 34;
export const HIST_SUBBUCKETS = 4;
export const HIST_BUCKETS = 2 + (HIST_MAX_SHIFT - HIST_MIN_SHIFT) * HIST_SUBBUCKETS;
/** ⌈256 · 2^(k/4)⌉ for k = 0..3, and 512: the sub-bucket bounds of the top 9 bits. */
const SUB_BOUNDS = [256, 305, 363, 431, 512] as const;

/** One bucket: delays in [lowerNs, upperNs). upperNs is Infinity for the overflow bucket. */
export interface DelayBucket {
  lowerNs: number;
  upperNs: number;
  count: number;
}

/** A class's histogram as read from the data plane. */
export interface DelayHistogram {
  /** All HIST_BUCKETS buckets in order, empty ones included. */
  buckets: DelayBucket[];
  /** Sum of the counts: the class's passed packets since its histogram was created. */
  total: number;
}

/** Lower bound (ns) of bucket `b`; bucket 0 starts at 0. */
export function bucketLowerNs(b: number): number {
  if (!Number.isInteger(b) || b < 0 || b >= HIST_BUCKETS) throw new RangeError(`bucket ${b} is outside 0..${HIST_BUCKETS - 1}`);
  if (b === 0) return 0;
  if (b === HIST_BUCKETS - 1) return 2 ** HIST_MAX_SHIFT;
  const e = HIST_MIN_SHIFT + Math.floor((b - 1) / HIST_SUBBUCKETS);
  return SUB_BOUNDS[(b - 1) % HIST_SUBBUCKETS]! * 2 ** (e - 8);
}

/** Upper bound (ns, exclusive) of bucket `b`: the next bucket's lower bound; Infinity for the last. */
export function bucketUpperNs(b: number): number {
  return b === HIST_BUCKETS - 1 ? Infinity : bucketLowerNs(b + 1);
}

/** The bucket the program counts a delay of `delayNs` in (an integer ≥ 0). */
export function bucketOf(delayNs: number): number {
  if (!Number.isSafeInteger(delayNs) || delayNs < 0) throw new RangeError(`a delay is a non-negative integer of ns, got ${delayNs}`);
  if (delayNs < 2 ** HIST_MIN_SHIFT) return 0;
  if (delayNs >= 2 ** HIST_MAX_SHIFT) return HIST_BUCKETS - 1;
  const e = Math.floor(Math.log2(delayNs));
  // Math.log2 may round up just below a power of two; the integer check settles it.
  const exp = 2 ** e > delayNs ? e - 1 : e;
  const top = Math.floor(delayNs / 2 ** (exp - 8));
  const sub = (top >= 305 ? 1 : 0) + (top >= 363 ? 1 : 0) + (top >= 431 ? 1 : 0);
  return 1 + (exp - HIST_MIN_SHIFT) * HIST_SUBBUCKETS + sub;
}

/** A histogram from the counts of the kernel's struct pacer_delay_hist. */
export function histogramOf(counts: ReadonlyArray<number>): DelayHistogram {
  if (counts.length !== HIST_BUCKETS) throw new RangeError(`a delay histogram has ${HIST_BUCKETS} counts, got ${counts.length}`);
  const buckets = counts.map((count, b) => ({ lowerNs: bucketLowerNs(b), upperNs: bucketUpperNs(b), count }));
  return { buckets, total: counts.reduce((a, c) => a + c, 0) };
}

/**
 * The q-quantile (0 < q ≤ 1) of the delays, as the UPPER bound of the bucket that holds it (ns):
 * the true value is below it and at least the bucket's lower bound, so within 19.1% of it (above
 * 1 µs). A quantile in the first bucket is reported as 1024 ns ("under 1 µs", which includes not
 * delayed); one in the overflow bucket as Infinity (17.2 s or more). undefined when the
 * histogram is empty. The rank is ⌈q · total⌉ (the smallest delay with at least q of the packets
 * at or below it), as HdrHistogram counts.
 */
export function delayQuantile(hist: DelayHistogram, q: number): number | undefined {
  if (!(q > 0 && q <= 1)) throw new RangeError(`a quantile is in (0, 1], got ${q}`);
  if (hist.total === 0) return undefined;
  const rank = Math.ceil(q * hist.total);
  let seen = 0;
  for (const b of hist.buckets) {
    seen += b.count;
    if (seen >= rank) return b.upperNs;
  }
  return hist.buckets[hist.buckets.length - 1]!.upperNs; // counts changed under us: the top
}
