/**
 * The Prometheus text format (0.0.4) for the agent's per-class families, written here rather than
 * by prom-client's registry: the registry formats every sample from a label object (entries,
 * escaping, joins), which at 10,000 classes (70,000 samples, 5.6 MB) took ~300 ms of a scrape and
 * most of its garbage (docs/benchmarks.md, bench:agent burst). Here a class's label text is made
 * once and kept while its name stays, and a family's text is kept while none of its samples
 * changed (at rest, and for the families an idle class never moves: drops, marks, rates), so a
 * scrape makes again only the families whose counters moved. Escaping and values follow
 * prom-client's (registry.js, util.js), so the text is what it was.
 */

/** HELP text: backslash and newline escaped. */
export function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A label value: backslash, newline and double quote escaped. */
export function escapeLabelValue(s: string): string {
  return escapeHelp(s).replace(/"/g, '\\"');
}

/** `a="x",b="y"`, in the order given. */
export function labelText(labels: Readonly<Record<string, string>>): string {
  let out = '';
  for (const k of Object.keys(labels)) out += `${out === '' ? '' : ','}${k}="${escapeLabelValue(labels[k]!)}"`;
  return out;
}

/** A sample's value: integers and decimals as JavaScript writes them, infinities as +Inf and -Inf. */
export function valueText(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
}

/** A family's text: HELP and TYPE lines, then its sample lines (each already `name{labels} value`), with a newline after each. */
export function familyText(f: Family, lines: readonly string[]): string {
  const head = `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
  return lines.length === 0 ? head : `${head}${lines.join('\n')}\n`;
}

/**
 * One family's text, kept between scrapes: made again only when its samples differ from the last
 * ones (a label text that is not the same string, or a value that moved). Callers pass label texts
 * they keep, so comparing them is comparing references.
 */
export class CachedFamily {
  private labels: readonly string[] = [];
  private values: readonly number[] = [];
  private text?: string;

  constructor(readonly family: Family) {}

  /** The text of samples `name{labels[i]} values[i]`. */
  samples(labels: readonly string[], values: readonly number[]): string {
    if (this.text === undefined || !same(this.labels, labels) || !same(this.values, values)) {
      const name = this.family.name;
      this.text = familyText(this.family, labels.map((l, i) => `${name}{${l}} ${valueText(values[i]!)}`));
      this.labels = labels;
      this.values = values;
    }
    return this.text;
  }

  /** The text of lines made (and kept) by the caller, one or more samples each. */
  lines(lines: readonly string[]): string {
    if (this.text === undefined || !same(this.labels, lines)) {
      this.text = familyText(this.family, lines);
      this.labels = lines;
      this.values = [];
    }
    return this.text;
  }
}

function same<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
