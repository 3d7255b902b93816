/**
 * The borrowing loop's state for one interface: measured usage per class (from the stats maps)
 * turned into demand, and demand turned into effective rates with `effectiveRates`.
 *
 * - Usage is bytes/s since the previous sample, counted at the leaf (the data plane counts a
 *   packet at its own class only), so a class's usage is its own plus its descendants'.
 * - Smoothing, fast up and slow down: a rise is taken at once (a class that starts sending gets
 *   its share within one interval), a fall is an EWMA (`decay` of the gap per interval), so a
 *   short dip does not give away what a busy class holds. A class that passed nothing for
 *   `idleAfter` (3) intervals in a row is idle: its usage is 0, not the tail of the EWMA, so what
 *   it held goes back whole (a sibling reaches its ceil exactly, not a few kbit/s short).
 * - A class is *demanding* when its smoothed usage is at least `saturation` (95%) of the
 *   effective rate it had during the interval, or when its horizon drops or CE marks grew and it
 *   used at least half of that rate (under policing, and for senders that ignore pacing, the
 *   excess is dropped, not counted; an ECN sender backs off at each mark, so it may never fill its
 *   rate while it wants more). A parent is demanding when one of its children is. Delayed packets
 *   alone do not make a class demanding (its ceil): pacing delays packets of a bursty sender far
 *   below its rate too. Under a full parent they do claim its guarantee (squeezed, below).
 * - Hysteresis: a class demanding at the previous allocation stays demanding while its usage
 *   still rises (it is growing into a rate it was just given: a TCP flow raised from 10 to 20
 *   Mbit/s under a busy parent took more than one interval to fill it in the VM tier) or its
 *   smoothed usage is at least `release` (75%) of its rate in force (a TCP flow's one-second
 *   throughput dips now and then: a child at 20 Mbit/s read as ~12 for one interval). Without
 *   this either one hands the class's rate to a busy sibling and it takes seconds to win it
 *   back; a lone busy child fell from 40 to 29 and back. HTB guards its class modes the same way
 *   (`htb_hysteresis`, net/sched/sch_htb.c). The price: a demanding class that slows down a
 *   little (not below 75%) keeps its rate until the fall-smoothing takes it under, a few
 *   intervals; one that stops gives it back in one, one that halves in two.
 * - Demand: a demanding class wants its ceil; any other wants its smoothed usage × `headroom`
 *   (110%), so it has room to grow and a class using less than its guarantee keeps the guarantee.
 * - Squeezed by its parent: a class that is active in the interval (it passed packets, or had
 *   some dropped) and held back there — its horizon drops grew, or its packets were delayed (the
 *   stats' `delayed` counter grew) — under a parent that used at least `saturation` of its own
 *   rate, wants at least its guarantee. The parent's schedule is shared first come, first served,
 *   so while a sibling holds a borrowed rate a class waking up can be held far below its guarantee
 *   by the parent alone: under policing its packets are dropped, under fq they wait behind the
 *   sibling's packets queued with departures far ahead, its TCP sees huge RTTs and stays far
 *   below half its rate (so it never looks demanding). The full parent says why. It gets its
 *   guarantee back in one allocation, instead of 10% more per interval, or never. The price: an
 *   active class under a full parent keeps its whole guarantee counted against the parent even
 *   when its delays are its own bursts (guarantees are guarantees, as in HTB), so its siblings
 *   borrow a little less than HTB would lend. (Drops or delays under a parent with room are the
 *   class's own bursts: more rate would not help it, so nothing changes.)
 * - A restarted agent adopts the allocation the kernel enforces (`adopt`) and keeps it until an
 *   interval has been measured: a restart neither drops a borrowed rate to the guarantee for a
 *   second nor writes anything.
 * - No flapping: a new allocation is published only when some class's effective rate moves by
 *   more than `threshold` (2%) from the published one, or the tree (ids, parents, rates, ceils,
 *   weights) changed, or the allocation has settled: every rate within `settled` (0.1%) of the
 *   previous interval's allocation while some rate is more than that away from the published one
 *   (so a steady state ends exactly where the allocation says, not up to 2% short, while noisy
 *   traffic, whose allocation moves from interval to interval, is not re-applied). The whole
 *   allocation is kept or replaced as one, so the published rates are always one allocation:
 *   never below rate, above ceil, or more than the parent.
 */
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import { childrenOf, effectiveRates, type TreeClass } from '../allocation/allocate.js';

export interface BorrowerOptions {
  saturation?: number;
  release?: number;
  headroom?: number;
  decay?: number;
  threshold?: number;
  settled?: number;
  idleAfter?: number;
}

interface Sample {
  atMs: number;
  bytes: number;
  drops: number;
  delayed: number;
  marks: number;
}

export class Borrower {
  private readonly o: Required<BorrowerOptions>;
  /** Counters at the previous sample, per class (leaf counters). */
  private last = new Map<number, Sample>();
  /** Smoothed usage of the class's own traffic, bits/s; absent: 0. */
  private usage = new Map<number, number>();
  /**
   * Classes held back in the last interval: their horizon drops grew, or they passed packets and
   * some of them were delayed (a departure in the future). Squeezed if their parent is full.
   */
  private held = new Set<number>();
  /** Classes told to slow down in the last interval: their horizon drops or CE marks grew. */
  private slowed = new Set<number>();
  /** Classes whose measured usage in the last interval was above their smoothed usage before it. */
  private rising = new Set<number>();
  /** Intervals in a row in which the class passed nothing, for classes whose usage is not 0 yet. */
  private quiet = new Map<number, number>();
  private published?: { tree: string; rates: Map<number, number> };
  /** The allocation computed at the previous call of rates(), published or not. */
  private previous?: { tree: string; rates: Map<number, number> };
  /** Whether an interval between two readings has been measured yet. */
  private measured = false;
  /** Classes that were demanding at the previous call of rates() (for the hysteresis). */
  private wasDemanding = new Set<number>();

  constructor(o: BorrowerOptions = {}) {
    this.o = { saturation: 0.95, release: 0.75, headroom: 1.1, decay: 0.5, threshold: 0.02, settled: 0.001, idleAfter: 3, ...o };
  }

  /** Takes one reading of the stats maps (class id → counters), at `nowMs`. */
  sample(nowMs: number, stats: ReadonlyMap<number, Pick<ClassStats, 'bytes' | 'horizon_drops' | 'delayed'> & Partial<Pick<ClassStats, 'ce_marks'>>>): void {
    const next = new Map<number, Sample>();
    const slowed = new Set<number>();
    const held = new Set<number>();
    const rising = new Set<number>();
    const usage = new Map<number, number>();
    const quiet = new Map<number, number>();
    for (const [id, s] of stats) {
      const cur = { atMs: nowMs, bytes: s.bytes, drops: s.horizon_drops, delayed: s.delayed, marks: s.ce_marks ?? 0 };
      next.set(id, cur);
      const prev = this.last.get(id);
      // A first reading, or counters that went back (the slot was freed and reused): a new baseline.
      if (!prev || cur.bytes < prev.bytes || cur.drops < prev.drops || cur.delayed < prev.delayed || cur.marks < prev.marks || nowMs <= prev.atMs) continue;
      const measured = ((cur.bytes - prev.bytes) * 8 * 1000) / (nowMs - prev.atMs);
      this.measured = true;
      const old = this.usage.get(id) ?? 0;
      const q = measured === 0 ? (this.quiet.get(id) ?? 0) + 1 : 0;
      const u = q >= this.o.idleAfter ? 0 : measured >= old ? measured : old + this.o.decay * (measured - old);
      // Kept for the classes that use something (absent is 0): with usage 0 the quiet count no
      // longer matters, and most of 10,000 classes are idle at any time.
      if (u !== 0) {
        usage.set(id, u);
        if (q > 0) quiet.set(id, q);
      }
      if (measured > old) rising.add(id);
      if (cur.drops > prev.drops || cur.marks > prev.marks) slowed.add(id);
      if (cur.drops > prev.drops || (cur.bytes > prev.bytes && cur.delayed > prev.delayed)) held.add(id);
    }
    this.last = next;
    this.usage = usage;
    this.quiet = quiet;
    this.slowed = slowed;
    this.held = held;
    this.rising = rising;
  }

  /**
   * Takes the rates the kernel enforces (class id → rate) as the published allocation for `tree`,
   * before anything is published: a restarted agent finds the previous agent's allocation in the
   * maps (or its snapshot) and keeps it until an interval has been measured. Adopted only if it is
   * an allocation this tree allows: every class within rate..ceil, and under each parent the
   * classes above their guarantee (the borrowers) together within the parent's rate. Otherwise
   * (classes changed while the agent was down) nothing is adopted and the guarantees apply.
   */
  adopt(tree: readonly TreeClass[], enforced: ReadonlyMap<number, number>): boolean {
    if (!this.adopting) return false;
    const rates = new Map<number, number>();
    for (const c of tree) {
      const r = enforced.get(c.id);
      if (r === undefined || r < c.rate || r > c.ceil || (c.parentId === 0 && r !== c.rate)) return false;
      rates.set(c.id, r);
    }
    for (const [parentId, kids] of shapeOf(tree).kids) {
      if (parentId === 0) continue;
      const borrowed = kids.filter((k) => rates.get(k.id)! > k.rate).reduce((sum, k) => sum + rates.get(k.id)!, 0);
      if (borrowed > (rates.get(parentId) ?? 0)) return false;
    }
    this.published = { tree: shapeOf(tree).key, rates };
    return true;
  }

  /** Whether adopt() can still take an allocation: nothing published yet (so a caller need not read the enforced rates after that). */
  get adopting(): boolean {
    return this.published === undefined;
  }

  /** Smoothed usage of a class and its descendants, bits/s (for logs and tests). */
  usageOf(tree: readonly TreeClass[]): Map<number, number> {
    const { kids } = shapeOf(tree);
    const total = new Map<number, number>();
    const sum = (id: number): number => {
      const v = (this.usage.get(id) ?? 0) + (kids.get(id) ?? []).reduce((s, k) => s + sum(k.id), 0);
      total.set(id, v);
      return v;
    };
    for (const root of kids.get(0) ?? []) sum(root.id);
    return total;
  }

  /**
   * usageOf, only for the classes whose subtree used something (absent: 0): the busy classes and
   * their ancestors, summed as usageOf sums (a child's total after the class's own usage, children
   * in tree order; skipping an idle child adds nothing), so the numbers are the same to the bit.
   * An allocation at 10,000 mostly idle classes thus walks the few busy ones, not the whole tree.
   */
  private busySubtrees(shape: TreeShape): Map<number, number> {
    const busy = new Set<number>();
    for (const [id, u] of this.usage) {
      if (u === 0) continue;
      // Up the parent chain until a class already marked (a class no longer in the tree marks nothing).
      for (let c = shape.byId.get(id); c !== undefined && !busy.has(c.id); c = c.parentId === 0 ? undefined : shape.byId.get(c.parentId)) busy.add(c.id);
    }
    const total = new Map<number, number>();
    const sum = (id: number): number => {
      let children = 0;
      for (const k of shape.kids.get(id) ?? []) if (busy.has(k.id)) children += sum(k.id);
      const v = (this.usage.get(id) ?? 0) + children;
      total.set(id, v);
      return v;
    };
    for (const root of shape.kids.get(0) ?? []) if (busy.has(root.id)) sum(root.id);
    return total;
  }

  /** The effective rates to enforce for `tree` now: the published ones unless they moved enough. */
  rates(tree: readonly TreeClass[]): Map<number, number> {
    const shape = shapeOf(tree);
    const key = shape.key;
    const current = this.published?.tree === key ? this.published.rates : undefined;
    // Adopted, and nothing measured since: keep what is enforced.
    if (current && !this.measured) return current;
    const usage = this.busySubtrees(shape);
    const { kids, byId } = shape;
    // The rate in force during the interval (the published one, also across a tree change).
    const inForce = (c: TreeClass) => Math.min(c.ceil, Math.max(c.rate, this.published?.rates.get(c.id) ?? c.rate));
    // Verdicts of the busy classes. A class whose subtree used nothing is not demanding: each
    // clause needs usage in it (`rising` too: it rose above its smoothed usage).
    const demanding = new Map<number, boolean>();
    const isDemanding = (c: TreeClass): boolean => {
      const u = usage.get(c.id) ?? 0;
      if (u === 0) return false;
      const known = demanding.get(c.id);
      if (known !== undefined) return known;
      const eff = inForce(c);
      // Every child is visited (no short-circuit), so each one's verdict is cached.
      const childDemanding = (kids.get(c.id) ?? []).map(isDemanding).some(Boolean);
      const v =
        u >= this.o.saturation * eff ||
        (this.wasDemanding.has(c.id) && (this.rising.has(c.id) || u >= this.o.release * eff)) ||
        (this.slowed.has(c.id) && u >= 0.5 * eff) ||
        childDemanding;
      demanding.set(c.id, v);
      return v;
    };
    const full = (id: number): boolean => {
      const p = byId.get(id);
      return p !== undefined && (usage.get(id) ?? 0) >= this.o.saturation * inForce(p);
    };
    // Demand per class; absent is 0 (effectiveRates reads it so), as for every idle class.
    const demand = new Map<number, number>();
    for (const c of tree) {
      const headroom = (usage.get(c.id) ?? 0) * this.o.headroom;
      // Its demand is at least its guarantee: max(rate, usage × headroom).
      const squeezed = this.held.has(c.id) && full(c.parentId);
      const d = isDemanding(c) ? c.ceil : squeezed ? Math.max(c.rate, headroom) : headroom;
      if (d !== 0) demand.set(c.id, d);
    }
    this.wasDemanding = new Set([...demanding].filter(([, v]) => v).map(([id]) => id));
    const next = effectiveRates(tree, demand, kids);
    const previous = this.previous?.tree === key ? this.previous.rates : undefined;
    this.previous = { tree: key, rates: next };
    const within = (from: ReadonlyMap<number, number>, part: number) => {
      for (const [id, r] of next) if (Math.abs(r - from.get(id)!) > part * from.get(id)!) return false;
      return true;
    };
    if (current && within(current, this.o.threshold) && !(previous && within(previous, this.o.settled) && !within(current, this.o.settled))) return current;
    this.published = { tree: key, rates: next };
    return next;
  }
}

/** What the allocation needs of a tree besides its classes, made once per tree (trees are never changed in place). */
interface TreeShape {
  /** What identifies the tree for the allocation: ids, parents, rates, ceils, weights. */
  key: string;
  kids: Map<number, TreeClass[]>;
  byId: Map<number, TreeClass>;
}

/**
 * Shapes already made, by tree: the caller passes the same tree (shaper-desired.ts keeps one per
 * change of classes) at every interval, and at 10,000 classes a key is a 300 KB string and the two
 * maps are 10,000 entries each.
 */
const shapes = new WeakMap<readonly TreeClass[], TreeShape>();

function shapeOf(tree: readonly TreeClass[]): TreeShape {
  let shape = shapes.get(tree);
  if (shape === undefined) {
    const key = JSON.stringify([...tree].sort((a, b) => a.id - b.id).map((c) => [c.id, c.parentId, c.rate, c.ceil, c.weight]));
    shapes.set(tree, (shape = { key, kids: childrenOf(tree), byId: new Map(tree.map((c) => [c.id, c])) }));
  }
  return shape;
}
