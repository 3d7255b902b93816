/**
 * Applying a change to several BPF maps as one all-or-nothing operation: a list of steps, each
 * able to undo itself; when the kernel refuses one halfway, every step done so far is undone, in
 * reverse, before the error is thrown.
 */
import type { MapDiff } from './diff.js';

/** What a map must offer to be written by steps; TypedMap implements it. */
export interface Table<K, V> {
  readonly name: string;
  entries(): Map<K, V>;
  setMany(entries: ReadonlyArray<readonly [K, V]>): void;
  deleteMany(keys: ReadonlyArray<K>): void;
}

/** A map's entries as read at once, as two parallel lists: entry i is (keys[i], values[i]). */
export interface EntryList<K, V> {
  keys: ArrayLike<K> & Iterable<K>;
  values: ArrayLike<V> & Iterable<V>;
}

/** A Table that can also list its entries without building a Map (what a resync walks); TypedMap implements it. */
export interface ListTable<K, V> extends Table<K, V> {
  list(): EntryList<K, V>;
}

export interface Step {
  /** The map it writes, for the report. */
  name: string;
  size: number;
  /** false: bookkeeping that the report leaves out. */
  reported?: boolean;
  describe: string;
  run(): void;
  undo(): void;
}

export interface ApplyReport {
  /** Entries written or deleted, per map. */
  changes: Record<string, number>;
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

export function upserts<K, V>(table: Table<K, V>, diff: MapDiff<K, V>, before: ReadonlyMap<K, V>): Step {
  const keys = diff.upserts.map(([k]) => k);
  return {
    name: table.name,
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

export function deletes<K, V>(table: Table<K, V>, diff: MapDiff<K, V>, before: ReadonlyMap<K, V>): Step {
  return {
    name: table.name,
    size: diff.deletes.length,
    describe: `deleting ${diff.deletes.length} entries of ${table.name}`,
    run: () => table.deleteMany(diff.deletes),
    undo: () => table.setMany(diff.deletes.map((k) => [k, before.get(k)!] as const)),
  };
}

/** Runs the steps in order; on a failure undoes them all (then `afterUndo`) and throws ApplyFailed. */
export function runSteps(steps: Step[], afterUndo: () => void = () => {}): ApplyReport {
  const done: Step[] = [];
  const report: ApplyReport = { changes: {} };
  for (const step of steps) {
    if (step.size === 0) continue;
    try {
      step.run();
    } catch (err) {
      // The step may have half-run: undo it too (its undo only restores what it touched).
      let rolledBack = undoAll([...done, step]);
      try {
        afterUndo();
      } catch {
        rolledBack = false;
      }
      throw new ApplyFailed(
        `applying the desired state failed at ${step.describe} (${(err as Error).message}); ${rolledBack ? 'every change of this apply was undone' : 'UNDO FAILED: the maps may hold a mix of old and new state'}`,
        err,
        rolledBack,
      );
    }
    done.push(step);
    if (step.reported !== false) report.changes[step.name] = (report.changes[step.name] ?? 0) + step.size;
  }
  return report;
}

function undoAll(steps: Step[]): boolean {
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
