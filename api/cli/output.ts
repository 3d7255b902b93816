/**
 * What the CLI prints: kubectl-like borderless tables, key/value views, JSON, and errors.
 * Errors go to stderr as one line per fact, never as a stack trace, with exit code 1.
 *
 * Text from the API (descriptions, labels, what agents report, problem details) never reaches
 * the terminal raw: every control character (C0, DEL, C1) is printed as \xHH, so an ESC, a CR
 * or a NUL in stored data cannot rewrite or hide what the operator reads. The API refuses them
 * in new input; older data or another server may still hold them.
 */
import Table from 'cli-table3';
import { InvalidArgumentError } from 'commander';
import { escapeControl } from '../contract/control-chars.js';
import { ApiProblemError, CliError } from './client.js';

const NO_BORDER = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '',
};

/** Shown for an absent value, as kubectl does. */
export const NONE = '<none>';

type Cell = string | number | boolean | null | undefined;

function render(head: string[] | undefined, rows: Cell[][], paddingRight: number): string {
  const table = new Table({
    ...(head ? { head } : {}),
    chars: NO_BORDER,
    style: { 'padding-left': 0, 'padding-right': paddingRight, head: [], border: [], compact: true },
  });
  for (const row of rows) table.push(row.map((c) => (c === null || c === undefined ? NONE : escapeControl(String(c)))));
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n');
}

/** A table with upper-case column names and three spaces between columns. */
export function table(head: string[], rows: Cell[][]): string {
  return render(head, rows, 3);
}

/** "Key:  value" lines, aligned, for a single object. */
export function keyValues(pairs: Array<[string, Cell]>): string {
  return render(undefined, pairs.map(([k, v]) => [`${k}:`, v]), 2);
}

/** Lines for a terminal: each control character escaped, except the newlines between lines. */
export function terminalText(text: string): string {
  return text.split('\n').map(escapeControl).join('\n');
}

export function out(text: string): void {
  const safe = terminalText(text);
  process.stdout.write(safe.endsWith('\n') ? safe : `${safe}\n`);
}

/** JSON.stringify escapes C0 but not DEL and C1; those become \u escapes, so the output stays JSON. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

/** "k=v,k2=v2", or `empty` when there is nothing. */
export function labelsText(labels: Record<string, string> | undefined | null, empty = NONE): string {
  const entries = Object.entries(labels ?? {});
  return entries.length === 0 ? empty : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

/** Age of an ISO time, as kubectl shows it: 45s, 3m, 5h, 2d. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return NONE;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/**
 * A duration in ns for a person: 3 significant digits in the largest unit that keeps the number at
 * least 1, trailing zeros dropped: 37931168 → "37.9ms", 412000 → "412µs", 1200000000 → "1.2s",
 * 2000000 → "2ms". `up` rounds up instead of to the nearest (a bound must not print below itself).
 * Not for input or JSON: contract/units.ts formatDuration gives the exact tc string
 * ("37931168ns"), and --json prints integer ns.
 */
export function humanDuration(ns: number, rounding: 'nearest' | 'up' = 'nearest'): string {
  if (ns < 0) return `-${humanDuration(-ns, rounding)}`;
  if (ns === 0) return '0s';
  // Rounded before the unit is chosen, so 999.7 µs prints as "1ms", never as "1000µs".
  const step = 10 ** (Math.floor(Math.log10(ns)) - 2);
  const rounded = (rounding === 'up' ? Math.ceil(ns / step - 1e-9) : Math.round(ns / step)) * step;
  const [unit, scale] = rounded < 1e3 ? ['ns', 1] : rounded < 1e6 ? ['µs', 1e3] : rounded < 1e9 ? ['ms', 1e6] : ['s', 1e9];
  return `${Number((rounded / (scale as number)).toPrecision(3))}${unit}`;
}

/** Prints an error the way a user can act on it. */
export function printError(err: unknown): void {
  const lines: string[] = [];
  if (err instanceof ApiProblemError) {
    const p = err.problem;
    const errors = p.errors ?? [];
    let detail = p.detail ?? p.title;
    // A 400's detail repeats every field error after a colon; they follow one per line anyway.
    const repeated = errors.map((e) => `${e.path || '(root)'}: ${e.message}`).join('; ');
    if (errors.length > 0 && detail.endsWith(`: ${repeated}`)) detail = detail.slice(0, -(repeated.length + 2));
    lines.push(`pacer: ${detail} (HTTP ${err.status}${p.detail && p.title ? ` ${p.title}` : ''})`);
    for (const e of errors) lines.push(`  ${e.path || '(root)'}: ${e.message}`);
    if (p.conflicts?.length) lines.push(`  conflicts with: ${p.conflicts.join(', ')}`);
    if (err.status === 401) lines.push('  check PACER_TOKEN or --token-file');
  } else if (err instanceof CliError || err instanceof InvalidArgumentError) {
    lines.push(...err.message.split('\n').map((l, i) => (i === 0 ? `pacer: ${l}` : `  ${l}`)));
  } else {
    // Not one of ours: still no stack trace, but say it is unexpected.
    lines.push(`pacer: unexpected error: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.stderr.write(lines.map(escapeControl).join('\n') + '\n');
}

/**
 * Wraps a commander action: any error is printed by printError and the exit code becomes 1.
 * The process then ends on its own, so buffered stdout is never cut short.
 */
export function run<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      printError(err);
      process.exitCode = 1;
    }
  };
}
