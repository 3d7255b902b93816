/** desiredState and a class's ECN threshold: class_config.ecn_ns, with fq, under policing and when borrowing. */
import assert from 'node:assert/strict';
import { desiredState, policingDepthNs, type Inventory } from '../../controller/desired/desired-state.js';
import { validate } from '../../shaper-bpf/src/datapath.js';
import { record } from './fixtures.js';

const inv = (fq: boolean): Inventory => ({ fq, cgroupRoot: '/sys/fs/cgroup', cgroupIds: () => undefined });
const MS = 1_000_000;

describe('desiredState: ECN threshold', () => {
  it('writes the class\'s threshold into class_config.ecn_ns, and 0 (off) for a class without one', () => {
    const d = desiredState([record('marked', 1, { ecn: { threshold: 3 * MS } }), record('plain', 2)], {}, inv(true));
    assert.equal(d.shaper.classes.get(1)!.ecn_ns, 3 * MS);
    assert.equal(d.shaper.classes.get(2)!.ecn_ns, 0);
    assert.deepEqual(d.classErrors, []);
    validate(d.shaper);
  });

  it('a class record without the field (an older API or snapshot) is off', () => {
    const older = record('old', 1) as unknown as Record<string, unknown>;
    delete older.ecn;
    const d = desiredState([older as never], {}, inv(true));
    assert.equal(d.shaper.classes.get(1)!.ecn_ns, 0);
  });

  it('borrowing keeps the threshold: it is a time, so it holds at whatever rate the class has', () => {
    const c = record('b', 1, { rate: 10_000_000, ceil: 40_000_000, ecn: { threshold: 2 * MS } });
    const borrowed = desiredState([c], {}, inv(true), new Map([[1, 40_000_000]])).shaper.classes.get(1)!;
    assert.equal(borrowed.rate_bps, 40_000_000);
    assert.equal(borrowed.ecn_ns, 2 * MS);
  });

  it('under policing the threshold is kept: CE marks come before the policer\'s drops when it is below the depth', () => {
    const gbit = 1_000_000_000;
    const d = desiredState([record('p', 1, { rate: gbit, ecn: { threshold: MS } })], {}, inv(false));
    const cfg = d.shaper.classes.get(1)!;
    assert.equal(cfg.horizon_ns, policingDepthNs(gbit, 0, 2_000_000_000)); // 2 ms
    assert.equal(cfg.ecn_ns, MS);
    assert.deepEqual(d.classErrors, []);
  });

  it('under policing a threshold not below the policer\'s depth never marks: the class error says so, with the depth and the fix', () => {
    const gbit = 1_000_000_000;
    const d = desiredState([record('deep', 1, { rate: gbit, ecn: { threshold: 5 * MS } }), record('ok', 2, { rate: gbit, ecn: { threshold: MS } })], {}, inv(false));
    assert.equal(d.shaper.classes.get(1)!.ecn_ns, 5 * MS, 'written as asked: `pacer dp classes` shows it beside the depth');
    assert.equal(d.classErrors.length, 1);
    assert.equal(d.classErrors[0]!.class, 'deep');
    assert.match(d.classErrors[0]!.error, /ecn\.threshold 5ms never marks on this host: without fq the class is policed with a depth of 2ms/);
    assert.match(d.classErrors[0]!.error, /set ecn\.threshold below 2ms/);
    // The same class with fq: the horizon (2 s) is the limit, and 5 ms is far below it.
    assert.deepEqual(desiredState([record('deep', 1, { rate: gbit, ecn: { threshold: 5 * MS } })], {}, inv(true)).classErrors, []);
  });
});
