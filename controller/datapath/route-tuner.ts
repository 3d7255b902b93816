/**
 * pacer's rto_min routes in the kernel (see route-plan.ts for what they are and when a prefix is
 * refused), in the network namespace of the agent's interfaces (--netns, else its own). Driven
 * through iproute2's `ip -j`, like the qdiscs: the kernel's own validation and messages, and no
 * netlink code of ours to get wrong. Synchronous (spawnSync), because the reconciler's apply is:
 * it runs on changes and on each resync, two reads and only the commands that change something.
 *
 * Refusals are per class, as the plan decides them, or as the kernel answers a command: a class
 * whose route the kernel refuses gets its routes of this apply undone and an error; the others
 * are applied. A failure that is not about one class (ip cannot run, a delete that fails) fails
 * the apply, which the reconciler retries.
 */
import { spawnSync } from 'node:child_process';
import type { ClassError } from '../desired/desired-state.js';
import type { ApplyReport } from '../../shaper-bpf/src/steps.js';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import { deleteArgs, parseRoutes, planRoutes, putArgs, PACER_ROUTE_PROTO, type Family, type KernelRoute, type RouteSpec, type RouteState } from './route-plan.js';

export const ROUTE_TUNER = Symbol('RouteTuner');

export interface RouteTuner {
  /** Makes pacer's routes equal to the desired state; refusals go to classErrors(). */
  apply(desired: RouteState): ApplyReport;
  /** Why a class's routes are not in place, as of the last apply. */
  classErrors(): ClassError[];
}

interface IpResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class KernelRouteTuner implements RouteTuner {
  private errors: ClassError[] = [];

  constructor(private readonly o: { netns?: string } = {}) {}

  private ip(args: readonly string[]): IpResult {
    const [cmd, argv] = this.o.netns === undefined ? ['ip', args] : ['nsenter', [`--net=${netnsPath(this.o.netns)}`, 'ip', ...args]];
    const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 15_000 });
    if (r.error) throw new Error(`cannot run ip ${args.join(' ')}: ${r.error.message}`);
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.trim() || (r.signal ? `killed by ${r.signal}` : '(no output)') };
  }

  private where(): string {
    return this.o.netns === undefined ? 'the agent\'s network namespace' : `netns ${this.o.netns}`;
  }

  /** The main table of one family; throws with ip's message. */
  readFamily(family: Family): KernelRoute[] {
    const args = [`-${family}`, '-N', '-d', '-j', 'route', 'show', 'table', 'main'];
    const r = this.ip(args);
    if (r.code !== 0) throw new Error(`\`ip ${args.join(' ')}\` failed in ${this.where()} (exit ${r.code}): ${r.stderr}`);
    return parseRoutes(r.stdout, family);
  }

  /** pacer's own routes (proto 112), both families. */
  readOwn(): KernelRoute[] {
    return ([4, 6] as const).flatMap((f) => this.readOrNone(f).routes).filter((r) => r.protocol === PACER_ROUTE_PROTO);
  }

  private readOrNone(family: Family): { routes: KernelRoute[]; error?: string } {
    try {
      return { routes: this.readFamily(family) };
    } catch (err) {
      // IPv6 disabled on the host, for instance: its prefixes are refused, IPv4 goes on.
      return { routes: [], error: (err as Error).message };
    }
  }

  apply(desired: RouteState): ApplyReport {
    const v4 = this.readOrNone(4);
    const v6 = this.readOrNone(6);
    if (v4.error !== undefined && v6.error !== undefined) throw new Error(v4.error);
    const plan = planRoutes([...v4.routes, ...v6.routes], desired, { ...(v4.error ? { 4: v4.error } : {}), ...(v6.error ? { 6: v6.error } : {}) });
    const current = [...v4.routes, ...v6.routes].filter((r) => r.protocol === PACER_ROUTE_PROTO);
    const classErrors = new Map(plan.classErrors);
    let put = 0;

    // Per class: all of its routes, or none of this apply's changes (undone in reverse).
    const byClass = new Map<number, RouteSpec[]>();
    for (const s of plan.put) byClass.set(s.classId, [...(byClass.get(s.classId) ?? []), s]);
    for (const [classId, specs] of byClass) {
      const done: RouteSpec[] = [];
      for (const s of specs) {
        const r = this.ip(putArgs(s));
        if (r.code === 0) {
          done.push(s);
          continue;
        }
        classErrors.set(classId, { class: s.className, error: `route rto_min for ${s.dst}: the kernel refused \`ip ${putArgs(s).join(' ')}\`: ${r.stderr}` });
        for (const d of done.reverse()) this.undo(d, current);
        done.length = 0;
        break;
      }
      put += done.length;
    }

    // Wanted by no class (or refused now): pacer's routes for them go.
    const gone = new Set(plan.remove);
    for (const [classId] of classErrors) {
      for (const r of current) if (desired.get(r.dst)?.classId === classId) gone.add(r);
    }
    const failures: string[] = [];
    for (const r of gone) {
      const res = this.ip(deleteArgs(r));
      if (res.code !== 0 && !/No such process/.test(res.stderr)) failures.push(`\`ip ${deleteArgs(r).join(' ')}\`: ${res.stderr}`);
    }
    this.errors = [...classErrors.values()];
    if (failures.length > 0) throw new Error(`could not remove pacer's routes in ${this.where()}: ${failures.join('; ')}`);
    const changes: Record<string, number> = {};
    if (put > 0) changes.routes_put = put;
    if (gone.size > 0) changes.routes_deleted = gone.size;
    return { changes };
  }

  /** Puts back what pacer had for the prefix before this apply (or nothing). */
  private undo(s: RouteSpec, before: KernelRoute[]): void {
    const old = before.find((r) => r.dst === s.dst && r.family === s.family);
    if (old && old.rtoMinMs !== undefined) this.ip(putArgs({ ...old, rtoMinMs: old.rtoMinMs, classId: s.classId, className: s.className }));
    else this.ip(deleteArgs({ family: s.family, dst: s.dst, metric: undefined }));
  }

  classErrors(): ClassError[] {
    return this.errors;
  }

  /** `pacer agent teardown`: deletes every route of pacer's (proto 112); returns how many. */
  uninstall(): number {
    const own = this.readOwn();
    const failures: string[] = [];
    for (const r of own) {
      const res = this.ip(deleteArgs(r));
      if (res.code !== 0 && !/No such process/.test(res.stderr)) failures.push(`\`ip ${deleteArgs(r).join(' ')}\`: ${res.stderr}`);
    }
    if (failures.length > 0) throw new Error(`could not remove pacer's routes in ${this.where()}: ${failures.join('; ')}`);
    return own.length;
  }
}
