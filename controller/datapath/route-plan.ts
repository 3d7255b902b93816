/**
 * TCP rto_min as a route metric, for classes selected by destination prefix: what pacer's routes
 * should be, from the kernel's routes and the desired state. Pure: parsing `ip -N -d -j route show`
 * and planning; route-tuner.ts runs the commands.
 *
 * For each prefix, pacer installs a route of its own (proto 112) for exactly that prefix in the
 * main table, with the nexthop copied from the most specific route that carries the prefix's
 * traffic today, and `rto_min` (iproute2 locks it, so it overrides the socket's own RTOmin and
 * changes established connections too). Longest-prefix match makes pacer's route the one used,
 * and only for that prefix. pacer never changes a route it did not create, so a prefix is refused
 * (with the reason, for that class) when:
 * - a route for exactly that prefix exists already (pacer cannot add its metric without replacing it);
 * - more specific routes lie inside it (their destinations would not get the metric);
 * - nothing routes it, or only a blackhole/unreachable/… route, or a multipath route (not copied).
 * A class gets all of its prefixes' routes or none (a class half tuned would be a surprise).
 */
import ipaddr from 'ipaddr.js';

/** The route protocol number pacer marks its routes with (/etc/iproute2/rt_protos: unassigned). */
export const PACER_ROUTE_PROTO = 112;

/** What a prefix of a class should get. */
export interface RouteTuning {
  classId: number;
  className: string;
  /** ms: the unit of the route metric (the kernel converts to jiffies). */
  rtoMinMs: number;
}

/** canonical prefix → tuning. */
export type RouteState = Map<string, RouteTuning>;

export type Family = 4 | 6;

/** One route of the main table, from `ip -N -d -j route show table main`. */
export interface KernelRoute {
  family: Family;
  /** Canonical prefix ("10.1.2.3/32", "0.0.0.0/0"). */
  dst: string;
  /** RTN_* name: unicast, blackhole, unreachable, … */
  type: string;
  protocol: number;
  metric?: number;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  nhid?: number;
  onlink: boolean;
  multipath: boolean;
  rtoMinMs?: number;
}

/** A route pacer puts in place (`ip route replace`). */
export interface RouteSpec {
  family: Family;
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  nhid?: number;
  onlink: boolean;
  rtoMinMs: number;
  classId: number;
  className: string;
}

export interface RoutePlan {
  /** class id → why its routes are not installed (all of them, or none). */
  classErrors: Map<number, { class: string; error: string }>;
  /** The routes pacer should have, by prefix. */
  target: Map<string, RouteSpec>;
  /** Routes to add or replace. */
  put: RouteSpec[];
  /** pacer's routes to delete: no longer wanted, or in a slot (metric) pacer does not use. */
  remove: KernelRoute[];
}

const RTN_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'];
const PROTO_NAMES: Record<number, string> = { 2: 'kernel', 3: 'boot', 4: 'static', 16: 'dhcp', 186: 'bgp', 188: 'ospf', [PACER_ROUTE_PROTO]: 'pacer' };

export function familyOf(cidr: string): Family {
  return cidr.includes(':') ? 6 : 4;
}

/** "10.1.2.3" → "10.1.2.3/32", "default" → "0.0.0.0/0", other prefixes normalised. */
export function canonicalDst(dst: string, family: Family): string {
  if (dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  const [addr, bits] = dst.includes('/') ? ipaddr.parseCIDR(dst) : [ipaddr.parse(dst), family === 4 ? 32 : 128];
  return `${addr.toString()}/${bits}`;
}

/** `ip -N -d -j route show table main` (numbers for type and protocol: names depend on the host's rt_protos). */
export function parseRoutes(json: string, family: Family): KernelRoute[] {
  const list: unknown = JSON.parse(json.trim() === '' ? '[]' : json);
  if (!Array.isArray(list)) throw new Error(`ip -j route show: expected an array, got ${json.slice(0, 80)}`);
  return list.map((raw: Record<string, unknown>) => {
    if (typeof raw.dst !== 'string') throw new Error(`ip -j route show: a route without dst: ${JSON.stringify(raw)}`);
    const metrics = Array.isArray(raw.metrics) ? (raw.metrics as Array<Record<string, unknown>>) : [];
    const rto = metrics.find((m) => typeof m.rto_min === 'number')?.rto_min as number | undefined;
    const flags = Array.isArray(raw.flags) ? (raw.flags as string[]) : [];
    return {
      family,
      dst: canonicalDst(raw.dst, family),
      type: RTN_TYPES[Number(raw.type ?? 1)] ?? `type ${String(raw.type)}`,
      protocol: Number(raw.protocol ?? 0),
      ...(typeof raw.metric === 'number' ? { metric: raw.metric } : {}),
      ...(typeof raw.gateway === 'string' ? { gateway: raw.gateway } : {}),
      ...(typeof raw.dev === 'string' ? { dev: raw.dev } : {}),
      ...(typeof raw.prefsrc === 'string' ? { prefsrc: raw.prefsrc } : {}),
      ...(typeof raw.nhid === 'number' ? { nhid: raw.nhid } : {}),
      onlink: flags.includes('onlink'),
      multipath: Array.isArray(raw.nexthops),
      ...(rto !== undefined ? { rtoMinMs: rto } : {}),
    };
  });
}

/** How a route reads in messages: like `ip route show`. */
export function describeRoute(r: KernelRoute): string {
  const parts = [r.type === 'unicast' ? r.dst : `${r.type} ${r.dst}`];
  if (r.nhid !== undefined) parts.push(`nhid ${r.nhid}`);
  if (r.multipath) parts.push('(multipath)');
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.dev) parts.push(`dev ${r.dev}`);
  parts.push(`proto ${PROTO_NAMES[r.protocol] ?? r.protocol}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  return parts.join(' ');
}

/** Does prefix `outer` contain prefix `inner` (equal counts)? */
export function contains(outer: string, inner: string): boolean {
  const [oAddr, oBits] = ipaddr.parseCIDR(outer);
  const [iAddr, iBits] = ipaddr.parseCIDR(inner);
  return oAddr.kind() === iAddr.kind() && iBits >= oBits && iAddr.match(oAddr, oBits);
}

/** The prefixes that contain a canonical prefix: itself first, then each one bit shorter, down to /0. */
export function supernets(cidr: string): string[] {
  const [addr, bits] = ipaddr.parseCIDR(cidr);
  const bytes = addr.toByteArray();
  const out: string[] = [];
  for (let b = bits; b >= 0; b--) {
    const i = b >> 3;
    if (i < bytes.length) bytes[i]! &= (0xff << (8 - (b & 7))) & 0xff; // keep the first b bits (the rest are zero already)
    out.push(`${ipaddr.fromByteArray(bytes).toString()}/${b}`);
  }
  return out;
}

/**
 * The main table, indexed so a plan costs (desired prefixes + routes) × address bits instead of
 * desired prefixes × routes: routes by prefix, and every prefix that strictly contains a route.
 */
class RouteIndex {
  private readonly byDst = new Map<string, KernelRoute[]>();
  private readonly containing = new Set<string>();

  constructor(private readonly routes: readonly KernelRoute[]) {
    for (const r of routes) {
      this.byDst.set(r.dst, [...(this.byDst.get(r.dst) ?? []), r]);
      for (const s of supernets(r.dst).slice(1)) this.containing.add(s);
    }
  }

  exact(dst: string): KernelRoute | undefined {
    return this.byDst.get(dst)?.[0];
  }

  /** The routes strictly inside dst (computed only when there are some: for the message). */
  inside(dst: string): KernelRoute[] {
    return this.containing.has(dst) ? this.routes.filter((r) => r.dst !== dst && contains(dst, r.dst)) : [];
  }

  /** The route the kernel uses for dst: the longest strictly shorter prefix, then the lowest metric. */
  via(dst: string): KernelRoute | undefined {
    for (const s of supernets(dst).slice(1)) {
      const routes = this.byDst.get(s);
      if (routes) return [...routes].sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
    }
    return undefined;
  }
}

/** The slot pacer's routes use: no metric (IPv4), the kernel's default 1024 (IPv6). */
const inPacerSlot = (r: KernelRoute) => r.metric === undefined || r.metric === 0 || (r.family === 6 && r.metric === 1024);

const sameRoute = (r: KernelRoute, s: RouteSpec) =>
  r.gateway === s.gateway && r.dev === s.dev && r.prefsrc === s.prefsrc && r.nhid === s.nhid && r.onlink === s.onlink && r.rtoMinMs === s.rtoMinMs;

/**
 * @param unavailable families whose routes could not be read, with the reason: their prefixes are refused.
 */
export function planRoutes(current: readonly KernelRoute[], desired: RouteState, unavailable: Partial<Record<Family, string>> = {}): RoutePlan {
  const ours = current.filter((r) => r.protocol === PACER_ROUTE_PROTO);
  // Built only when some class wants a route: a host without any pays for the read alone.
  let index: RouteIndex | undefined;
  const others = () => (index ??= new RouteIndex(current.filter((r) => r.protocol !== PACER_ROUTE_PROTO)));
  const classErrors = new Map<number, { class: string; error: string }>();
  const target = new Map<string, RouteSpec>();

  const byClass = new Map<number, Array<[string, RouteTuning]>>();
  for (const [dst, t] of desired) byClass.set(t.classId, [...(byClass.get(t.classId) ?? []), [dst, t]]);

  for (const [classId, prefixes] of byClass) {
    const problems: string[] = [];
    const specs: RouteSpec[] = [];
    for (const [dst, t] of prefixes) {
      const family = familyOf(dst);
      const refuse = (why: string) => problems.push(`route rto_min for ${dst}: ${why}`);
      if (unavailable[family] !== undefined) {
        refuse(`the IPv${family} routes cannot be read: ${unavailable[family]}`);
        continue;
      }
      const exact = others().exact(dst);
      if (exact) {
        refuse(`the route ${describeRoute(exact)} exists for exactly this prefix and is not pacer's; pacer does not change routes it did not create (select a longer prefix, or set rto_min on that route yourself)`);
        continue;
      }
      const inner = others().inside(dst);
      if (inner.length > 0) {
        refuse(`it contains the more specific route${inner.length > 1 ? 's' : ''} ${inner.slice(0, 3).map(describeRoute).join(', ')}${inner.length > 3 ? ', …' : ''}, whose connections would not get rto_min`);
        continue;
      }
      // The route the kernel uses for the prefix today.
      const via = others().via(dst);
      if (via === undefined) refuse('no route in the main table carries it');
      else if (via.type !== 'unicast') refuse(`it is routed by ${describeRoute(via)}: no path to copy`);
      else if (via.multipath) refuse(`it is routed by the multipath route ${describeRoute(via)}; pacer copies single-path routes only`);
      else {
        specs.push({
          family,
          dst,
          ...(via.nhid !== undefined ? { nhid: via.nhid } : { ...(via.gateway ? { gateway: via.gateway } : {}), ...(via.dev ? { dev: via.dev } : {}), ...(via.prefsrc ? { prefsrc: via.prefsrc } : {}) }),
          onlink: via.nhid === undefined && via.onlink,
          rtoMinMs: t.rtoMinMs,
          classId,
          className: t.className,
        });
      }
    }
    if (problems.length > 0) classErrors.set(classId, { class: prefixes[0]![1].className, error: problems.join('; ') });
    else for (const s of specs) target.set(s.dst, s);
  }

  const put: RouteSpec[] = [];
  for (const s of target.values()) {
    const have = ours.find((r) => r.dst === s.dst && r.family === s.family && inPacerSlot(r));
    if (have === undefined || !sameRoute(have, s)) put.push(s);
  }
  // Kept: exactly one of ours per wanted prefix, in pacer's slot. Everything else of ours goes.
  const kept = new Set<KernelRoute>();
  for (const s of target.values()) {
    const have = ours.find((r) => r.dst === s.dst && r.family === s.family && inPacerSlot(r));
    if (have) kept.add(have);
  }
  const remove = ours.filter((r) => !kept.has(r));
  return { classErrors, target, put, remove };
}

/** The `ip` arguments that put a route in place (replace: also updates pacer's route for that prefix). */
export function putArgs(s: RouteSpec): string[] {
  const nexthop = s.nhid !== undefined ? ['nhid', String(s.nhid)] : [...(s.gateway ? ['via', s.gateway] : []), ...(s.dev ? ['dev', s.dev] : []), ...(s.prefsrc ? ['src', s.prefsrc] : []), ...(s.onlink ? ['onlink'] : [])];
  return [`-${s.family}`, 'route', 'replace', s.dst, ...nexthop, 'proto', String(PACER_ROUTE_PROTO), 'rto_min', `${s.rtoMinMs}ms`];
}

/** The `ip` arguments that delete one of pacer's routes (and nothing else: proto and metric must match). */
export function deleteArgs(r: Pick<KernelRoute, 'family' | 'dst' | 'metric'>): string[] {
  return [`-${r.family}`, 'route', 'del', r.dst, 'proto', String(PACER_ROUTE_PROTO), ...(r.metric !== undefined ? ['metric', String(r.metric)] : [])];
}
