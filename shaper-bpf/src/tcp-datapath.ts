/**
 * The TCP part of the desired state: which sockets get which RTOmin / delayed-ACK maximum, and
 * which are capped by SO_MAX_PACING_RATE at their class's rate (classes policed without fq).
 * Host-wide (one sock_ops program on the cgroup v2 root), applied like the per-interface
 * Datapath: validated first, only what differs is written, all or nothing.
 */
import ipaddr from 'ipaddr.js';
import { diffMaps } from './diff.js';
import type { TcpPacing, TcpStats, TcpTuning } from './layout.js';
import { deletes, runSteps, upserts, type ApplyReport, type Table } from './steps.js';
import { InvalidShaperState, RATE_LIMITS } from './datapath.js';

export interface TcpState {
  /** class id → values in microseconds (0 = leave the kernel's). */
  tuning: Map<number, TcpTuning>;
  /**
   * class id → the class's rate on the wire, for sock_ops to pace its TCP sockets (policing only).
   * Absent = none: a snapshot written by a pacer from before pacing has no such field.
   */
  pacing?: Map<number, TcpPacing>;
  /**
   * socket mark → class id: the first selector sock_ops looks at, as tc does (classify_order.h).
   * Absent = none: a snapshot written by a pacer from before mark selectors in sock_ops.
   */
  marks?: Map<number, number>;
  /** cgroup id → class id. */
  cgroups: Map<bigint, number>;
  dst4: Map<string, number>;
  dst6: Map<string, number>;
}

export interface TcpTables {
  tuning: Table<number, TcpTuning>;
  pacing: Table<number, TcpPacing>;
  marks: Table<number, number>;
  cgroups: Table<bigint, number>;
  dst4: Table<string, number>;
  dst6: Table<string, number>;
  stats: { entries(): Map<number, TcpStats> };
}

/** The API allows 1 ms – 1 s; the kernel refuses what it cannot do, and the stats say so. */
const MAX_US = 1_000_000;

export class TcpDatapath {
  constructor(private readonly tables: TcpTables) {}

  read(): TcpState {
    const t = this.tables;
    const pacing = t.pacing.entries();
    const marks = t.marks.entries();
    // Absent when empty, like a state from before pacing (or mark selectors): the two read back the same.
    return {
      tuning: t.tuning.entries(),
      ...(pacing.size > 0 ? { pacing } : {}),
      ...(marks.size > 0 ? { marks } : {}),
      cgroups: t.cgroups.entries(),
      dst4: t.dst4.entries(),
      dst6: t.dst6.entries(),
    };
  }

  /** What the kernel answered, per class: sockets tuned, refused, and the last error. */
  stats(): Map<number, TcpStats> {
    return this.tables.stats.entries();
  }

  /** Selectors go in after the values they point at, and out before them. */
  apply(state: TcpState): ApplyReport {
    const desired = { ...state, pacing: state.pacing ?? new Map<number, TcpPacing>(), marks: state.marks ?? new Map<number, number>() };
    validateTcp(desired);
    const read = this.read();
    const actual = { ...read, marks: read.marks ?? new Map<number, number>() };
    const t = this.tables;
    const selectors = ['marks', 'cgroups', 'dst4', 'dst6'] as const;
    const tuning = diffMaps(actual.tuning, desired.tuning);
    const actualPacing = actual.pacing ?? new Map<number, TcpPacing>();
    const pacing = diffMaps(actualPacing, desired.pacing);
    const diffs = selectors.map((k) => [k, diffMaps<unknown, number>(actual[k], desired[k])] as const);
    return runSteps([
      upserts(t.tuning, tuning, actual.tuning),
      upserts(t.pacing, pacing, actualPacing),
      ...diffs.map(([k, d]) => upserts(t[k] as Table<unknown, number>, d, actual[k] as Map<unknown, number>)),
      ...diffs.map(([k, d]) => deletes(t[k] as Table<unknown, number>, d, actual[k] as Map<unknown, number>)),
      deletes(t.tuning, tuning, actual.tuning),
      deletes(t.pacing, pacing, actualPacing),
    ]);
  }
}

export function validateTcp(s: TcpState): void {
  const problems: string[] = [];
  for (const [id, v] of s.tuning) {
    if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) problems.push(`class id ${id} is not a u32 above 0`);
    for (const [field, us] of [['rto_min_us', v.rto_min_us], ['delack_max_us', v.delack_max_us]] as const) {
      if (!Number.isInteger(us) || us < 0 || us > MAX_US) problems.push(`class ${id}: ${field} ${us} is outside 0..${MAX_US} µs`);
    }
    if (v.rto_min_us === 0 && v.delack_max_us === 0) problems.push(`class ${id}: tuning with neither rto_min_us nor delack_max_us`);
  }
  const pacing = s.pacing ?? new Map<number, TcpPacing>();
  for (const [id, v] of pacing) {
    if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) problems.push(`class id ${id} is not a u32 above 0`);
    if (!Number.isInteger(v.rate_bps) || v.rate_bps < RATE_LIMITS.min || v.rate_bps > RATE_LIMITS.max) problems.push(`class ${id}: pacing rate ${v.rate_bps} bit/s is outside ${RATE_LIMITS.min}..${RATE_LIMITS.max}`);
  }
  const selectors: Array<[string, Map<unknown, number>]> = [
    ['mark', s.marks ?? new Map<number, number>()],
    ['cgroup', s.cgroups],
    ['prefix', s.dst4],
    ['prefix', s.dst6],
  ];
  for (const [what, map] of selectors) {
    for (const [sel, id] of map) if (!s.tuning.has(id) && !pacing.has(id)) problems.push(`${what} ${String(sel)} selects class ${id}, which has neither tuning nor pacing`);
  }
  for (const mark of (s.marks ?? new Map<number, number>()).keys()) {
    if (!Number.isInteger(mark) || mark < 1 || mark > 0xffffffff) problems.push(`mark ${mark} is not a u32 above 0 (mark 0 is "no mark")`);
  }
  for (const [family, map] of [['ipv4', s.dst4], ['ipv6', s.dst6]] as const) {
    for (const cidr of map.keys()) {
      if (!ipaddr.isValidCIDR(cidr) || ipaddr.parseCIDR(cidr)[0].kind() !== family) problems.push(`"${cidr}" is not an ${family} prefix`);
    }
  }
  if (problems.length > 0) throw new InvalidShaperState(problems);
}
