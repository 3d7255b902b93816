import assert from 'node:assert/strict';
import fc from 'fast-check';
import sinon from 'sinon';
import { BehaviorSubject } from 'rxjs';
import type { ClassRecord } from '../../api/contract/class.js';
import { Datapath } from '../../shaper-bpf/src/datapath.js';
import { Borrower } from '../../controller/borrowing/borrower.js';
import { shaperDesired$ } from '../../controller/borrowing/shaper-desired.js';
import { Reconciler, type ReconcileResult } from '../../controller/reconciler/reconciler.js';
import { fakeStatsTables } from '../support/agent-stats.js';
import { record } from './fixtures.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { desiredState } from '../../controller/desired/desired-state.js';

const M = 1_000_000;
const INVENTORY = { fq: true, cgroupRoot: undefined, cgroupIds: () => undefined };
const P = 1, A = 2, B = 3;

function tree(ceilA = 40 * M, ceilB = 40 * M): ClassRecord[] {
  return [
    record('p', P, { rate: 40 * M }),
    record('a', A, { rate: 10 * M, ceil: ceilA, parent: 'p' }),
    record('b', B, { rate: 10 * M, ceil: ceilB, parent: 'p' }),
  ];
}

/**
 * The borrowing loop on an in-memory datapath with fake timers. `run(seconds, offered)` plays
 * traffic: each second every child passes min(offered, its rate in class_config), scaled down to
 * the parent's rate when together they exceed it (the parent's schedule); the excess is dropped
 * (horizon drops). Then the clock advances one second and the loop samples.
 */
function harness(classes: ClassRecord[], noise = () => 1, enforced?: Map<number, number>) {
  const clock = sinon.useFakeTimers({ now: 0 });
  const tables = fakeStatsTables();
  const datapath = new Datapath(tables);
  // What a previous agent left in the maps: these classes at these effective rates.
  if (enforced) datapath.apply(desiredState(classes, {}, INVENTORY, enforced).shaper);
  const budgets$ = new BehaviorSubject({ revision: 1, classes });
  const results: ReconcileResult[] = [];
  const reconciler = new Reconciler({ apply: (s: ReturnType<Datapath['read']>) => datapath.apply(s), resyncMs: 1e9, backoff: { minMs: 100, maxMs: 1000 } });
  const sub = reconciler.run(shaperDesired$(budgets$, { labels: {}, inventory: INVENTORY, datapath, intervalMs: 1000 })).subscribe((r) => results.push(r));
  const rates = () => new Map([...datapath.read().classes].map(([id, c]) => [id, c.rate_bps]));
  const history: Map<number, number>[] = [];
  const run = (seconds: number, offered: Record<number, number>) => {
    for (let i = 0; i < seconds; i++) {
      const r = rates();
      const kids = [A, B].map((id) => ({ id, pass: Math.min(offered[id] ?? 0, r.get(id)!) }));
      const total = kids.reduce((s, k) => s + k.pass, 0);
      const scale = total > r.get(P)! ? r.get(P)! / total : 1;
      for (const k of kids) {
        const passed = k.pass * scale * noise();
        tables.add(k.id, passed / 8, (offered[k.id] ?? 0) > passed * 1.001 ? 10 : 0);
      }
      clock.tick(1000);
      history.push(rates());
    }
    return rates();
  };
  const done = () => {
    sub.unsubscribe();
    clock.restore();
  };
  return { run, rates, results, history, budgets$, done };
}

/**
 * Rates stay within rate..ceil. (Their sum may exceed the parent while a sibling is idle: an idle
 * child keeps its guarantee as its rate and lends it; the parent's schedule caps what passes, and
 * the allocation's own property tests check that what children use never exceeds the parent.)
 */
function assertWithinBounds(classes: ClassRecord[], r: Map<number, number>) {
  assert.equal(r.get(P)!, 40 * M);
  for (const c of classes.filter((c) => c.parent !== null)) {
    assert.ok(r.get(c.id)! >= c.rate, `${c.name} below its rate`);
    assert.ok(r.get(c.id)! <= (c.ceil ?? c.rate), `${c.name} above its ceil`);
  }
}

describe('borrowing loop (fake timers, in-memory datapath)', () => {
  afterEach(() => sinon.restore());

  it('a busy child rises to its ceil while its sibling is idle, and back toward the guarantees when the sibling sends', () => {
    const classes = tree(25 * M);
    const h = harness(classes);
    try {
      assert.deepEqual(h.rates(), new Map([[P, 40 * M], [A, 10 * M], [B, 10 * M]]));
      const busy = h.run(3, { [A]: 100 * M });
      assert.equal(busy.get(A), 25 * M, 'A at its ceil');
      assert.equal(busy.get(B), 10 * M, 'B keeps its guarantee');
      const both = h.run(4, { [A]: 100 * M, [B]: 100 * M });
      assert.equal(both.get(A), 20 * M);
      assert.equal(both.get(B), 20 * M);
      // Schedules kept: a rate change rewrote class_config only (the apply report has no state resets).
      h.history.forEach((r) => assertWithinBounds(classes, r));
    } finally {
      h.done();
    }
  });

  it('with ceil = parent, a lone busy child borrows its idle sibling\'s guarantee too; both busy → 20/20', () => {
    const classes = tree();
    const h = harness(classes);
    try {
      assert.equal(h.run(3, { [A]: 100 * M }).get(A), 40 * M);
      const both = h.run(5, { [A]: 100 * M, [B]: 100 * M });
      assert.deepEqual([both.get(A), both.get(B)], [20 * M, 20 * M]);
      // A goes idle: its use decays, then (3 empty intervals) is 0; B takes what A leaves, up to
      // its ceil exactly; A keeps its guarantee as its rate.
      const bOnly = h.run(8, { [B]: 100 * M });
      assert.equal(bOnly.get(A), 10 * M);
      assert.equal(bOnly.get(B), 40 * M);
      h.history.forEach((r) => assertWithinBounds(classes, r));
    } finally {
      h.done();
    }
  });

  it('a child using less than it is given keeps headroom, not the whole spare', () => {
    const h = harness(tree());
    try {
      const r = h.run(4, { [A]: 15 * M });
      // 15 Mbit/s measured, demand 16.5 Mbit/s: A gets that, not 30.
      assert.ok(r.get(A)! >= 15 * M && r.get(A)! <= 17 * M, `A at ${r.get(A)}`);
    } finally {
      h.done();
    }
  });

  it('steady traffic is not re-applied, and ±1% noise does not flap', () => {
    let n = 0;
    const h = harness(tree(), () => 1 + (n++ % 2 === 0 ? 0.01 : -0.01));
    try {
      h.run(5, { [A]: 100 * M, [B]: 100 * M });
      const applies = h.results.filter((r) => r.ok && r.why === 'change').length;
      h.run(20, { [A]: 100 * M, [B]: 100 * M });
      assert.equal(h.results.filter((r) => r.ok && r.why === 'change').length, applies, 'no apply while the allocation stays within 2%');
    } finally {
      h.done();
    }
  });

  it('a change of classes is applied at once with the guarantees respected (no stale borrowed rate)', () => {
    const h = harness(tree());
    try {
      const both = h.run(5, { [A]: 100 * M, [B]: 100 * M });
      assert.deepEqual([both.get(A), both.get(B)], [20 * M, 20 * M]);
      // B's guarantee goes up to 25 Mbit/s while both are busy: A cannot keep 20 (25 + 20 > 40).
      // The 5 Mbit/s left over is split between the two borrowers: 12.5 + 27.5.
      h.budgets$.next({ revision: 2, classes: tree().map((c) => (c.id === B ? { ...c, rate: 25 * M } : c)) });
      const r = h.rates();
      assert.equal(r.get(B), 27.5 * M);
      assert.equal(r.get(A), 12.5 * M);
    } finally {
      h.done();
    }
  });

  it('a restarted loop adopts the borrowed rates the kernel enforces: no dip to the guarantee, nothing written', () => {
    const classes = tree();
    const h = harness(classes, () => 1, new Map([[P, 40 * M], [A, 40 * M], [B, 10 * M]]));
    try {
      assert.equal(h.rates().get(A), 40 * M);
      h.run(5, { [A]: 100 * M });
      assert.ok(h.history.every((r) => r.get(A) === 40 * M), `A stayed at 40: ${h.history.map((r) => r.get(A)).join(', ')}`);
      assert.ok(h.results.length > 0 && h.results.every((r) => r.ok && Object.keys(r.report.changes).length === 0), `no writes: ${JSON.stringify(h.results.map((r) => r.ok && r.report.changes))}`);
    } finally {
      h.done();
    }
  });

  it('property: under any sequence of offered loads, rates stay within rate..ceil and the parent', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 40 }),
        fc.integer({ min: 10, max: 40 }),
        fc.array(fc.record({ seconds: fc.integer({ min: 1, max: 4 }), a: fc.integer({ min: 0, max: 60 }), b: fc.integer({ min: 0, max: 60 }) }), { minLength: 1, maxLength: 6 }),
        (ca, cb, steps) => {
          const classes = tree(ca * M, cb * M);
          const h = harness(classes);
          try {
            for (const s of steps) h.run(s.seconds, { [A]: s.a * M, [B]: s.b * M });
            h.history.forEach((r) => assertWithinBounds(classes, r));
          } finally {
            h.done();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('borrow interval setting', () => {
  it('defaults to 1 s; PACER_BORROW_INTERVAL_MS and the flag set it; 0 turns it off; 1..99 ms is refused', () => {
    const base = { api: 'http://a:1', iface: ['eth0'] };
    assert.equal(resolveAgentConfig(base, { PACER_TOKEN: 't' }).settings.borrowIntervalMs, 1000);
    assert.equal(resolveAgentConfig(base, { PACER_TOKEN: 't', PACER_BORROW_INTERVAL_MS: '250' }).settings.borrowIntervalMs, 250);
    assert.equal(resolveAgentConfig({ ...base, borrowIntervalMs: 0 }, { PACER_TOKEN: 't', PACER_BORROW_INTERVAL_MS: '250' }).settings.borrowIntervalMs, 0);
    assert.throws(() => resolveAgentConfig({ ...base, borrowIntervalMs: 50 }, { PACER_TOKEN: 't' }), /borrowIntervalMs/);
  });
});

describe('Borrower', () => {
  const t = [
    { id: P, parentId: 0, rate: 40 * M, ceil: 40 * M, weight: 1 },
    { id: A, parentId: P, rate: 10 * M, ceil: 40 * M, weight: 1 },
    { id: B, parentId: P, rate: 10 * M, ceil: 40 * M, weight: 1 },
  ];
  const stats = (a: number, b: number, drops = 0) =>
    new Map([[P, { bytes: 0, horizon_drops: 0, delayed: 0 }], [A, { bytes: a, horizon_drops: drops, delayed: 0 }], [B, { bytes: b, horizon_drops: 0, delayed: 0 }]]);

  it('counters that go back (a reused slot) are a new baseline, not negative usage', () => {
    const b = new Borrower();
    b.sample(0, stats(10e6, 0));
    b.sample(1000, stats(1000, 0));
    assert.equal(b.usageOf(t).get(A), 0);
    b.sample(2000, stats(1000 + 1.25e6, 0));
    assert.equal(b.usageOf(t).get(A), 10 * M);
  });

  it('usage rises at once and falls smoothly; horizon drops make a half-busy class demanding', () => {
    const b = new Borrower();
    b.sample(0, stats(0, 0));
    b.sample(1000, stats(2.5e6, 0)); // 20 Mbit/s
    assert.equal(b.usageOf(t).get(A), 20 * M);
    b.sample(2000, stats(2.5e6, 0)); // idle: half the gap
    assert.equal(b.usageOf(t).get(A), 10 * M);
    assert.equal(b.usageOf(t).get(P), 10 * M, 'a parent counts its children');
    const c = new Borrower();
    c.sample(0, stats(0, 0));
    c.sample(1000, stats(0.75e6, 0, 5)); // 6 Mbit/s of a 10 Mbit/s rate, with drops
    assert.equal(c.rates(t).get(A), 40 * M, 'demanding: its ceil, B being idle');
  });

  it('CE marks make a half-busy class demanding, as horizon drops do: an ECN sender backs off before it fills its rate', () => {
    const marked = (a: number, ce: number) => new Map([...stats(a, 0)].map(([id, s]) => [id, { ...s, ce_marks: id === A ? ce : 0 }]));
    const b = new Borrower();
    b.sample(0, marked(0, 0));
    b.sample(1000, marked(0.75e6, 40)); // 6 Mbit/s of a 10 Mbit/s rate, 40 packets marked CE
    assert.equal(b.rates(t).get(A), 40 * M, 'demanding: its ceil, B being idle');
    const quiet = new Borrower();
    quiet.sample(0, marked(0, 0));
    quiet.sample(1000, marked(0.25e6, 40)); // 2 Mbit/s: below half its rate, marks or not
    assert.equal(quiet.rates(t).get(A), 10 * M);
  });

  it('hysteresis: a demanding child keeps its rate through a one-interval dip and while it grows into a raise, and gives it back when it halves', () => {
    // Both busy at 20/20 (the VM tier's borrowing scenario), then B's TCP reads ~12 Mbit/s for one
    // interval: smoothed 16, 80% of its 20, so it stays demanding and keeps 20.
    const mbit = (x: number) => (x * M) / 8;
    const b = new Borrower();
    let a = 0, bb = 0;
    const second = (at: number, ma: number, mb: number) => b.sample(at, stats((a += mbit(ma)), (bb += mbit(mb))));
    second(0, 0, 0);
    second(1000, 20, 20);
    assert.deepEqual([b.rates(t).get(A), b.rates(t).get(B)], [20 * M, 20 * M]);
    second(2000, 20, 12);
    assert.deepEqual([b.rates(t).get(A), b.rates(t).get(B)], [20 * M, 20 * M], 'the dip costs B nothing');
    second(3000, 20, 20);
    assert.deepEqual([b.rates(t).get(A), b.rates(t).get(B)], [20 * M, 20 * M]);
    // B halves: smoothed 15 is still 75%; one more interval at 10 takes it to 12.5, and A gets the rest.
    second(4000, 20, 10);
    assert.deepEqual([b.rates(t).get(A), b.rates(t).get(B)], [20 * M, 20 * M]);
    second(5000, 20, 10);
    assert.deepEqual([b.rates(t).get(A), b.rates(t).get(B)], [40 * M - Math.floor(12.5 * 1.1 * M), Math.floor(12.5 * 1.1 * M)]);
    // A child just raised, still growing into its rate (10 → 13 of 20), keeps it.
    const c = new Borrower();
    let ca = 0, cb = 0;
    const tick = (at: number, ma: number, mb: number) => c.sample(at, stats((ca += mbit(ma)), (cb += mbit(mb))));
    tick(0, 0, 0);
    tick(1000, 30, 10); // B at its guarantee: demanding, 20/20
    assert.deepEqual([c.rates(t).get(A), c.rates(t).get(B)], [20 * M, 20 * M]);
    tick(2000, 20, 13);
    assert.deepEqual([c.rates(t).get(A), c.rates(t).get(B)], [20 * M, 20 * M], 'rising: B keeps the 20 it grows into');
    tick(3000, 20, 13);
    assert.ok(c.rates(t).get(B)! < 20 * M, 'no longer rising and below 75%: B gives back what it does not use');
    // Without hysteresis (release = saturation) the same one-interval dip hands B's rate to A.
    const plain = new Borrower({ release: 0.95 });
    plain.sample(0, stats(0, 0));
    plain.sample(1000, stats(mbit(20), mbit(20)));
    plain.rates(t);
    plain.sample(2000, stats(mbit(40), mbit(32)));
    assert.ok(plain.rates(t).get(B)! < 20 * M, 'the control: a dip costs B its rate');
  });

  it('a class that passed nothing for 3 intervals is idle: usage 0, not the tail of the average', () => {
    const b = new Borrower();
    b.sample(0, stats(0, 0));
    b.sample(1000, stats(2.5e6, 0)); // 20 Mbit/s
    b.sample(2000, stats(2.5e6, 0));
    b.sample(3000, stats(2.5e6, 0));
    assert.equal(b.usageOf(t).get(A), 5 * M, 'two empty intervals: still decaying');
    b.sample(4000, stats(2.5e6, 0));
    assert.equal(b.usageOf(t).get(A), 0);
    b.sample(5000, stats(2.5e6 + 125, 0)); // 1 kbit/s: not quiet any more
    assert.equal(b.usageOf(t).get(A), 1000);
  });

  it('a steady state ends where the allocation says (within 0.1%), not up to 2% short', () => {
    // A busy (always at its effective rate, so demanding); B falls from 20 Mbit/s to a steady
    // 0.1 Mbit/s trickle. The exact allocation: A = 40 − 10 (its own guarantee counts) − 0.11 (B's
    // demand) + 10 = 39.89 Mbit/s. B's average decays towards 0.1 in ever smaller steps, each under
    // the 2% threshold, so only the settled rule takes A the last stretch.
    const b = new Borrower();
    let bytesA = 0;
    let bytesB = 0;
    b.sample(0, stats(0, 0));
    for (let i = 1; i <= 30; i++) {
      bytesA += (b.rates(t).get(A) ?? 10 * M) / 8;
      bytesB += (i === 1 ? 20 * M : 0.1 * M) / 8;
      b.sample(i * 1000, stats(bytesA, bytesB));
    }
    const a = b.rates(t).get(A)!;
    assert.ok(Math.abs(a - 39.89 * M) <= 0.001 * 39.89 * M, `A at ${a}`);
  });

  it('adopts an enforced allocation only if the tree allows it; keeps it until an interval is measured', () => {
    const rates = (a: number, b: number, p = 40 * M) => new Map([[P, p], [A, a], [B, b]]);
    assert.equal(new Borrower().adopt(t, rates(41 * M, 10 * M)), false, 'above ceil');
    assert.equal(new Borrower().adopt(t, rates(9 * M, 10 * M)), false, 'below rate');
    assert.equal(new Borrower().adopt(t, rates(30 * M, 20 * M)), false, 'the borrowers exceed the parent');
    assert.equal(new Borrower().adopt(t, rates(40 * M, 10 * M, 50 * M)), false, 'a root is at its rate');
    assert.equal(new Borrower().adopt(t, new Map([[P, 40 * M], [A, 40 * M]])), false, 'a class not enforced');
    const b = new Borrower();
    assert.equal(b.adopt(t, rates(40 * M, 10 * M)), true, 'a lone borrower with the idle guarantee lent');
    assert.equal(b.adopt(t, rates(10 * M, 10 * M)), false, 'only before anything is published');
    b.sample(0, stats(0, 0)); // a baseline only: nothing measured yet
    assert.equal(b.rates(t).get(A), 40 * M);
    b.sample(1000, stats(0, 0)); // an idle interval measured: back to the guarantees
    assert.equal(b.rates(t).get(A), 10 * M);
  });

  it('a class held far below its guarantee by a full parent (drops, little usage) gets its guarantee back in one allocation', () => {
    // A small guarantee that borrows up to the parent, and a large one; the parent's schedule is
    // first come, first served, so while A holds 40 a waking B can pass far less than half its rate.
    const lopsided = [
      { id: P, parentId: 0, rate: 40 * M, ceil: 40 * M, weight: 1 },
      { id: A, parentId: P, rate: 2 * M, ceil: 40 * M, weight: 1 },
      { id: B, parentId: P, rate: 38 * M, ceil: 40 * M, weight: 1 },
    ];
    /** Cumulative counters: Mbit passed and drops so far, per child. */
    const at = (a: [number, number], b: [number, number]) =>
      new Map([[P, { bytes: 0, horizon_drops: 0, delayed: 0 }], [A, { bytes: (a[0] * M) / 8, horizon_drops: a[1], delayed: 0 }], [B, { bytes: (b[0] * M) / 8, horizon_drops: b[1], delayed: 0 }]]);
    const squeezed = new Borrower();
    squeezed.sample(0, at([0, 0], [0, 0]));
    squeezed.sample(1000, at([40, 500], [0, 0])); // A alone, policed at 40
    assert.deepEqual([squeezed.rates(lopsided).get(A), squeezed.rates(lopsided).get(B)], [40 * M, 38 * M]);
    squeezed.sample(2000, at([76, 1000], [4, 300])); // the parent full: A 36, B 4 of its 38 with drops
    const r = squeezed.rates(lopsided);
    assert.deepEqual([r.get(A), r.get(B)], [2 * M, 38 * M], 'B counts its whole guarantee against the parent at once');

    // The same drops under a parent with room are B's own bursts: more rate would not help B, A keeps borrowing.
    const bursty = new Borrower();
    bursty.sample(0, at([0, 0], [0, 0]));
    bursty.sample(1000, at([10, 0], [4, 300])); // parent at 14 of 40
    const q = bursty.rates(lopsided);
    assert.ok(q.get(A)! > 30 * M, `A keeps B's unused guarantee: ${q.get(A)}`);
  });
  it('under fq, a class held below its guarantee by a full parent (delayed packets, little usage) gets its guarantee back in one allocation', () => {
    // With fq nothing is dropped: while A holds the parent's whole 40 Mbit/s, its TCP packets wait
    // in fq with departures far ahead, the parent's schedule runs ahead, and a waking B's packets
    // wait behind it; B's TCP sees huge RTTs and passes 2 Mbit/s of its 10 Mbit/s guarantee.
    /** Cumulative counters: Mbit passed and packets delayed so far, per child (no drops). */
    const at = (a: [number, number], b: [number, number]) =>
      new Map([
        [P, { bytes: 0, horizon_drops: 0, delayed: 0 }],
        [A, { bytes: (a[0] * M) / 8, horizon_drops: 0, delayed: a[1] }],
        [B, { bytes: (b[0] * M) / 8, horizon_drops: 0, delayed: b[1] }],
      ]);
    const held = new Borrower();
    held.sample(0, at([0, 0], [0, 0]));
    held.sample(1000, at([40, 3000], [0, 0])); // A alone at 40, paced
    assert.equal(held.rates(t).get(A), 40 * M, 'A borrowed up to its ceil');
    held.sample(2000, at([78, 6000], [2, 150])); // the parent full: A 38, B 2 of its 10, delayed
    const r = held.rates(t);
    assert.ok(r.get(B)! >= 10 * M, `B gets at least its guarantee: ${r.get(B)}`);
    assert.ok(r.get(A)! <= 30 * M, `A gives the parent room for B's guarantee: ${r.get(A)}`);

    // The same delays under a parent with room are B's own bursts: A keeps borrowing.
    const bursty = new Borrower();
    bursty.sample(0, at([0, 0], [0, 0]));
    bursty.sample(1000, at([20, 1500], [2, 150])); // parent at 22 of 40
    const q = bursty.rates(t);
    assert.ok(q.get(A)! >= 20 * M, `A keeps B's unused guarantee: ${q.get(A)}`);
    assert.equal(q.get(B), 10 * M);

    // A class that passed nothing is not held, even if A fills the parent: A keeps the whole 40.
    const idle = new Borrower();
    idle.sample(0, at([0, 0], [0, 0]));
    idle.sample(1000, at([40, 3000], [0, 0]));
    idle.sample(2000, at([80, 6000], [0, 0]));
    assert.equal(idle.rates(t).get(A), 40 * M);
  });
});
