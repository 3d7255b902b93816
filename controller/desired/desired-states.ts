/**
 * One desired state per class list and interface mode, shared by whoever follows the same list:
 * each interface's shaper (at the classes' own rates), route tuning, and TCP tuning on a host
 * without interfaces. Each used to compute desiredState() on every new list: at 10,000 classes the
 * route tuning's copy alone doubled the work and the garbage of every pass (docs/benchmarks.md,
 * bench:agent burst). Kept per list object (a WeakMap): a list no consumer holds any more goes
 * with its states.
 */
import type { ClassRecord } from '../../api/contract/class.js';
import type { RouteState } from '../datapath/route-plan.js';
import { desiredState, type DesiredState, type Inventory } from './desired-state.js';

export class DesiredStates {
  private readonly byList = new WeakMap<readonly ClassRecord[], Map<boolean, DesiredState>>();

  constructor(
    private readonly labels: Record<string, string>,
    private readonly inventoryFor: (fq: boolean) => Inventory,
  ) {}

  /** The state of `classes` at their own rates on an interface with fq (shaping) or without (policing). */
  at(classes: readonly ClassRecord[], fq: boolean): DesiredState {
    let states = this.byList.get(classes);
    if (!states) this.byList.set(classes, (states = new Map()));
    let d = states.get(fq);
    if (!d) states.set(fq, (d = desiredState(classes, this.labels, this.inventoryFor(fq))));
    return d;
  }

  /**
   * The routes of `classes`. They do not depend on the mode (a route is a tuned class's prefix;
   * fq changes horizons and pacing only), so a state already computed for either mode is used.
   */
  routes(classes: readonly ClassRecord[]): RouteState {
    const known = this.byList.get(classes)?.values().next();
    return known && !known.done ? known.value.routes : this.at(classes, true).routes;
  }
}
