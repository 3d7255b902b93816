/**
 * The demo's live table: one frame per second, redrawn in place on a terminal. The mode is said
 * at the top in plain words, policing above all: a table of rates that looks like shaping while
 * nothing is paced is the worst thing pacer could show.
 */
import Table from 'cli-table3';
import { formatRate } from '../api/contract/units.js';
import { humanDuration } from '../api/cli/output.js';
import type { ClassSecond, Second } from './readings.js';
import { PIN_BASE } from './lab.js';

export interface FrameContext {
  apiUrl: string;
  token: string;
  /** Seconds the demo runs; undefined: until interrupted. */
  durationS?: number;
  /** The latest budget change, for the line under the table. */
  lastChange?: { atS: number; text: string };
  nextChangeAtS?: number;
  /** Where the processes' logs are. */
  logDir: string;
  /** The agent's state directory (its snapshots name the classes for `pacer dp`). */
  stateDir: string;
}

export const mbit = (bps: number): string => `${(bps / 1e6).toFixed(1)} Mbit/s`;

/** A delay for the table; the histogram's first bucket is "under 1 µs", its last "17 s or more". */
function delay(ns: number | undefined): string {
  if (ns === undefined) return '-';
  if (!Number.isFinite(ns)) return '≥17s';
  return ns <= 1_024 ? '<1µs' : humanDuration(ns, 'up');
}

/** What the mode means for the numbers below it. */
export function modeBanner(mode: string, detail: string | undefined): string {
  if (mode === 'shaping') return 'MODE: shaping — fq holds each packet until its earliest departure time (EDT pacing).';
  if (mode === 'policing') {
    return (
      `MODE: POLICING ONLY (${detail ?? 'fq unavailable'}). This kernel has no fq qdisc, so nothing holds a packet\n` +
      'until its departure time: packets over budget are DROPPED, and local TCP is held to its class rate by\n' +
      'sock_ops pacing. Real EDT shaping needs sch_fq: run `pacer doctor`, or `pacer demo --vm` for Debian\'s kernel.'
    );
  }
  return `MODE: ${mode}${detail ? ` (${detail})` : ''} — the agent is not enforcing as asked; see its log.`;
}

function budget(c: ClassSecond, notes: ReadonlyMap<string, string>): string {
  const parts = [formatRate(c.rateBps)];
  if (c.ceilBps !== null) parts.push(`ceil ${formatRate(c.ceilBps)}`);
  const note = notes.get(c.name);
  if (note) parts.push(note);
  return parts.join(', ');
}

/** The rows in tree order: each parent followed by its children, indented. */
function treeOrder(classes: readonly ClassSecond[]): Array<{ c: ClassSecond; depth: number }> {
  const out: Array<{ c: ClassSecond; depth: number }> = [];
  const visit = (parent: string | null, depth: number) => {
    for (const c of classes.filter((x) => x.parent === parent)) {
      out.push({ c, depth });
      visit(c.name, depth + 1);
    }
  };
  visit(null, 0);
  // Classes whose parent is not in the list (should not happen) still show.
  for (const c of classes) if (!out.some((o) => o.c === c)) out.push({ c, depth: 0 });
  return out;
}

export function renderFrame(s: Second, ctx: FrameContext, notes: ReadonlyMap<string, string>): string {
  const table = new Table({
    head: ['class', 'budget', 'effective', 'achieved', 'mean delay', 'p99 delay', 'drops/s'],
    colAligns: ['left', 'left', 'right', 'right', 'right', 'right', 'right'],
    style: { head: [], border: [] },
  });
  for (const { c, depth } of treeOrder(s.classes)) {
    table.push([
      `${'  '.repeat(depth)}${c.name}`,
      budget(c, notes),
      c.effectiveBps === undefined ? 'not applied' : mbit(c.effectiveBps),
      mbit(c.achievedBps),
      delay(c.meanDelayNs),
      delay(c.p99DelayNs),
      String(c.drops),
    ]);
  }
  const clock = ctx.durationS === undefined ? `${s.t} s (Ctrl-C stops and cleans up)` : `${s.t} / ${ctx.durationS} s`;
  const lines = [
    `pacer demo — ${clock}`,
    modeBanner(s.mode, s.modeDetail),
    '',
    table.toString(),
    'effective: the rate the kernel enforces now (a child borrows its parent\'s unused rate up to its ceil); achieved: wire rate the receiver acknowledged',
  ];
  if (ctx.lastChange) lines.push(`changed through the API at ${ctx.lastChange.atS} s: ${ctx.lastChange.text}`);
  if (ctx.nextChangeAtS !== undefined) lines.push(`next budget change at ${ctx.nextChangeAtS} s`);
  for (const e of s.classErrors) lines.push(`class ${e.class}: ${e.error}`);
  lines.push(
    '',
    `API ${ctx.apiUrl} · admin token: export PACER_API=${ctx.apiUrl} PACER_TOKEN=${ctx.token}`,
    'try, in another shell: pacer class set web --rate 15mbit · pacer class ls · pacer host get demo-sender',
    `  and what the kernel holds: pacer dp classes --pin-base ${PIN_BASE} --state-dir ${ctx.stateDir}`,
    `web console: not built yet · logs: ${ctx.logDir}`,
  );
  return lines.join('\n') + '\n';
}
