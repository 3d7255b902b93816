/**
 * The kernel's SNMP and netstat counters of one network namespace (`nstat`, run inside it: /proc/net
 * follows the reader's namespace), as absolute values; -s leaves nstat's history file alone.
 */
import { execIn } from './netns.js';

export type NetCounters = Record<string, number>;

export async function netCounters(ns: string): Promise<NetCounters> {
  const parsed = JSON.parse(await execIn(ns, 'nstat', ['-asz', '--json'])) as { kernel: NetCounters };
  return parsed.kernel;
}

/** How much each counter grew from `before` to `after` (a counter missing from one is taken as 0). */
export function counterGrowth(before: NetCounters, after: NetCounters): NetCounters {
  return Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)]));
}
