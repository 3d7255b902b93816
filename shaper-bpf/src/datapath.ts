/**
 * The Datapath: what the controller drives. It takes the whole desired state of one interface as
 * data, applies only what differs from the maps, reads the maps back, and reads the counters.
 *
 * One implementation serves both the kernel and tests: it works on `Table`s, which are the typed
 * BPF maps in production (`EgressObject`) and plain in-memory maps in unit tests of callers
 * (`memoryTables`).
 *
 * An apply is all or nothing: the state is validated before any map is touched, and when the
 * kernel refuses a write halfway (a full map), every change already made is undone before the
 * error is thrown.
 */
import ipaddr from 'ipaddr.js';
import { diffMaps, type MapDiff } from './diff.js';
import { MAX_DEPTH } from './edt.js';
import type { ClassConfig, ClassStats, IfaceStats, Settings } from './layout.js';

/** What one interface should enforce. Built by the agent from the API's classes. */
export interface ShaperState {
  classes: Map<number, ClassConfig>;
  marks: Map<number, number>;
  cgroups: Map<bigint, number>;
  /** Canonical CIDR → class id. */
  dst4: Map<string, number>;
  dst6: Map<string, number>;
  settings: Settings;
}

/** settings.flags: the agent's mode, for operators reading the pinned maps. The program ignores it. */
export const SETTINGS_POLICING = 1;

export const RATE_LIMITS = { min: 1_000, max: 400_000_000_000 } as const;

/** The operations the datapath needs from a map; TypedMap implements them. */
export interface Table<K, V> {
  readonly name: string;
  entries(): Map<K, V>;
  setMany(entries: ReadonlyArray<readonly [K, V]>): void;
  deleteMany(keys: ReadonlyArray<K>): void;
}

export interface StatsTable<K, V> {
  entries(): Map<K, V>;
  deleteMany(keys: ReadonlyArray<K>): void;
}

export interface ShaperTables {
  config: Table<number, ClassConfig>;
  marks: Table<number, number>;
  cgroups: Table<bigint, number>;
  dst4: Table<string, number>;
  dst6: Table<string, number>;
  settings: Table<number, Settings>;
  /** Schedules and counters of deleted classes are removed with them. */
  state: Table<number, { t_last: number }>;
  stats: StatsTable<number, ClassStats>;
  ifaceStats: { get(k: number): IfaceStats | undefined };
}

export class InvalidShaperState extends Error {
  constructor(readonly problems: string[]) {
    super(`the desired state is invalid, nothing was changed: ${problems.join('; ')}`);
  }
}

export class ApplyFailed extends Error {
  constructor(
    message: string,
    override readonly cause: unknown,
    readonly rolledBack: boolean,
  ) {
    super(message);
  }
}

export interface ApplyReport {
  /** Entries written or deleted, per map. */
  changes: Record<string, number>;
}

export class Datapath {
  constructor(private readonly tables: ShaperTables) {}

  read(): ShaperState {
    const t = this.tables;
    return {
      classes: t.config.entries(),
      marks: t.marks.entries(),
      cgroups: t.cgroups.entries(),
      dst4: t.dst4.entries(),
      dst6: t.dst6.entries(),
      settings: t.settings.entries().get(0) ?? { default_class: 0, flags: 0 },
    };
  }

  stats(): { classes: Map<number, ClassStats>; unclassified: IfaceStats } {
    return {
      classes: this.tables.stats.entries(),
      unclassified: this.tables.ifaceStats.get(0) ?? { unclassified_packets: 0, unclassified_bytes: 0 },
    };
  }

  /**
   * Makes the maps equal `desired`, writing only what differs. Order keeps every packet
   * classifiable to a configured class: new and changed classes first, then selectors, the
   * default, removed selectors, and removed classes (with their schedules and counters) last.
   * A rate change rewrites class_config only: the schedule in class_state is kept.
   */
  apply(desired: ShaperState): ApplyReport {
    validate(desired);
    const actual = this.read();
    const t = this.tables;
    const classes = diffMaps(actual.classes, desired.classes);
    const steps: Array<Step<any, any>> = [
      upserts(t.config, classes, actual.classes),
      ...(['marks', 'cgroups', 'dst4', 'dst6'] as const).map((k) => upserts(t[k] as Table<unknown, number>, diffMaps<unknown, number>(actual[k], desired[k]), actual[k])),
      upserts(t.settings, diffMaps(new Map([[0, actual.settings]]), new Map([[0, desired.settings]])), new Map([[0, actual.settings]])),
      ...(['marks', 'cgroups', 'dst4', 'dst6'] as const).map((k) => deletes(t[k] as Table<unknown, number>, diffMaps<unknown, number>(actual[k], desired[k]), actual[k])),
      deletes(t.config, classes, actual.classes),
    ];
    const done: Array<Step<any, any>> = [];
    const report: ApplyReport = { changes: {} };
    for (const step of steps) {
      if (step.size === 0) continue;
      try {
        step.run();
      } catch (err) {
        // The step may have half-run: undo it too (its undo only restores what it touched).
        const rolledBack = undoAll([...done, step]);
        throw new ApplyFailed(
          `applying the desired state failed at ${step.describe} (${(err as Error).message}); ${rolledBack ? 'every change of this apply was undone' : 'UNDO FAILED: the maps may hold a mix of old and new state'}`,
          err,
          rolledBack,
        );
      }
      done.push(step);
      report.changes[step.table.name] = (report.changes[step.table.name] ?? 0) + step.size;
    }
    // Schedules and counters of removed classes go last; losing them cannot misdirect a packet.
    const removed = classes.deletes;
    if (removed.length > 0) {
      const schedules = t.state.entries();
      const counters = t.stats.entries();
      t.state.deleteMany(removed.filter((id) => schedules.has(id)));
      t.stats.deleteMany(removed.filter((id) => counters.has(id)));
    }
    return report;
  }
}

interface Step<K, V> {
  table: Table<K, V>;
  size: number;
  describe: string;
  run(): void;
  undo(): void;
}

function upserts<K, V>(table: Table<K, V>, diff: MapDiff<K, V>, before: ReadonlyMap<K, V>): Step<K, V> {
  const keys = diff.upserts.map(([k]) => k);
  return {
    table,
    size: diff.upserts.length,
    describe: `writing ${diff.upserts.length} entries of ${table.name}`,
    run: () => table.setMany(diff.upserts),
    undo: () => {
      const now = table.entries();
      table.deleteMany(keys.filter((k) => !before.has(k) && now.has(k)));
      table.setMany(keys.filter((k) => before.has(k)).map((k) => [k, before.get(k)!] as const));
    },
  };
}

function deletes<K, V>(table: Table<K, V>, diff: MapDiff<K, V>, before: ReadonlyMap<K, V>): Step<K, V> {
  return {
    table,
    size: diff.deletes.length,
    describe: `deleting ${diff.deletes.length} entries of ${table.name}`,
    run: () => table.deleteMany(diff.deletes),
    undo: () => table.setMany(diff.deletes.map((k) => [k, before.get(k)!] as const)),
  };
}

function undoAll(steps: Array<Step<any, any>>): boolean {
  let ok = true;
  for (const step of [...steps].reverse()) {
    try {
      step.undo();
    } catch {
      ok = false;
    }
  }
  return ok;
}

/** Everything the program relies on, checked before any map is touched. */
export function validate(s: ShaperState): void {
  const problems: string[] = [];
  for (const [id, c] of s.classes) {
    if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) problems.push(`class id ${id} is not a u32 above 0`);
    if (!Number.isInteger(c.rate_bps) || c.rate_bps < RATE_LIMITS.min || c.rate_bps > RATE_LIMITS.max) {
      problems.push(`class ${id}: rate ${c.rate_bps} bit/s is outside ${RATE_LIMITS.min}..${RATE_LIMITS.max}`);
    }
    if (!(c.horizon_ns > 0)) problems.push(`class ${id}: horizon must be positive`);
    if (c.parent_id !== 0 && !s.classes.has(c.parent_id)) problems.push(`class ${id}: parent ${c.parent_id} is not in the state`);
    let depth = 1;
    for (let p = c.parent_id; p !== 0 && depth <= MAX_DEPTH; depth++) p = s.classes.get(p)?.parent_id ?? 0;
    if (depth > MAX_DEPTH) problems.push(`class ${id}: deeper than ${MAX_DEPTH} levels, or a parent cycle`);
  }
  const selectors: Array<[string, Map<unknown, number>]> = [
    ['mark', s.marks],
    ['cgroup', s.cgroups],
    ['prefix', s.dst4],
    ['prefix', s.dst6],
  ];
  for (const [what, map] of selectors) {
    for (const [sel, id] of map) if (!s.classes.has(id)) problems.push(`${what} ${String(sel)} selects class ${id}, which is not in the state`);
  }
  for (const [family, map] of [['ipv4', s.dst4], ['ipv6', s.dst6]] as const) {
    for (const cidr of map.keys()) {
      if (!ipaddr.isValidCIDR(cidr) || ipaddr.parseCIDR(cidr)[0].kind() !== family) problems.push(`"${cidr}" is not an ${family} prefix`);
    }
  }
  if (s.settings.default_class !== 0 && !s.classes.has(s.settings.default_class)) {
    problems.push(`default class ${s.settings.default_class} is not in the state`);
  }
  if (problems.length > 0) throw new InvalidShaperState(problems);
}

/** In-memory tables with the same behaviour, for unit tests of the controller. */
export function memoryTables(capacity = 65_536): ShaperTables {
  const table = <K, V>(name: string): Table<K, V> & { map: Map<K, V> } => {
    const map = new Map<K, V>();
    return {
      name,
      map,
      entries: () => new Map(map),
      setMany(entries) {
        for (const [k, v] of entries) {
          if (!map.has(k) && map.size >= capacity) throw new Error(`map "${name}" is full: max_entries is ${capacity}`);
          map.set(k, v);
        }
      },
      deleteMany(keys) {
        for (const k of keys) map.delete(k);
      },
    };
  };
  return {
    config: table('class_config'),
    marks: table('mark_class'),
    cgroups: table('cgroup_class'),
    dst4: table('dst4_class'),
    dst6: table('dst6_class'),
    settings: table('settings'),
    state: table('class_state'),
    stats: table('class_stats'),
    ifaceStats: { get: () => ({ unclassified_packets: 0, unclassified_bytes: 0 }) },
  };
}
