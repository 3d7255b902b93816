import assert from 'node:assert/strict';
import fc from 'fast-check';
import { allocate, effectiveRates, type Child } from '../../controller/allocation/allocate.js';

/** What the children use of the parent: each its effective rate, but no more than its demand. */
const used = (a: Map<number, number>, children: Child[]) => children.reduce((s, c) => s + Math.min(a.get(c.id)!, c.demand), 0);

/** A parent and children whose guarantees fit in it (the API's normal case). */
const arbFamily = fc
  .array(
    fc.record({
      rate: fc.integer({ min: 1_000, max: 1e9 }),
      headroom: fc.integer({ min: 0, max: 2e9 }),
      weight: fc.integer({ min: 1, max: 1000 }),
      demand: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4e9 })),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .chain((list) => {
    const children: Child[] = list.map((c, i) => ({ id: i + 1, rate: c.rate, ceil: c.rate + c.headroom, weight: c.weight, demand: c.demand }));
    const guaranteed = children.reduce((s, c) => s + c.rate, 0);
    return fc.record({ parent: fc.integer({ min: guaranteed, max: guaranteed + 5e9 }), children: fc.constant(children) });
  });

describe('allocate (borrowing)', () => {
  it('an idle sibling lends its share, its guarantee included: the busy one rises to its ceil', () => {
    const a = allocate(100, [
      { id: 1, rate: 30, ceil: 100, weight: 1, demand: 1000 },
      { id: 2, rate: 30, ceil: 100, weight: 1, demand: 0 },
    ]);
    // The idle one keeps its guarantee as its rate, ready for its first packet.
    assert.deepEqual([...a], [[1, 100], [2, 30]]);
  });

  it('a light sibling counts for what it uses', () => {
    const a = allocate(100, [
      { id: 1, rate: 30, ceil: 100, weight: 1, demand: 1000 },
      { id: 2, rate: 30, ceil: 100, weight: 1, demand: 12 },
    ]);
    assert.deepEqual([...a], [[1, 88], [2, 30]]);
  });

  it('two busy siblings split the spare by weight', () => {
    const a = allocate(100, [
      { id: 1, rate: 10, ceil: 100, weight: 3, demand: 1000 },
      { id: 2, rate: 10, ceil: 100, weight: 1, demand: 1000 },
    ]);
    assert.deepEqual([...a], [[1, 70], [2, 30]]);
  });

  it('a borrower that wants little leaves the rest to the others', () => {
    const a = allocate(100, [
      { id: 1, rate: 10, ceil: 100, weight: 1, demand: 15 },
      { id: 2, rate: 10, ceil: 100, weight: 1, demand: 1000 },
    ]);
    assert.deepEqual([...a], [[1, 15], [2, 85]]);
  });

  it('an oversubscribed parent: everyone gets the guarantee and nothing more', () => {
    const a = allocate(50, [
      { id: 1, rate: 40, ceil: 100, weight: 1, demand: 1000 },
      { id: 2, rate: 40, ceil: 100, weight: 1, demand: 1000 },
    ]);
    assert.deepEqual([...a], [[1, 40], [2, 40]]);
  });

  it('effectiveRates walks the tree: grandchildren split their parent’s effective rate', () => {
    const rates = effectiveRates(
      [
        { id: 1, parentId: 0, rate: 100, ceil: 100, weight: 1 },
        { id: 2, parentId: 1, rate: 20, ceil: 100, weight: 1 },
        { id: 3, parentId: 1, rate: 20, ceil: 100, weight: 1 },
        { id: 4, parentId: 2, rate: 10, ceil: 100, weight: 1 },
      ],
      new Map([[2, 1000], [4, 1000]]),
    );
    // 3 is idle: 2 borrows its guarantee too, and 4 everything 2 has.
    assert.deepEqual([...rates].sort((a, b) => a[0] - b[0]), [[1, 100], [2, 100], [3, 20], [4, 100]]);
  });

  it('property: what the children use never exceeds the parent; never below rate, never above ceil, integers', () => {
    fc.assert(
      fc.property(arbFamily, ({ parent, children }) => {
        const a = allocate(parent, children);
        assert.ok(used(a, children) <= parent);
        for (const c of children) {
          const x = a.get(c.id)!;
          assert.ok(Number.isInteger(x));
          assert.ok(x >= c.rate, 'below rate');
          assert.ok(x <= c.ceil, 'above ceil');
          assert.ok(x <= Math.max(c.rate, c.demand), 'above demand');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: weighted max-min fair — a child short of its want has the largest extra per weight, and spare is only left when everyone is satisfied', () => {
    fc.assert(
      fc.property(arbFamily, ({ parent, children }) => {
        const a = allocate(parent, children);
        const want = (c: Child) => Math.max(c.rate, Math.min(c.demand, c.ceil));
        const norm = (c: Child) => (a.get(c.id)! - c.rate) / c.weight;
        // Rounding down costs each child under 1 bit/s.
        const slack = children.length;
        const short = children.filter((c) => a.get(c.id)! < want(c) - 1);
        if (short.length > 0) assert.ok(used(a, children) >= parent - slack, 'spare left while someone wants more');
        for (const i of short) for (const j of children) assert.ok(norm(j) <= norm(i) + 1 / i.weight + 1 / j.weight + 1e-9, `child ${j.id} has more per weight than short child ${i.id}`);
      }),
      { numRuns: 2000 },
    );
  });
});
