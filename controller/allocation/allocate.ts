/**
 * Borrowing: how a parent's rate is split among its children. A pure function; the borrowing
 * loop (controller/borrowing/) feeds it measured demand and writes the result as effective rates.
 *
 * Every child keeps its guaranteed `rate` as its effective rate whatever its demand (a guarantee
 * must be there the moment traffic starts). But a child only *counts against* the parent for what
 * it uses: min(rate, demand). What the parent has beyond that (the spare — an idle sibling's
 * guarantee included, as HTB lends it) goes to children whose demand exceeds their rate, weighted
 * max-min fair (progressive filling): each such child's extra grows in proportion to its weight
 * until it reaches what it wants (min(demand, ceil) − rate) or the spare runs out. So no child is
 * above its ceil or its demand, a child that gets less than it wants has the largest
 * extra-per-weight of all, and what the children use (min(effective, demand) each) never exceeds
 * the parent. When an idle child wakes up, the parent's own schedule in the data plane caps the
 * total until the next allocation gives its guarantee back to it.
 *
 * When the guarantees alone exceed the parent (an oversubscribed parent), every child gets its
 * rate and nothing more: the parent's own schedule still caps the aggregate in the data plane.
 * Results are whole bits/s, rounded down.
 */
export interface Child {
  id: number;
  /** Guaranteed, bits/s. */
  rate: number;
  /** Borrowing limit, bits/s (≥ rate; equal = no borrowing). */
  ceil: number;
  /** 1..1000: share of the spare relative to siblings. */
  weight: number;
  /** What the child would use now, bits/s (measured usage with headroom). */
  demand: number;
}

export function allocate(parentRate: number, children: readonly Child[]): Map<number, number> {
  const result = new Map(children.map((c) => [c.id, c.rate]));
  // A child counts against the parent for what it uses, up to its guarantee.
  let spare = parentRate - children.reduce((s, c) => s + Math.min(c.rate, c.demand), 0);
  // Each borrower wants this much above its rate; sorted by want per weight, the first to be satisfied first.
  const borrowers = children
    .map((c) => ({ c, want: Math.max(0, Math.min(c.demand, c.ceil) - c.rate) }))
    .filter((b) => b.want > 0)
    .sort((a, b) => a.want / a.c.weight - b.want / b.c.weight);
  let weights = borrowers.reduce((s, b) => s + b.c.weight, 0);
  // Exact (fractional) filling first; rounding down once at the end keeps every child within
  // 1 bit/s of its fair share and the total within the parent.
  for (const { c, want } of borrowers) {
    if (spare <= 0) break;
    // The level every remaining borrower would reach if the spare were split by weight now.
    const extra = Math.min(want, (spare / weights) * c.weight);
    result.set(c.id, c.rate + extra);
    spare -= extra;
    weights -= c.weight;
  }
  for (const [id, r] of result) result.set(id, Math.floor(r));
  return result;
}

export interface TreeClass {
  id: number;
  parentId: number; // 0 = root
  rate: number;
  ceil: number;
  weight: number;
}

/**
 * Parent id → its children, in tree order (0: the roots). Appended in place: copying a parent's
 * list at each child (`[...list, c]`) made 10,000 root classes cost 50 million element copies
 * (~400 MB of garbage) per call, at every borrowing interval (docs/benchmarks.md, bench:agent burst).
 */
export function childrenOf(tree: readonly TreeClass[]): Map<number, TreeClass[]> {
  const kids = new Map<number, TreeClass[]>();
  for (const c of tree) {
    const list = kids.get(c.parentId);
    if (list) list.push(c);
    else kids.set(c.parentId, [c]);
  }
  return kids;
}

/**
 * Effective rates for a whole tree, top down: a root gets its rate (it has no parent to borrow
 * from); each parent's effective rate is split among its children with `allocate`. Demand of a
 * class is the usage measured at that class (its subtree's traffic passes its schedule); absent
 * is 0. `children`: childrenOf(classes), when the caller keeps it.
 */
export function effectiveRates(classes: readonly TreeClass[], demand: ReadonlyMap<number, number>, children: ReadonlyMap<number, readonly TreeClass[]> = childrenOf(classes)): Map<number, number> {
  const rates = new Map<number, number>();
  const walk = (parentId: number, capacity: number) => {
    const kids = children.get(parentId);
    if (kids === undefined) return; // a leaf: nothing to split (most classes; no Map and arrays made for each)
    const split = allocate(capacity, kids.map((k) => ({ id: k.id, rate: k.rate, ceil: k.ceil, weight: k.weight, demand: demand.get(k.id) ?? 0 })));
    for (const k of kids) {
      rates.set(k.id, split.get(k.id)!);
      walk(k.id, split.get(k.id)!);
    }
  };
  for (const root of children.get(0) ?? []) {
    rates.set(root.id, root.rate);
    walk(root.id, root.rate);
  }
  return rates;
}
