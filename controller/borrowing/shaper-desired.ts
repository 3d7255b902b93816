/**
 * An interface's desired shaper state over time: the API's classes for this host, with the
 * effective rates of the borrowing loop. Every `intervalMs` the interface's stats maps are read
 * and the allocation recomputed; a change of classes recomputes it at once with the demand known
 * so far. The first time, the allocation the kernel enforces is adopted (a restarted agent keeps
 * the previous one's borrowed rates until it has measured an interval). Repeats are not dropped
 * here: the reconciler drops them (a tick whose rates did not move enough yields the same state,
 * so nothing is applied).
 */
import { combineLatest, interval, map, startWith, tap, type Observable } from 'rxjs';
import type { ClassRecord } from '../../api/contract/class.js';
import type { Datapath, ShaperState } from '../../shaper-bpf/src/datapath.js';
import type { TreeClass } from '../allocation/allocate.js';
import type { Logger } from '../config/module.js';
import { desiredState, type DesiredState, type Inventory } from '../desired/desired-state.js';
import type { Desired } from '../reconciler/reconciler.js';
import { classNamesOf } from '../reconciler/snapshot-names.js';
import { Borrower } from './borrower.js';

export interface ShaperDesiredOptions {
  labels: Record<string, string>;
  inventory: Inventory;
  datapath: Pick<Datapath, 'stats' | 'read'>;
  /** 0: no borrowing (every class at its rate). */
  intervalMs: number;
  borrower?: Borrower;
  log?: Pick<Logger, 'warn' | 'debug'>;
  now?: () => number;
  /**
   * The state of a class list at the classes' own rates (default: desiredState with `labels` and
   * `inventory`); the agent passes one shared with the other consumers of the list (DesiredStates).
   */
  atOwnRates?: (classes: readonly ClassRecord[]) => DesiredState;
  /** Each computed desired state (its class errors go to the status). */
  onDesired?: (d: DesiredState) => void;
}

/** The classes of an enforced state as a tree for the allocation: guarantees from the state, ceil and weight from the API. */
export function borrowingTree(shaper: ShaperState, classes: readonly ClassRecord[]): TreeClass[] {
  const byId = new Map(classes.map((c) => [c.id, c]));
  return [...shaper.classes].map(([id, cfg]) => {
    const c = byId.get(id)!;
    return { id, parentId: cfg.parent_id, rate: cfg.rate_bps, ceil: Math.max(cfg.rate_bps, c.ceil ?? cfg.rate_bps), weight: c.weight };
  });
}

/**
 * The first allocation is the one the kernel enforces, if it fits the tree (Borrower.adopt). Once
 * the borrower has published one, nothing is adopted any more and the maps are not read: during
 * a burst every new class list came here, and each read of the whole Datapath was garbage.
 */
function adoptEnforced(borrower: Borrower, tree: TreeClass[], o: ShaperDesiredOptions): void {
  if (!borrower.adopting) return;
  try {
    const enforced = new Map([...o.datapath.read().classes].map(([id, c]) => [id, c.rate_bps]));
    borrower.adopt(tree, enforced);
  } catch (err) {
    o.log?.warn({ err: (err as Error).message }, 'could not read the enforced rates; borrowing starts from the guarantees');
  }
}

export function shaperDesired$(budgets$: Observable<{ revision: number; classes: readonly ClassRecord[] }>, o: ShaperDesiredOptions): Observable<Desired<ShaperState>> {
  const borrower = o.borrower ?? new Borrower();
  const now = o.now ?? Date.now;
  const tick$ =
    o.intervalMs > 0
      ? interval(o.intervalMs).pipe(
          tap(() => {
            try {
              borrower.sample(now(), o.datapath.stats().classes);
            } catch (err) {
              o.log?.warn({ err: (err as Error).message }, 'could not read the stats maps; borrowing keeps the last allocation');
            }
          }),
          startWith(-1),
        )
      : [-1];
  // The state at the classes' own rates, once per change of classes: the tree and the guarantees.
  let base: { classes: readonly ClassRecord[]; d: DesiredState; tree: TreeClass[]; names: ReadonlyMap<number, string> } | undefined;
  return combineLatest([budgets$, tick$]).pipe(
    map(([b]) => {
      if (base?.classes !== b.classes) {
        const d = o.atOwnRates?.(b.classes) ?? desiredState(b.classes, o.labels, o.inventory);
        // Borrowing changes rates only, never which classes are enforced: their names go with the classes.
        base = { classes: b.classes, d, tree: borrowingTree(d.shaper, b.classes), names: classNamesOf(b.classes, d.shaper.classes.keys()) };
        if (o.intervalMs > 0) adoptEnforced(borrower, base.tree, o);
      }
      let d = base.d;
      if (o.intervalMs > 0) {
        const rates = borrower.rates(base.tree);
        // Only classes that borrow need a different state; all at their rate → the base state.
        if (base.tree.some((c) => rates.get(c.id) !== c.rate)) d = desiredState(b.classes, o.labels, o.inventory, rates);
      }
      o.onDesired?.(d);
      return { revision: b.revision, state: d.shaper, names: base.names };
    }),
  );
}
