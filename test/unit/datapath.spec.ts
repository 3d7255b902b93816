import assert from 'node:assert/strict';
import { Datapath, memoryTables, InvalidShaperState, ApplyFailed, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import type { ClassConfig } from '../../shaper-bpf/src/layout.js';

const cfg = (rate: number, parent = 0): ClassConfig => ({ rate_bps: rate, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: parent, flags: 0 });

function state(partial: Partial<ShaperState> = {}): ShaperState {
  return { classes: new Map(), marks: new Map(), cgroups: new Map(), dst4: new Map(), dst6: new Map(), settings: { default_class: 0, flags: 0 }, ...partial };
}

describe('Datapath (in-memory tables)', () => {
  const base = () =>
    state({
      classes: new Map([
        [1, cfg(100e6)],
        [2, cfg(50e6, 1)],
      ]),
      marks: new Map([[7, 2]]),
      dst4: new Map([['10.0.0.0/8', 1]]),
      dst6: new Map([['2001:db8::/32', 2]]),
      cgroups: new Map([[1234n, 1]]),
      settings: { default_class: 1, flags: 0 },
    });

  it('applies a state, reads it back, and a second apply changes nothing', () => {
    const dp = new Datapath(memoryTables());
    const first = dp.apply(base());
    assert.deepEqual(first.changes, { class_slot: 2, class_config: 2, mark_class: 1, cgroup_class: 1, dst4_class: 1, dst6_class: 1, settings: 1 });
    assert.deepEqual(dp.read(), base());
    assert.deepEqual(dp.apply(base()).changes, {});
  });

  it('a rate change rewrites one config entry and keeps the schedule', () => {
    const tables = memoryTables();
    const dp = new Datapath(tables);
    dp.apply(base());
    const slot = tables.slots.entries().get(1)!;
    tables.state.setMany([[slot, { t_last: 42 }]]);
    const next = base();
    next.classes.set(1, cfg(200e6));
    assert.deepEqual(dp.apply(next).changes, { class_config: 1 });
    assert.deepEqual(tables.state.get(slot), { t_last: 42 });
  });

  it('removing a class removes its selectors first, then the class, its schedule and its counters', () => {
    const tables = memoryTables();
    const dp = new Datapath(tables);
    dp.apply(base());
    const slot = tables.slots.entries().get(2)!;
    tables.state.setMany([[slot, { t_last: 9 }]]);
    const next = base();
    next.classes.delete(2);
    next.marks.clear();
    next.dst6.clear();
    assert.deepEqual(dp.apply(next).changes, { mark_class: 1, dst6_class: 1, class_config: 1, class_slot: 1 });
    assert.deepEqual(tables.state.get(slot), { t_last: 0 });
    assert.equal(tables.config.get(slot)!.rate_bps, 0, 'the slot is free');
    assert.equal(tables.slots.entries().has(2), false);
    assert.deepEqual(dp.read(), next);
  });

  it('refuses an invalid state with every problem named, and changes nothing', () => {
    const dp = new Datapath(memoryTables());
    dp.apply(base());
    const bad = base();
    bad.classes.set(3, cfg(0));
    bad.classes.set(4, cfg(500e9));
    bad.classes.set(5, cfg(1e6, 99));
    bad.marks.set(8, 42);
    bad.dst4.set('2001:db8::/32', 1);
    bad.settings = { default_class: 77, flags: 0 };
    assert.throws(
      () => dp.apply(bad),
      (err: unknown) => {
        assert.ok(err instanceof InvalidShaperState);
        assert.equal(err.problems.length, 6, err.message);
        assert.match(err.message, /rate 0 bit\/s/);
        assert.match(err.message, /rate 500000000000 bit\/s/);
        assert.match(err.message, /parent 99/);
        return true;
      },
    );
    assert.deepEqual(dp.read(), base());
  });

  it('refuses a parent cycle', () => {
    const dp = new Datapath(memoryTables());
    assert.throws(() => dp.apply(state({ classes: new Map([[1, cfg(1e6, 2)], [2, cfg(1e6, 1)]]) })), /cycle/);
  });

  it('when a map is full halfway, undoes every change of the apply', () => {
    const dp = new Datapath(memoryTables(3));
    dp.apply(base());
    const bigger = base();
    bigger.classes.set(1, cfg(300e6));
    bigger.marks.set(8, 1);
    bigger.marks.set(9, 1);
    bigger.marks.set(10, 2); // mark_class holds 3: the 4th entry fails
    assert.throws(() => dp.apply(bigger), (err: unknown) => err instanceof ApplyFailed && err.rolledBack && /mark_class/.test(err.message) && /undone/.test(err.message));
    assert.deepEqual(dp.read(), base());
  });

  it('allocates the lowest free slots in class id order, and a rollback gives new slots back', () => {
    const tables = memoryTables(3);
    const dp = new Datapath(tables);
    dp.apply(base());
    assert.deepEqual(tables.slots.entries(), new Map([[1, 1], [2, 2]]));
    const bigger = base();
    bigger.classes.set(5, cfg(1e6));
    bigger.marks.set(8, 5);
    bigger.marks.set(9, 5);
    bigger.marks.set(10, 5); // mark_class holds 3: fails after class 5 got slot 3
    const gen = tables.settings.entries().get(0)!.generation;
    assert.throws(() => dp.apply(bigger), (err: unknown) => err instanceof ApplyFailed && err.rolledBack);
    assert.deepEqual(tables.slots.entries(), new Map([[1, 1], [2, 2]]), 'slot allocations restored');
    assert.equal(tables.config.get(3)!.rate_bps, 0);
    assert.ok(tables.settings.entries().get(0)!.generation > gen, 'the caches forget the undone apply');
    assert.deepEqual(dp.read(), base());
  });

  it('refuses more classes than slots, naming class_config, and changes nothing', () => {
    const dp = new Datapath(memoryTables(), { slots: 3 });
    dp.apply(base());
    const more = base();
    more.classes.set(3, cfg(1e6));
    assert.throws(() => dp.apply(more), (err: unknown) => err instanceof ApplyFailed && err.rolledBack && /class_config is full/.test(err.message));
    assert.deepEqual(dp.read(), base());
  });
});
