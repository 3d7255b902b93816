/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for tests of /metrics: every
 * sample line must parse and belong to a family declared by a `# TYPE` line before it, and every
 * histogram must be one a Prometheus server accepts and histogram_quantile can use: per label set,
 * `le` bounds strictly increasing and ending in +Inf, cumulative counts never decreasing, the +Inf
 * bucket equal to _count, and a _sum. Throws naming the line or series at fault.
 *
 *   const m = parsePrometheusText(await (await fetch(url)).text());
 *   m.value('pacer_class_packets_total', { iface: 'eth0', class: 'web', class_id: '7' });
 *   m.histogram('pacer_class_delay_seconds', { iface: 'eth0', class: 'web', class_id: '7' }) // { buckets: [{ le, count }], sum, count }
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedHistogram {
  buckets: Array<{ le: number; count: number }>;
  sum: number;
  count: number;
}

export interface ParsedMetrics {
  /** Family name → its type (counter, gauge, histogram, …). */
  types: Map<string, string>;
  samples: Sample[];
  /** The one sample of `name` with exactly these labels; undefined if none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The histogram family `name`'s series with these labels (le excluded); undefined if none. */
  histogram(name: string, labels: Record<string, string>): ParsedHistogram | undefined;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (s.trim() === '' || Number.isNaN(v)) throw new Error(`not a number: "${s}"`);
  return v;
}

function parseLabels(s: string | undefined, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < s.length) {
    const m = LABEL.exec(s);
    if (!m) throw new Error(`bad labels in line: ${line}`);
    if (m[1]! in out) throw new Error(`label ${m[1]} twice in line: ${line}`);
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

/** The family a sample belongs to: histogram samples end in _bucket, _sum or _count. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m && ['histogram', 'summary'].includes(types.get(m[1]!) ?? '')) return m[1]!;
  return undefined;
}

const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());

export function parsePrometheusText(text: string): ParsedMetrics {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (t) {
        if (types.has(t[1]!)) throw new Error(`# TYPE ${t[1]} twice`);
        types.set(t[1]!, t[2]!);
      } else if (!/^# HELP /.test(line)) throw new Error(`unknown comment line: ${line}`);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const name = m[1]!;
    const family = familyOf(name, types);
    if (family === undefined) throw new Error(`sample of no declared family: ${line}`);
    const labels = parseLabels(m[2], line);
    const id = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(id)) throw new Error(`the same series twice: ${line}`);
    seen.add(id);
    const value = parseValue(m[3]!);
    if (types.get(family) === 'counter' && !(value >= 0)) throw new Error(`a counter below 0: ${line}`);
    samples.push({ name, labels, value });
  }

  const histograms = new Map<string, ParsedHistogram>();
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, { buckets: Array<{ le: number; count: number }>; sum?: number; count?: number }>();
    const get = (labels: Record<string, string>) => {
      const k = key(labels);
      if (!series.has(k)) series.set(k, { buckets: [] });
      return series.get(k)!;
    };
    for (const s of samples) {
      if (s.name === `${family}_bucket`) {
        if (s.labels.le === undefined) throw new Error(`${family}_bucket without le: ${JSON.stringify(s.labels)}`);
        get(s.labels).buckets.push({ le: parseValue(s.labels.le), count: s.value });
      } else if (s.name === `${family}_sum`) get(s.labels).sum = s.value;
      else if (s.name === `${family}_count`) get(s.labels).count = s.value;
    }
    for (const [k, h] of series) {
      const where = `${family}${k}`;
      if (h.buckets.length === 0 || h.buckets.at(-1)!.le !== Infinity) throw new Error(`${where}: the last bucket is not le="+Inf"`);
      for (let i = 1; i < h.buckets.length; i++) {
        if (!(h.buckets[i]!.le > h.buckets[i - 1]!.le)) throw new Error(`${where}: le ${h.buckets[i]!.le} after ${h.buckets[i - 1]!.le}`);
        if (h.buckets[i]!.count < h.buckets[i - 1]!.count) throw new Error(`${where}: cumulative count goes down at le ${h.buckets[i]!.le}`);
      }
      if (h.count === undefined || h.sum === undefined) throw new Error(`${where}: no _count or no _sum`);
      if (h.buckets.at(-1)!.count !== h.count) throw new Error(`${where}: +Inf bucket ${h.buckets.at(-1)!.count} != _count ${h.count}`);
      histograms.set(`${family}${k}`, { buckets: h.buckets, sum: h.sum, count: h.count });
    }
  }

  return {
    types,
    samples,
    value(name, labels = {}) {
      return samples.find((s) => s.name === name && key(s.labels) === key(labels) && s.labels.le === labels.le)?.value;
    },
    histogram(name, labels) {
      return histograms.get(`${name}${key(labels)}`);
    },
  };
}
