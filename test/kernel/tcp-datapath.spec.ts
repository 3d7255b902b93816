/** The TCP tuning state on the real sock_ops maps: apply, read back, refuse, roll back. */
import assert from 'node:assert/strict';
import { TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { TcpDatapath, type TcpState } from '../../shaper-bpf/src/tcp-datapath.js';
import { ApplyFailed, InvalidShaperState } from '../../shaper-bpf/src/datapath.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';

describe('TcpDatapath on the real sock_ops maps', function () {
  this.timeout(60_000);
  let tcp: TcpTuningObject;
  let pinRoot: string;
  let dp: TcpDatapath;
  const desired = (): TcpState => ({
    tuning: new Map([
      [3, { rto_min_us: 20_000, delack_max_us: 0 }],
      [4, { rto_min_us: 0, delack_max_us: 5_000 }],
    ]),
    cgroups: new Map([[777n, 3]]),
    dst4: new Map([['10.9.0.0/16', 4]]),
    dst6: new Map([['fd00:9::/32', 3]]),
  });

  beforeEach(() => {
    pinRoot = makePinDir();
    tcp = TcpTuningObject.load({ pinRoot });
    dp = new TcpDatapath(tcp);
  });
  afterEach(() => {
    tcp.close();
    removePinDir(pinRoot);
  });

  it('applies, reads the same back, and a second apply writes nothing', () => {
    assert.deepEqual(dp.apply(desired()).changes, { tcp_tuning: 2, tcp_cgroup_class: 1, tcp_dst4_class: 1, tcp_dst6_class: 1 });
    assert.deepEqual(dp.read(), desired());
    assert.deepEqual(dp.apply(desired()).changes, {});
  });

  it('removing a class removes its selectors, then its tuning', () => {
    dp.apply(desired());
    const next = desired();
    next.tuning.delete(4);
    next.dst4.clear();
    assert.deepEqual(dp.apply(next).changes, { tcp_dst4_class: 1, tcp_tuning: 1 });
    assert.deepEqual(dp.read(), next);
  });

  it('mark selectors: written like the others, absent reads back like a state from before them, mark 0 and dangling marks refused', () => {
    dp.apply(desired());
    const marked: TcpState = { ...desired(), marks: new Map([[7, 3]]) };
    assert.deepEqual(dp.apply(marked).changes, { tcp_mark_class: 1 });
    assert.deepEqual(tcp.marks.get(7), 3);
    assert.deepEqual(dp.read(), marked);
    assert.throws(() => dp.apply({ ...desired(), marks: new Map([[0, 3], [8, 99]]) }), (e: unknown) => e instanceof InvalidShaperState && e.problems.length === 2);
    assert.deepEqual(dp.read(), marked);
    assert.deepEqual(dp.apply(desired()).changes, { tcp_mark_class: 1 }, 'no marks field: none');
    assert.deepEqual(dp.read(), desired());
  });

  it('refuses values outside 0..1 s, empty tuning and dangling selectors, changing nothing', () => {
    dp.apply(desired());
    const bad = desired();
    bad.tuning.set(5, { rto_min_us: 2_000_000, delack_max_us: 0 });
    bad.tuning.set(6, { rto_min_us: 0, delack_max_us: 0 });
    bad.cgroups.set(1n, 99);
    assert.throws(() => dp.apply(bad), (e: unknown) => e instanceof InvalidShaperState && e.problems.length === 3);
    assert.deepEqual(dp.read(), desired());
  });

  it('when tcp_tuning is full, undoes every change of the apply', () => {
    dp.apply(desired());
    const tooMany = desired();
    for (let id = 10; id < 10 + 65_536; id++) tooMany.tuning.set(id, { rto_min_us: 10_000, delack_max_us: 0 });
    tooMany.tuning.set(3, { rto_min_us: 30_000, delack_max_us: 0 });
    assert.throws(() => dp.apply(tooMany), (e: unknown) => e instanceof ApplyFailed && e.rolledBack && /tcp_tuning/.test(e.message));
    assert.deepEqual(dp.read(), desired());
  });
});
