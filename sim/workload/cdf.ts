/**
 * Message-size distributions from CDF files, the form pFabric, PIAS and HOMA publish their
 * workloads in. A file is a list of points of a piecewise-linear CDF:
 *
 *   # comment (a '#' anywhere starts one; blank lines are ignored)
 *   <size in bytes> <cumulative probability>
 *
 * Sizes are whole bytes ≥ 1, non-decreasing; probabilities are decimals in [0, 1],
 * non-decreasing, the last exactly 1. Between two points the CDF is linear (sizes are uniform
 * in between); a first probability above 0, or a size repeated with a higher probability, is a
 * point mass at that size (pFabric's web-search file puts 15% at 6 packets that way).
 *
 * Sampling is the inverse transform of that CDF (ns-2's EmpiricalRandomVariable with
 * interpolation, which the pFabric and PIAS simulations use), rounded to whole bytes, from the
 * scenario's seeded RNG: the same seed draws the same sizes.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export class CdfError extends Error {
  constructor(readonly file: string, readonly line: number, readonly problem: string) {
    super(line > 0 ? `${file}:${line}: ${problem}` : `${file}: ${problem}`);
    this.name = 'CdfError';
  }
}

export interface SizeCdf {
  /** What the scenario named: a built-in name or the file path as written. */
  name: string;
  file: string;
  sizes: readonly number[];
  probs: readonly number[];
  /** Mean of the piecewise-linear distribution, bytes (before rounding to whole bytes). */
  meanBytes: number;
}

/** The directory of the shipped distributions (sources, not dist/: tsc does not copy data). */
export const BUILTIN_CDF_DIR = fileURLToPath(new URL('../../../sim/workload/cdf/', import.meta.url));

/** Names of the shipped distributions: the .cdf files in BUILTIN_CDF_DIR. */
export function builtinCdfs(): string[] {
  return existsSync(BUILTIN_CDF_DIR) ? readdirSync(BUILTIN_CDF_DIR).filter((f) => f.endsWith('.cdf')).map((f) => f.slice(0, -4)).sort() : [];
}

const DECIMAL = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function parseCdf(text: string, file: string, name = file): SizeCdf {
  const sizes: number[] = [];
  const probs: number[] = [];
  const lines = text.split(/\r?\n/);
  let last = 0;
  lines.forEach((raw, i) => {
    const line = i + 1;
    const body = raw.replace(/#.*/, '').trim();
    if (body === '') return;
    const fields = body.split(/\s+/);
    if (fields.length !== 2) throw new CdfError(file, line, `expected "<size in bytes> <cumulative probability>", got ${fields.length} field${fields.length === 1 ? '' : 's'}: "${body}"`);
    const [s, p] = fields as [string, string];
    if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)) || Number(s) < 1) throw new CdfError(file, line, `size "${s}" is not a whole number of bytes ≥ 1 (no units: 10000, not 10kb)`);
    if (!DECIMAL.test(p)) throw new CdfError(file, line, `probability "${p}" is not a decimal number`);
    const size = Number(s);
    const prob = Number(p);
    if (prob > 1) throw new CdfError(file, line, `probability ${p} is above 1${prob <= 100 ? ' (a percentage? write it as a fraction: 0.15, not 15)' : ''}`);
    if (sizes.length > 0 && size < sizes[sizes.length - 1]!) throw new CdfError(file, line, `sizes must not decrease: ${size} after ${sizes[sizes.length - 1]}`);
    if (probs.length > 0 && prob < probs[probs.length - 1]!) throw new CdfError(file, line, `probabilities must not decrease: ${p} after ${probs[probs.length - 1]}`);
    sizes.push(size);
    probs.push(prob);
    last = line;
  });
  if (sizes.length === 0) throw new CdfError(file, 0, 'no points: a CDF file needs lines of "<size in bytes> <cumulative probability>"');
  if (probs[probs.length - 1] !== 1) throw new CdfError(file, last, `the last probability must be 1, got ${probs[probs.length - 1]}`);
  let mean = sizes[0]! * probs[0]!;
  for (let i = 1; i < sizes.length; i++) mean += ((probs[i]! - probs[i - 1]!) * (sizes[i - 1]! + sizes[i]!)) / 2;
  return { name, file, sizes, probs, meanBytes: mean };
}

/**
 * A built-in name ("web-search", "data-mining") or a file: a reference with a "/" or ending in
 * ".cdf" is a path, relative to `baseDir` (the scenario file's directory). Throws CdfError.
 */
export function loadCdf(ref: string, baseDir: string): SizeCdf {
  const isPath = ref.includes('/') || ref.endsWith('.cdf');
  if (!isPath) {
    const file = join(BUILTIN_CDF_DIR, `${ref}.cdf`);
    if (!existsSync(file)) throw new CdfError(ref, 0, `no built-in size distribution "${ref}" (built-in: ${builtinCdfs().join(', ') || 'none'}); a file path needs a "/" or the .cdf extension`);
    return parseCdf(readFileSync(file, 'utf8'), file, ref);
  }
  const file = isAbsolute(ref) ? ref : resolve(baseDir, ref);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CdfError(file, 0, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseCdf(text, file, ref);
}

/** The directory a scenario's relative CDF paths are resolved against. */
export function scenarioDir(file: string): string {
  return dirname(resolve(file));
}

/** Inverse transform of u ∈ [0, 1): the size, in whole bytes (≥ 1). */
export function sampleSize(cdf: SizeCdf, u: number): number {
  const { sizes, probs } = cdf;
  // First point whose probability reaches u (binary search: files have tens of points, but
  // users may pass thousands).
  let lo = 0;
  let hi = probs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (probs[mid]! >= u) hi = mid;
    else lo = mid + 1;
  }
  if (lo === 0) return Math.max(1, sizes[0]!);
  const p0 = probs[lo - 1]!;
  const p1 = probs[lo]!;
  const s0 = sizes[lo - 1]!;
  const x = p1 === p0 ? sizes[lo]! : s0 + ((u - p0) / (p1 - p0)) * (sizes[lo]! - s0);
  return Math.max(1, Math.round(x));
}

/** The CDF itself at x: P(size ≤ x), for goodness-of-fit checks. */
export function cdfAt(cdf: SizeCdf, x: number): number {
  const { sizes, probs } = cdf;
  if (x < sizes[0]!) return 0;
  let p = probs[0]!;
  for (let i = 1; i < sizes.length; i++) {
    if (x >= sizes[i]!) p = probs[i]!;
    else {
      const s0 = sizes[i - 1]!;
      return s0 === sizes[i]! ? p : probs[i - 1]! + ((x - s0) / (sizes[i]! - s0)) * (probs[i]! - probs[i - 1]!);
    }
  }
  return p;
}
