/**
 * Class names beside the class ids of an interface's last-known-good snapshot. The kernel's maps
 * hold ids only; the agent stores the names of the classes it applied with each snapshot, so
 * `pacer dp` (no API, no agent needed) and the agent's own metrics, before the API answers, can
 * name them. Class ids are never reused and names never change (docs/budgets-api.md), so the names
 * of a state stay true for as long as the state is enforced.
 *
 * Imports nothing heavy: `pacer dp` loads it.
 */
import { join } from 'node:path';
import { readSnapshot } from './snapshot.js';

/** The agent's --state-dir default. */
export const DEFAULT_STATE_DIR = '/var/lib/pacer';

/** Where the agent keeps the last-known-good snapshot of an interface's maps. */
export const interfaceSnapshotFile = (stateDir: string, iface: string): string => join(stateDir, `${iface}.last-known-good.json`);

/** class id → name of the classes among `ids`: what a snapshot of the state enforcing them stores. */
export function classNamesOf(classes: ReadonlyArray<{ id: number; name: string }>, ids: Iterable<number>): Map<number, string> {
  const byId = new Map(classes.map((c) => [c.id, c.name]));
  const names = new Map<number, string>();
  for (const id of ids) {
    const name = byId.get(id);
    if (name !== undefined) names.set(id, name);
  }
  return names;
}

/**
 * The names an interface's snapshot holds, or why there are none: `names` undefined when no
 * snapshot can be read; empty with a note when the snapshot predates class names (an agent of
 * this version adds them at its next apply). Never throws: names are a help, not a need.
 */
export function readSnapshotNames(stateDir: string, iface: string): { names?: ReadonlyMap<number, string>; note?: string } {
  const file = interfaceSnapshotFile(stateDir, iface);
  let saved: { names?: unknown } | undefined;
  try {
    saved = readSnapshot<{ names?: unknown }>(file);
  } catch (err) {
    return { note: `the agent's snapshot ${file} cannot be read (${(err as Error).message})` };
  }
  if (saved === undefined) return { note: `no agent snapshot at ${file}` };
  if (typeof saved !== 'object' || saved === null) return { note: `${file} is not an agent snapshot` };
  if (saved.names instanceof Map) return { names: saved.names as ReadonlyMap<number, string> };
  return { names: new Map(), note: `the agent's snapshot ${file} predates class names: the agent adds them at its next apply` };
}
