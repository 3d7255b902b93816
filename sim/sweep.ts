/**
 * `pacer sim sweep`: one scenario, a grid of variations (the cartesian product of the --vary
 * axes), each point validated with the scenario schema and run on a worker thread.
 *
 * Paths. A --vary path addresses a field of the scenario *file* (before validation), as keys and
 * list indexes joined by dots: `tcp.rtoMin`, `topology.switch.buffer`, `workloads.0.incast.rounds`,
 * `topology.hosts.client.link.delay`. Shorthands, expanded before anything else:
 *   incast.X  → workloads.<i>.incast.X, i = the first incast workload
 *   bulk.X    → workloads.<i>.bulk.X,   i = the first bulk workload
 *   switch.X  → topology.switch.X
 * Missing maps on the way are created (so `tcp.rtoMin` works without a `tcp:` block); the schema
 * then refuses a key that does not exist, naming the axis.
 *
 * Values are comma-separated and read as YAML scalars: `200ms` stays a string, `8` is a number,
 * `false` a boolean — the same as if they had been typed into the file.
 *
 * `incast.servers=N` (any path ending in `incast.servers` given an integer) is special: an
 * incast's `servers` is a list of host names, so an integer N means "N servers" and sets the
 * `count` of the one host group the list names (`servers: [server]`, `server: { count: 8 }` →
 * count N). Any other form of the list is refused with the axis named.
 *
 * Determinism: every point runs with the same seed (the scenario's, or --seed) in its own
 * Simulation; results carry no wall-clock figure, and points are stored in grid order, so
 * sweep.json is byte-identical for any number of workers.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Document, isMap, isScalar, isSeq, parse as parseYaml, parseDocument, type Node } from 'yaml';
import { ScenarioError, loadScenario } from './scenario/load.js';
import type { SimResult } from './run.js';

export interface Axis {
  /** As the user wrote it (e.g. `incast.servers`): the name shown in tables, errors and plots. */
  name: string;
  /** The expanded path into the scenario document. */
  path: Array<string | number>;
  /** The values as written, and as YAML reads them. */
  raw: string[];
  values: unknown[];
}

export class SweepError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SweepError';
  }
}

/** Parses `path=v1,v2,…` (the --vary argument) against the scenario text (for the shorthands). */
export function parseAxis(arg: string, scenarioText: string): Axis {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new SweepError(`--vary ${arg}: expected PATH=VALUE[,VALUE…], e.g. tcp.rtoMin=200ms,1ms`);
  const name = arg.slice(0, eq).trim();
  const raw = arg.slice(eq + 1).split(',').map((v) => v.trim());
  if (raw.some((v) => v === '')) throw new SweepError(`--vary ${name}: an empty value in ${JSON.stringify(arg.slice(eq + 1))}`);
  if (new Set(raw).size !== raw.length) throw new SweepError(`--vary ${name}: a value is given twice`);
  const segs = name.split('.');
  if (segs.some((s) => s === '')) throw new SweepError(`--vary ${name}: a path is keys joined by dots, e.g. tcp.rtoMin or workloads.0.incast.servers`);
  const path = expand(name, segs, parseYaml(scenarioText) as unknown);
  const values = raw.map((v) => {
    try {
      return parseYaml(v) as unknown;
    } catch {
      return v;
    }
  });
  return { name, path, raw, values };
}

function expand(name: string, segs: string[], doc: unknown): Array<string | number> {
  const head = segs[0]!;
  const rest = segs.slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  if (head === 'switch') return ['topology', 'switch', ...rest];
  if (head === 'incast' || head === 'bulk' || head === 'rpc' || head === 'onoff') {
    const list = (doc as { workloads?: unknown } | null)?.workloads;
    const i = Array.isArray(list) ? list.findIndex((w) => w !== null && typeof w === 'object' && head in w) : -1;
    if (i < 0) throw new SweepError(`--vary ${name}: the shorthand ${head}.… names the first ${head} workload, and the scenario has none`);
    return ['workloads', i, head, ...rest];
  }
  return segs.map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** The grid in row-major order: the last axis varies fastest. */
export function grid(axes: Axis[]): number[][] {
  let points: number[][] = [[]];
  for (const a of axes) points = points.flatMap((p) => a.values.map((_, i) => [...p, i]));
  return points;
}

/** The scenario text for one point: the document with each axis's value set. */
export function pointText(scenarioText: string, axes: Axis[], choice: number[]): string {
  const doc = parseDocument(scenarioText);
  axes.forEach((a, k) => set(doc, a, a.values[choice[k]!], a.raw[choice[k]!]!));
  return doc.toString();
}

function set(doc: Document, a: Axis, value: unknown, raw: string): void {
  const last = a.path[a.path.length - 1];
  const parent = a.path[a.path.length - 2];
  if (last === 'servers' && parent === 'incast' && typeof value === 'number') {
    const servers = doc.getIn(a.path, true) as Node | undefined;
    const names = isSeq(servers) ? servers.items.map((n) => (isScalar(n) ? String(n.value) : '')) : [];
    const group = names.length === 1 ? doc.getIn(['topology', 'hosts', names[0]!], true) : undefined;
    if (!isMap(group) || !Number.isInteger(value) || value < 1) {
      throw new SweepError(
        `--vary ${a.name}=${raw}: a number of servers needs the incast's servers list to name one host group (servers: [server] with server: { count: 8 }) and a whole number ≥ 1`,
      );
    }
    doc.setIn(['topology', 'hosts', names[0]!, 'count'], value);
    return;
  }
  // setIn creates missing maps (a numeric segment on a missing node would create a map: refuse).
  for (let i = 1; i < a.path.length; i++) {
    const seg = a.path[i];
    if (typeof seg === 'number' && !isSeq(doc.getIn(a.path.slice(0, i), true))) {
      throw new SweepError(`--vary ${a.name}: ${a.path.slice(0, i).join('.')} is not a list in the scenario`);
    }
  }
  if (typeof a.path[0] === 'number') throw new SweepError(`--vary ${a.name}: the top level of a scenario is not a list`);
  doc.setIn(a.path, value);
}

export interface SweepPoint {
  /** Grid index (row-major, the last axis fastest). */
  index: number;
  /** Axis name → the value as written on the command line. */
  params: Record<string, string>;
}

/**
 * Builds and validates every point before anything runs. A bad value is reported with its axis
 * and value, then the scenario's own message (path and problem; the line:col would point into
 * the generated text, so it is left out).
 */
export function planSweep(scenarioText: string, file: string, varies: string[]): { axes: Axis[]; points: Array<SweepPoint & { text: string }> } {
  if (varies.length === 0) throw new SweepError('give at least one --vary PATH=VALUE[,VALUE…]');
  const axes = varies.map((v) => parseAxis(v, scenarioText));
  const dup = axes.find((a, i) => axes.findIndex((b) => b.path.join('.') === a.path.join('.')) !== i);
  if (dup) throw new SweepError(`--vary ${dup.name}: the same field is varied twice`);
  const problems: string[] = [];
  const points = grid(axes).map((choice, index) => {
    const params = Object.fromEntries(axes.map((a, k) => [a.name, a.raw[choice[k]!]!]));
    let text = '';
    try {
      text = pointText(scenarioText, axes, choice);
      loadScenario(text, file);
    } catch (e) {
      const where = axes.map((a, k) => `${a.name}=${a.raw[choice[k]!]}`).join(' ');
      if (e instanceof ScenarioError) {
        // Blame the axis whose field the message is about, when one matches; else the whole point.
        for (const i of e.issues) {
          const path = i.path.join('.');
          const k = axes.findIndex((a) => path.startsWith(a.path.join('.')) || (a.path.at(-1) === 'servers' && path.startsWith('topology.hosts')));
          const blame = k >= 0 ? `--vary ${axes[k]!.name}=${axes[k]!.raw[choice[k]!]}` : `point ${where}`;
          problems.push(`${blame}: ${pathOf(i.path)}: ${i.message}`);
        }
      } else if (e instanceof SweepError) problems.push(e.message);
      else throw e;
    }
    return { index, params, text };
  });
  if (problems.length > 0) throw new SweepError([...new Set(problems)].join('\n'));
  return { axes, points };
}

function pathOf(path: ReadonlyArray<string | number>): string {
  return path.map((p) => String(p)).join('.') || '(top level)';
}

/** The key metrics of one point: what a sweep compares. */
export interface PointMetrics {
  complete: boolean;
  simulatedNs: number;
  events: number;
  /** Application bytes delivered per second: every flow, incast, RPC and on/off source together. */
  goodputBps: number;
  /**
   * Incast goodput over the rounds themselves: every round's block bytes · 8 / the rounds' total
   * time, i.e. the per-round rates weighted by round time (a plain mean of per-round rates lets a
   * few fast rounds hide slow ones: 394.6 vs 66.4 Mbit/s at RTOmin 200 ms, 4 servers). Null without incast.
   */
  incastGoodputOverRoundsBps: number | null;
  /** Completion times of finite flows; else of RPCs; else of incast rounds (see fctOf). */
  fctP50Ns: number | null;
  fctP99Ns: number | null;
  /** p99 of FCT / ideal FCT of the same transfers (null for incast rounds). */
  slowdownP99: number | null;
  drops: number;
  retransmits: number;
  timeouts: number;
}

export function metricsOf(r: SimResult): PointMetrics {
  const roundBytes = r.incast.reduce((a, i) => a + i.blockBytes * i.roundsCompleted, 0);
  const roundNs = r.incast.reduce((a, i) => a + i.roundTimeTotalNs, 0);
  const fromFlows = r.fct.completed > 0;
  // The first RPC workload with completions (several would mix distributions).
  const rpc = r.rpc.find((w) => w.fct.count > 0);
  const incastP = r.incast[0];
  const fromRounds = incastP && incastP.roundsCompleted > 0 ? incastP.roundNs : null;
  return {
    complete: r.complete,
    simulatedNs: r.simulatedNs,
    events: r.events,
    goodputBps:
      r.flows.reduce((a, f) => a + f.goodputBps, 0) + r.incast.reduce((a, i) => a + i.goodputBps, 0) + r.rpc.reduce((a, w) => a + w.goodputBps, 0) + r.onoff.reduce((a, w) => a + w.goodputBps, 0),
    incastGoodputOverRoundsBps: roundNs > 0 ? Math.round((roundBytes * 8e9) / roundNs) : null,
    fctP50Ns: fromFlows ? r.fct.p50Ns : rpc ? rpc.fct.fctP50Ns : fromRounds ? fromRounds.p50 : null,
    fctP99Ns: fromFlows ? r.fct.p99Ns : rpc ? rpc.fct.fctP99Ns : fromRounds ? fromRounds.p99 : null,
    slowdownP99: fromFlows ? r.fct.slowdownP99 : rpc ? rpc.fct.slowdownP99 : null,
    drops: Object.values(r.drops).reduce((a, b) => a + b, 0),
    retransmits: r.retransmits,
    timeouts: r.timeouts,
  };
}

export interface SweepResult {
  scenario: string;
  seed: number;
  /** False when interrupted: some points are missing or partial. */
  complete: boolean;
  axes: Array<{ name: string; path: string; values: string[] }>;
  /** What fctP50Ns/fctP99Ns measure in this sweep. */
  fctOf: 'flows' | 'rpcs' | 'incast rounds' | 'none';
  points: Array<SweepPoint & { status: 'done' | 'partial' | 'not run'; metrics: PointMetrics | null }>;
}

export interface SweepOptions {
  workers?: number;
  seed?: number;
  /** Called whenever a point finishes. */
  onPoint?: (done: number, total: number) => void;
  /** Called once the grid is planned and validated, before any point runs. */
  onStart?: (total: number) => void;
  /** Resolves (or is already resolved) when the sweep should stop: running points end partial. */
  stop?: Promise<void>;
}

/** Messages between the sweep and its workers. */
export type ToWorker = { kind: 'run'; index: number; text: string; file: string; seed: number | undefined } | { kind: 'stop' };
export type FromWorker = { kind: 'result'; index: number; metrics: PointMetrics } | { kind: 'error'; index: number; message: string };

export function defaultWorkers(): number {
  return Math.max(1, availableParallelism());
}

/** Runs every point on a pool of worker threads; resolves with the (possibly partial) sweep. */
export async function runSweep(scenarioText: string, file: string, varies: string[], opts: SweepOptions = {}): Promise<SweepResult> {
  const { axes, points } = planSweep(scenarioText, file, varies);
  const base = loadScenario(scenarioText, file);
  opts.onStart?.(points.length);
  const results = new Map<number, PointMetrics>();
  const nWorkers = Math.max(1, Math.min(opts.workers ?? defaultWorkers(), points.length));
  let next = 0;
  let stopped = false;
  let failure: Error | undefined;
  const workers: Worker[] = [];
  await new Promise<void>((resolveAll) => {
    let live = nWorkers;
    const finished = new Set<Worker>();
    const finish = (w: Worker) => {
      if (finished.has(w)) return;
      finished.add(w);
      void w.terminate();
      if (--live === 0) resolveAll();
    };
    const feed = (w: Worker) => {
      if (stopped || failure || next >= points.length) return finish(w);
      const p = points[next++]!;
      const msg: ToWorker = { kind: 'run', index: p.index, text: p.text, file, seed: opts.seed };
      w.postMessage(msg);
    };
    for (let i = 0; i < nWorkers; i++) {
      const w = new Worker(new URL('./sweep-worker.js', import.meta.url));
      workers.push(w);
      w.on('message', (m: FromWorker) => {
        if (m.kind === 'error') failure ??= new Error(`point ${m.index}: ${m.message}`);
        else {
          results.set(m.index, m.metrics);
          if (m.metrics.complete) opts.onPoint?.([...results.values()].filter((x) => x.complete).length, points.length);
        }
        feed(w);
      });
      w.on('error', (e) => {
        failure ??= e;
        finish(w);
      });
      // A worker that dies without an error event (killed, out of memory) must not hang the sweep.
      w.on('exit', (code) => {
        if (!finished.has(w)) failure ??= new Error(`a sweep worker exited with code ${code}`);
        finish(w);
      });
      feed(w);
    }
    void opts.stop?.then(() => {
      if (live === 0) return;
      stopped = true;
      for (const w of workers) w.postMessage({ kind: 'stop' } satisfies ToWorker);
    });
  });
  if (failure) throw failure;
  const all = [...results.values()];
  return {
    scenario: base.name,
    seed: opts.seed ?? base.seed,
    complete: all.length === points.length && all.every((m) => m.complete),
    axes: axes.map((a) => ({ name: a.name, path: a.path.join('.'), values: a.raw })),
    fctOf: base.workloads.some((w) => w.kind === 'bulk' && w.bytes !== null)
      ? 'flows'
      : base.workloads.some((w) => w.kind === 'rpc')
        ? 'rpcs'
        : base.workloads.some((w) => w.kind === 'incast')
          ? 'incast rounds'
          : 'none',
    points: points.map(({ index, params }) => {
      const m = results.get(index) ?? null;
      return { index, params, status: m === null ? 'not run' : m.complete ? 'done' : 'partial', metrics: m };
    }),
  };
}
