/**
 * The desired data-plane state of one host: a pure function of the API's classes, this host's
 * labels and what the host has (fq, cgroups). Nothing here touches the kernel or the clock, so the
 * whole policy of "what does this host enforce" is tested with plain values.
 *
 * Bad input skips as little as possible and says why in `classErrors` (reported in the heartbeat):
 * - a class whose parent does not apply to this host (or was itself skipped) is skipped, and so
 *   are its children: a child without its parent would escape the parent's budget;
 * - a class deeper than the data plane walks (4 levels), or in a parent cycle, is skipped;
 * - two classes with the same id: the one with the lower name keeps it, the other is skipped;
 * - one bad selector (a cgroup that does not exist here, a prefix that does not parse, a selector
 *   another class already holds) drops that selector only: the class and its other selectors are
 *   enforced. A cgroup that appears later is picked up by the next computation (the resync).
 * Selector conflicts go to the class with the lower id, so the answer does not depend on order.
 */
import { selectsHost, type ClassRecord } from '../../api/contract/class.js';
import { SETTINGS_POLICING, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import type { TcpState } from '../../shaper-bpf/src/tcp-datapath.js';
import type { ClassConfig } from '../../shaper-bpf/src/layout.js';
import { MAX_DEPTH } from '../../shaper-bpf/src/edt.js';
import { canonicalCidr } from '../../api/contract/class.js';
import { formatDuration } from '../../api/contract/units.js';
import type { RouteState } from '../datapath/route-plan.js';

export interface Inventory {
  /** fq is available: shaping. Without it the interface polices (docs/data-plane.md). */
  fq: boolean;
  /** The cgroup v2 mount; undefined when the host has none (cgroup selectors then fail per class). */
  cgroupRoot?: string;
  /** A cgroup path below the root → its cgroup id, undefined when it does not exist. */
  cgroupIds: (path: string) => bigint | undefined;
}

export interface ClassError {
  class: string;
  error: string;
}

export interface DesiredState {
  shaper: ShaperState;
  tcp: TcpState;
  /** rto_min route metrics for prefix-selected classes with tcp.rtoMin (controller/datapath/route-plan.ts). */
  routes: RouteState;
  classErrors: ClassError[];
}

/**
 * Without fq, a stamped packet leaves at once and only the horizon drop limits a class: the
 * horizon becomes the policer's depth. 2 ms absorbs a few packets of jitter without letting a
 * class run far over its rate; a larger burst gets that much depth instead.
 */
export const POLICING_HORIZON_NS = 2_000_000;

/**
 * The largest packet the stack hands the tc program as one: a 64 KB GSO packet, 45 segments of
 * MSS 1448 (tcp_xmit_size_goal stays under 64 KiB minus MAX_TCP_HEADER), charged as 45 frames of
 * 1514 bytes on the wire (__sk_buff.wire_len). TCP builds them on any path with a small RTT
 * (tcp_tso_autosize adds gso_max_size >> (min_rtt_us >> 9)), paced or not.
 */
export const MAX_GSO_WIRE_BYTES = 45 * 1514;

/**
 * How many of those the policer's depth holds. One, because a policer whose depth is shorter than
 * a packet drops that packet whole, whatever the sender's rate (a TBF needs a burst of at least its
 * largest packet for the same reason). Two, because the sockets of a class are paced each on its
 * own: two of them may hand over a GSO packet at the same moment. Measured (docs/agent.md, "TCP
 * under policing"): four paced flows got 0.59–0.87 of the rate with one, 0.92–0.96 with two.
 */
export const POLICING_GSO_PACKETS = 2;

/**
 * The policer's depth: `max(burst, 2 ms, two GSO packets at the rate)`, at most the horizon; the
 * agent gives the class's guaranteed rate, which borrowing never goes below: a
 * 64 KB GSO packet costs 54.5 ms at 10 Mbit/s. A sender may pass that many bytes (136 KB) above
 * its rate at once; from about 545 Mbit/s up, 2 ms is longer than two GSO packets.
 */
export function policingDepthNs(rateBps: number, burstNsValue: number, horizonNs: number): number {
  const gsoNs = Math.ceil((POLICING_GSO_PACKETS * MAX_GSO_WIRE_BYTES * 8 * 1e9) / rateBps);
  return Math.min(horizonNs, Math.max(burstNsValue, POLICING_HORIZON_NS, gsoNs));
}

/**
 * Under policing a packet whose class runs further ahead of its rate than the depth is dropped, so
 * a threshold at or past the depth never marks. Written as asked all the same (`pacer dp classes`
 * then shows both), and said here, with the fix.
 */
function ecnNeverMarks(thresholdNs: number, depthNs: number, policing: boolean): string {
  // The API refuses a threshold at or past the horizon; a record that got one anyway is said too.
  if (!policing) return `ecn.threshold ${formatDuration(thresholdNs)} never marks: it is not below the horizon ${formatDuration(depthNs)}; set it lower`;
  return (
    `ecn.threshold ${formatDuration(thresholdNs)} never marks on this host: without fq the class is policed with a depth of ${formatDuration(depthNs)}, ` +
    `and a packet that would run further ahead of the class's rate is dropped before it could be marked; set ecn.threshold below ${formatDuration(depthNs)} ` +
    `(or give the class a larger burst, which deepens the policer)`
  );
}

/** Burst in bytes is time at the class's (effective) rate: ceil, so a burst is never smaller than asked. */
export function burstNs(burst: ClassRecord['burst'], rateBps: number): number {
  if ('ns' in burst) return burst.ns;
  return Math.ceil((burst.bytes * 8 * 1e9) / rateBps);
}

/** The data plane takes µs; round up, so a tuning is never below what was asked (0 = leave the kernel's). */
const toUs = (ns: number | null) => (ns === null ? 0 : Math.ceil(ns / 1000));

export function desiredState(
  classes: readonly ClassRecord[],
  hostLabels: Record<string, string>,
  inventory: Inventory,
  effectiveRates?: ReadonlyMap<number, number>,
): DesiredState {
  const errors: ClassError[] = [];
  const fail = (name: string, error: string) => errors.push({ class: name, error });
  const policing = !inventory.fq;

  // This host's classes, one per id.
  const byName = new Map<string, ClassRecord>();
  const idOwner = new Map<number, string>();
  for (const c of [...classes].filter((c) => selectsHost(c, hostLabels)).sort((a, b) => cmp(a.name, b.name))) {
    const owner = idOwner.get(c.id);
    if (owner !== undefined) {
      fail(c.name, `class id ${c.id} is already used by class ${owner}`);
      continue;
    }
    idOwner.set(c.id, c.name);
    byName.set(c.name, c);
  }

  // Which classes can be enforced: their whole parent chain is here and at most MAX_DEPTH deep.
  const verdict = new Map<string, true | string>();
  const check = (c: ClassRecord, seen: Set<string>): true | string => {
    const known = verdict.get(c.name);
    if (known !== undefined) return known;
    let result: true | string = true;
    if (c.parent !== null) {
      const parent = byName.get(c.parent);
      if (parent === undefined) result = `parent ${c.parent} does not apply to this host`;
      else if (seen.has(parent.name)) result = `parent ${c.parent} is in a parent cycle`;
      else if (check(parent, new Set(seen).add(c.name)) !== true) result = `parent ${c.parent} is not enforced on this host`;
      else if (depthOf(parent) >= MAX_DEPTH) result = `deeper than ${MAX_DEPTH} levels of classes`;
    }
    verdict.set(c.name, result);
    return result;
  };
  const depthOf = (c: ClassRecord): number => (c.parent === null ? 1 : 1 + depthOf(byName.get(c.parent)!));

  const accepted: ClassRecord[] = [];
  for (const c of [...byName.values()].sort((a, b) => a.id - b.id)) {
    const v = check(c, new Set([c.name]));
    if (v === true) accepted.push(c);
    else fail(c.name, v);
  }

  const shaper: ShaperState = {
    classes: new Map(),
    marks: new Map(),
    cgroups: new Map(),
    dst4: new Map(),
    dst6: new Map(),
    settings: { default_class: 0, flags: policing ? SETTINGS_POLICING : 0 },
  };
  const tcp: Required<TcpState> = { tuning: new Map(), pacing: new Map(), marks: new Map(), cgroups: new Map(), dst4: new Map(), dst6: new Map() };
  const routes: RouteState = new Map();
  const owners = new Map<string, string>(); // selector key → class name, for conflict messages

  /** Claims a selector for a class; false (and an error) when another class holds it. */
  const claim = (c: ClassRecord, key: string, what: string): boolean => {
    const owner = owners.get(key);
    if (owner !== undefined) {
      fail(c.name, `${what} is already selected by class ${owner}; ignored for this class`);
      return false;
    }
    owners.set(key, c.name);
    return true;
  };

  for (const c of accepted) {
    const rate = effectiveRates?.get(c.id) ?? c.rate;
    const burst = burstNs(c.burst, rate);
    // A time, so it means the same at the guarantee and at a borrowed rate (docs/data-plane.md, "ECN marking").
    const ecn = c.ecn?.threshold ?? 0; // a record from an API or snapshot older than the field has none: off
    const config: ClassConfig = {
      rate_bps: rate,
      burst_ns: burst,
      // At the guarantee, not the borrowed rate: a depth that shrank when the rate rose would drop
      // every packet until now caught up with a schedule that ran ahead by the old depth.
      horizon_ns: policing ? policingDepthNs(c.rate, burst, c.horizon) : c.horizon,
      ecn_ns: ecn,
      parent_id: c.parent === null ? 0 : byName.get(c.parent)!.id,
      flags: 0,
    };
    shaper.classes.set(c.id, config);
    // The API keeps the threshold below the horizon; the policer's depth can be shorter still.
    if (ecn > 0 && ecn >= config.horizon_ns) fail(c.name, ecnNeverMarks(ecn, config.horizon_ns, policing));

    const marks = c.match.marks.filter((mark) => claim(c, `mark:${mark}`, `mark ${mark}`));
    for (const mark of marks) shaper.marks.set(mark, c.id);

    const cgroups: bigint[] = [];
    for (const path of c.match.cgroups) {
      const id = inventory.cgroupRoot === undefined ? undefined : inventory.cgroupIds(path);
      if (id === undefined) {
        fail(c.name, inventory.cgroupRoot === undefined ? `cgroup ${path}: this host has no cgroup v2 mount; selector ignored` : `cgroup ${path} does not exist on this host; selector ignored`);
      } else if (claim(c, `cgroup:${id}`, `cgroup ${path}`)) {
        shaper.cgroups.set(id, c.id);
        cgroups.push(id);
      }
    }

    const prefixes: string[] = [];
    for (const text of c.match.dst) {
      let cidr: string;
      try {
        cidr = canonicalCidr(text);
      } catch (e) {
        fail(c.name, `prefix ${text}: ${(e as Error).message}; selector ignored`);
        continue;
      }
      if (!claim(c, `dst:${cidr}`, `prefix ${cidr}`)) continue;
      (cidr.includes(':') ? shaper.dst6 : shaper.dst4).set(cidr, c.id);
      prefixes.push(cidr);
    }

    // sock_ops classifies a socket by its mark, its cgroup and its peer's prefix, in tc's order
    // (shaper-bpf/bpf/classify_order.h), from its own maps holding the same selectors.
    const classifiable = marks.length > 0 || cgroups.length > 0 || prefixes.length > 0;
    const tuned = c.tcp !== null && (c.tcp.rtoMin !== null || c.tcp.delackMax !== null);
    // Policing: nothing holds a local TCP sender's packets until their departure time, so TCP
    // paces itself at the class's rate (SO_MAX_PACING_RATE through sock_ops), else it sends its
    // window at line rate into the policer and lives on retransmission timeouts.
    const paced = policing && classifiable;
    if (tuned && !classifiable) fail(c.name, 'tcp tuning needs a mark, cgroup or prefix selector; tuning ignored');
    if (!classifiable || (!tuned && !paced)) continue;
    if (tuned) {
      tcp.tuning.set(c.id, { rto_min_us: toUs(c.tcp!.rtoMin), delack_max_us: toUs(c.tcp!.delackMax) });
      // The route metric has ms granularity: rounded up, like the sock_ops µs.
      if (c.tcp!.rtoMin !== null) for (const cidr of prefixes) routes.set(cidr, { classId: c.id, className: c.name, rtoMinMs: Math.ceil(c.tcp!.rtoMin / 1e6) });
    }
    if (paced) tcp.pacing.set(c.id, { rate_bps: rate });
    for (const mark of marks) tcp.marks.set(mark, c.id);
    for (const id of cgroups) tcp.cgroups.set(id, c.id);
    for (const cidr of prefixes) (cidr.includes(':') ? tcp.dst6 : tcp.dst4).set(cidr, c.id);
  }

  errors.sort((a, b) => cmp(a.class, b.class) || cmp(a.error, b.error));
  return { shaper, tcp, routes, classErrors: errors };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
