/**
 * Percentiles over millions of samples in constant memory: a log-linear histogram (HdrHistogram's
 * idea). Values below 64 are exact; above, each power of two is split into 32 buckets, so a
 * reported percentile is within 1/32 (about 3%) of the true sample, rounded down. Integer-only
 * bucketing keeps results identical on every machine.
 */
const SUB = 32;
const EXACT = 2 * SUB;

export interface Percentiles {
  count: number;
  p50Ns: number;
  p99Ns: number;
  maxNs: number;
  meanNs: number;
}

export class Histogram {
  private counts: number[] = [];
  private n = 0;
  private sum = 0;
  private max = 0;

  add(v: number): void {
    const i = bucketOf(v);
    while (this.counts.length <= i) this.counts.push(0);
    this.counts[i]!++;
    this.n++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  get count(): number {
    return this.n;
  }

  /** Lower bound of the bucket holding the q-quantile sample (nearest-rank). */
  quantile(q: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(lowerBound(i), this.max);
    }
    return this.max;
  }

  summary(): Percentiles {
    return { count: this.n, p50Ns: this.quantile(0.5), p99Ns: this.quantile(0.99), maxNs: this.max, meanNs: this.n === 0 ? 0 : Math.round(this.sum / this.n) };
  }
}

function bucketOf(v: number): number {
  if (v < EXACT) return Math.max(0, Math.floor(v));
  // e with v in [2^e, 2^(e+1)): clz32 for 32-bit values, log2 (corrected to be exact) above.
  let e = v < 2 ** 32 ? 31 - Math.clz32(v) : Math.floor(Math.log2(v));
  while (2 ** e > v) e--;
  while (2 ** (e + 1) <= v) e++;
  const width = 2 ** (e - 5);
  return EXACT + (e - 6) * SUB + Math.floor((v - 2 ** e) / width);
}

function lowerBound(i: number): number {
  if (i < EXACT) return i;
  const e = 6 + Math.floor((i - EXACT) / SUB);
  return 2 ** e + ((i - EXACT) % SUB) * 2 ** (e - 5);
}

/** Nearest-rank percentile of a small exact list (FCTs, round times). */
export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** FCT and slowdown of a set of completed transfers (exact: the lists are kept). */
export interface ExactSummary {
  count: number;
  fctMeanNs: number;
  fctP50Ns: number;
  fctP99Ns: number;
  fctMaxNs: number;
  /** FCT / ideal FCT (≥ 1), rounded to 3 decimals; the mean is what pFabric plots as "normalized FCT". */
  slowdownMean: number;
  slowdownMin: number;
  slowdownP50: number;
  slowdownP99: number;
  slowdownMax: number;
}

export function summarizeExact(fcts: readonly number[], slowdowns: readonly number[]): ExactSummary {
  const n = fcts.length;
  const mean = (xs: readonly number[]) => (n === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / n);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    count: n,
    fctMeanNs: Math.round(mean(fcts)),
    fctP50Ns: percentile(fcts, 0.5),
    fctP99Ns: percentile(fcts, 0.99),
    fctMaxNs: fcts.reduce((a, b) => Math.max(a, b), 0),
    slowdownMean: r3(mean(slowdowns)),
    // Floored to 3 decimals, so a slowdown just above 1 never shows as below it.
    slowdownMin: n === 0 ? 0 : Math.floor(slowdowns.reduce((a, b) => Math.min(a, b), Infinity) * 1000) / 1000,
    slowdownP50: r3(percentile(slowdowns, 0.5)),
    slowdownP99: r3(percentile(slowdowns, 0.99)),
    slowdownMax: r3(n === 0 ? 0 : slowdowns.reduce((a, b) => Math.max(a, b), 0)),
  };
}

/**
 * A time series of a cumulative counter (bytes delivered, drops, ∫queue dt): the value is
 * recorded at each bin boundary, and a bin's figure is the increase over it. The last bin may
 * be partial: its end value is read when the series is taken.
 */
export class CumulativeSeries {
  private readonly marks: number[] = [];
  constructor(private readonly read: () => number) {}

  /** Called at the end of each bin, in order. */
  mark(): void {
    this.marks.push(this.read());
  }

  /** The increase in each of the first nBins bins. */
  increments(nBins: number): number[] {
    const out: number[] = [];
    let prev = 0;
    for (let b = 0; b < nBins; b++) {
      const v = b < this.marks.length ? this.marks[b]! : this.read();
      out.push(v - prev);
      prev = v;
    }
    return out;
  }
}
