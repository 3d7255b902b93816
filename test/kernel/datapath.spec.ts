/** The Datapath on the real maps of the real object: apply, read back, keep schedules, refuse and roll back. */
import assert from 'node:assert/strict';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { Datapath, InvalidShaperState, ApplyFailed, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import type { ClassConfig } from '../../shaper-bpf/src/layout.js';
import { frame } from '../support/packets.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';

const cfg = (rate: number, parent = 0): ClassConfig => ({ rate_bps: rate, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: parent, flags: 0 });

describe('Datapath on the real maps', function () {
  this.timeout(60_000);
  let eg: EgressObject;
  let pinRoot: string;
  let dp: Datapath;
  const desired = (): ShaperState => ({
    classes: new Map([
      [1, cfg(100e6)],
      [2, cfg(50e6, 1)],
    ]),
    marks: new Map([[7, 2]]),
    cgroups: new Map([[4242n, 1]]),
    dst4: new Map([['10.0.0.0/8', 1]]),
    dst6: new Map([['2001:db8::/32', 2]]),
    settings: { default_class: 0, flags: 0 },
  });

  beforeEach(() => {
    pinRoot = makePinDir();
    eg = EgressObject.load({ pinRoot });
    dp = new Datapath(eg);
  });
  afterEach(() => {
    eg.close();
    removePinDir(pinRoot);
  });

  it('applies a state, reads the same back from the kernel, and a second apply writes nothing', () => {
    dp.apply(desired());
    assert.deepEqual(dp.read(), desired());
    assert.deepEqual(dp.apply(desired()).changes, {});
  });

  it('a rate change keeps the class schedule in the kernel', () => {
    dp.apply(desired());
    eg.setTestClock(5_000_000_000n);
    eg.program.testRun({ data: frame('192.0.2.1'), ctxIn: skbContext({ mark: 7, wireLen: 1500 }) });
    eg.program.testRun({ data: frame('192.0.2.1'), ctxIn: skbContext({ mark: 7, wireLen: 1500 }) });
    const slot = eg.slots.get(2)!;
    const tLast = eg.state.get(slot)!.t_last;
    assert.ok(tLast > 5_000_000_000);
    const next = desired();
    next.classes.set(2, cfg(25e6, 1));
    assert.deepEqual(dp.apply(next).changes, { class_config: 1 });
    assert.equal(eg.state.get(slot)!.t_last, tLast);
    assert.equal(eg.config.get(slot)!.rate_bps, 25e6);
  });

  it('refuses a rate of 0 or above the maximum and leaves the kernel state as it was', () => {
    dp.apply(desired());
    for (const rate of [0, 400_000_000_001]) {
      const bad = desired();
      bad.classes.set(3, cfg(rate));
      assert.throws(() => dp.apply(bad), InvalidShaperState);
    }
    assert.deepEqual(dp.read(), desired());
  });

  it('gives each class the lowest free slot, frees it after its selectors, and reuses it with a zeroed schedule', () => {
    dp.apply(desired());
    assert.deepEqual(dp.slots(), new Map([[1, 1], [2, 2]]));
    assert.deepEqual(eg.config.get(2), { rate_bps: 50e6, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_slot: 1, class_id: 2, flags: 0, reserved: 0 });
    assert.equal(eg.marks.get(7), 2, 'selectors hold slots');
    assert.deepEqual(eg.settings.get(0), { default_slot: 0, flags: 0, generation: 1, cgroup_selectors: 1 }, 'one bump for the tries');
    eg.setTestClock(5_000_000_000n);
    eg.program.testRun({ data: frame('192.0.2.1'), ctxIn: skbContext({ mark: 7, wireLen: 1500 }) });
    assert.ok(eg.state.get(2)!.t_last > 0 && eg.stats.get(2)!.packets === 1);

    const without = desired();
    without.classes.delete(2);
    without.marks.clear();
    without.dst6.clear();
    assert.deepEqual(dp.apply(without).changes, { mark_class: 1, dst6_class: 1, class_config: 1, class_slot: 1 });
    assert.deepEqual(dp.slots(), new Map([[1, 1]]));
    assert.equal(eg.config.get(2)!.rate_bps, 0, 'a free slot: rate 0');
    assert.deepEqual([eg.state.get(2)!.t_last, eg.stats.get(2)!.packets], [0, 0]);
    assert.equal(eg.settings.get(0)!.generation, 3, 'bumped after the trie change and after the slot was freed');
    const r = eg.program.testRun({ data: frame('192.0.2.1'), ctxIn: skbContext({ mark: 7, wireLen: 1500 }) });
    assert.equal(r.retval, 0);

    const again = desired();
    again.classes.set(9, cfg(1e6));
    again.classes.delete(2);
    again.marks.set(7, 9);
    again.dst6.clear();
    dp.apply(again);
    assert.deepEqual(dp.slots(), new Map([[1, 1], [9, 2]]), 'the lowest free slot again');
    assert.deepEqual(dp.read(), again);
  });

  it('a restarted agent reads the same classes back through class_slot', () => {
    dp.apply(desired());
    const other = EgressObject.load({ pinRoot });
    try {
      assert.deepEqual(new Datapath(other).read(), desired());
      assert.deepEqual(new Datapath(other).apply(desired()).changes, {});
    } finally {
      other.close();
    }
  });

  it('when class_config is full, the apply fails with the map named and every change is undone', () => {
    dp.apply(desired());
    const tooMany = desired();
    for (let id = 3; id <= 65_537; id++) tooMany.classes.set(id, cfg(1e6));
    tooMany.classes.set(1, cfg(300e6)); // also a change to an existing class, which must be undone
    assert.throws(() => dp.apply(tooMany), (err: unknown) => err instanceof ApplyFailed && err.rolledBack && /class_config/.test(err.message));
    assert.deepEqual(dp.read(), desired());
  });
});
