import assert from 'node:assert/strict';
import fc from 'fast-check';
import { desiredState, burstNs, MAX_GSO_WIRE_BYTES, POLICING_HORIZON_NS, policingDepthNs, type Inventory } from '../../controller/desired/desired-state.js';
import { mergeTcpStates } from '../../controller/desired/tcp-merge.js';
import { DesiredStates } from '../../controller/desired/desired-states.js';
import { SETTINGS_POLICING, validate } from '../../shaper-bpf/src/datapath.js';
import { validateTcp } from '../../shaper-bpf/src/tcp-datapath.js';
import { record } from './fixtures.js';

const cgroupIds = new Map([['/web', 11n], ['/db', 12n]]);
const inv = (fq = true): Inventory => ({ fq, cgroupRoot: '/sys/fs/cgroup', cgroupIds: (p) => cgroupIds.get(p) });

describe('desiredState', () => {
  it('takes only the classes whose host selector matches, with parents as ids', () => {
    const d = desiredState(
      [
        record('root', 1, { rate: 100_000_000 }),
        record('web', 2, { parent: 'root', match: { marks: [7], cgroups: ['/web'], dst: ['10.0.0.0/8', '2001:db8::/32'] } }),
        record('elsewhere', 3, { hosts: { matchLabels: { zone: 'b' } } }),
      ],
      { zone: 'a' },
      inv(),
    );
    assert.deepEqual([...d.shaper.classes.keys()], [1, 2]);
    assert.equal(d.shaper.classes.get(2)!.parent_id, 1);
    assert.deepEqual([...d.shaper.marks], [[7, 2]]);
    assert.deepEqual([...d.shaper.cgroups], [[11n, 2]]);
    assert.deepEqual([...d.shaper.dst4], [['10.0.0.0/8', 2]]);
    assert.deepEqual([...d.shaper.dst6], [['2001:db8::/32', 2]]);
    assert.equal(d.shaper.settings.flags, 0);
    assert.deepEqual(d.classErrors, []);
  });

  it('converts burst bytes to time at the effective rate', () => {
    const c = record('a', 1, { rate: 8_000_000, ceil: 16_000_000, burst: { bytes: 10_000 } });
    assert.equal(desiredState([c], {}, inv()).shaper.classes.get(1)!.burst_ns, 10_000_000); // 10 kB at 1 MB/s
    const borrowed = desiredState([c], {}, inv(), new Map([[1, 16_000_000]])).shaper.classes.get(1)!;
    assert.equal(borrowed.rate_bps, 16_000_000);
    assert.equal(borrowed.burst_ns, 5_000_000);
  });

  it('without fq: policing flag and a depth of 2 ms, the burst when longer, two GSO packets at the rate when longer still, at most the horizon', () => {
    const gbit = 1_000_000_000;
    const d = desiredState(
      [
        record('a', 1, { rate: gbit }),
        record('b', 2, { rate: gbit, burst: { ns: 5_000_000 } }),
        record('c', 3, { rate: gbit, horizon: 1_000_000 }),
        record('slow', 4, { rate: 10_000_000 }),
        record('slow-burst', 5, { rate: 10_000_000, burst: { ns: 100_000_000 } }),
        record('slow-short', 6, { rate: 10_000_000, horizon: 20_000_000 }),
      ],
      {},
      inv(false),
    );
    assert.equal(d.shaper.settings.flags & SETTINGS_POLICING, SETTINGS_POLICING);
    const depth = (id: number) => d.shaper.classes.get(id)!.horizon_ns;
    assert.equal(depth(1), POLICING_HORIZON_NS); // 2 × 68 KB at 1 Gbit/s is 1.09 ms
    assert.equal(depth(2), 5_000_000);
    assert.equal(depth(3), 1_000_000);
    assert.equal(depth(4), 109_008_000); // 2 × 45 × 1514 bytes at 10 Mbit/s
    assert.equal(depth(5), 109_008_000);
    assert.equal(desiredState([record('long-burst', 7, { rate: 10_000_000, burst: { ns: 200_000_000 } })], {}, inv(false)).shaper.classes.get(7)!.horizon_ns, 200_000_000);
    assert.equal(depth(6), 20_000_000);
    assert.equal(MAX_GSO_WIRE_BYTES, 68_130);
  });

  it('the policing depth stays at the guarantee\'s when the class borrows (a shorter one would drop what the schedule already holds)', () => {
    const c = record('a', 1, { rate: 10_000_000, ceil: 40_000_000 });
    assert.equal(desiredState([c], {}, inv(false), new Map([[1, 40_000_000]])).shaper.classes.get(1)!.horizon_ns, 109_008_000);
    assert.equal(desiredState([c], {}, inv(false)).shaper.classes.get(1)!.horizon_ns, 109_008_000);
  });

  it('without fq, classes with a mark, cgroup or prefix selector get TCP pacing at their effective rate, with their selectors (marks too, as tc classifies by them first); with fq none', () => {
    const classes = [
      record('web', 1, { rate: 20_000_000, ceil: 40_000_000, match: { marks: [], cgroups: ['/web'], dst: ['10.1.0.0/16', 'fd00:1::/64'] } }),
      record('marked', 2, { match: { marks: [3], cgroups: [], dst: [] } }),
      record('tuned', 3, { rate: 5_000_000, match: { marks: [], cgroups: [], dst: ['10.3.0.0/16'] }, tcp: { rtoMin: 10_000_000, delackMax: null } }),
    ];
    const policed = desiredState(classes, {}, inv(false), new Map([[1, 30_000_000]])).tcp;
    assert.deepEqual([...policed.pacing!], [[1, { rate_bps: 30_000_000 }], [2, { rate_bps: 10_000_000 }], [3, { rate_bps: 5_000_000 }]]);
    assert.deepEqual([...policed.marks!], [[3, 2]]);
    assert.deepEqual([...policed.cgroups], [[11n, 1]]);
    assert.deepEqual([...policed.dst4], [['10.1.0.0/16', 1], ['10.3.0.0/16', 3]]);
    assert.deepEqual([...policed.dst6], [['fd00:1::/64', 1]]);
    assert.deepEqual([...policed.tuning], [[3, { rto_min_us: 10_000, delack_max_us: 0 }]]);
    validateTcp(policed);
    const shaping = desiredState(classes, {}, inv(true)).tcp;
    assert.deepEqual([...shaping.pacing!], []);
    assert.deepEqual([...shaping.dst4], [['10.3.0.0/16', 3]], 'with fq only the tuned class is in the TCP maps');
  });

  it('mergeTcpStates: one host state from the interfaces\' (tuning and selectors once, a class paced at its highest rate)', () => {
    const a = { tuning: new Map([[3, { rto_min_us: 10_000, delack_max_us: 0 }]]), pacing: new Map([[1, { rate_bps: 10_000_000 }]]), cgroups: new Map([[11n, 1]]), dst4: new Map([['10.3.0.0/16', 3]]), dst6: new Map() };
    const b = { tuning: new Map([[3, { rto_min_us: 10_000, delack_max_us: 0 }]]), pacing: new Map([[1, { rate_bps: 30_000_000 }], [2, { rate_bps: 5_000_000 }]]), cgroups: new Map([[11n, 1]]), dst4: new Map([['10.3.0.0/16', 3], ['10.2.0.0/16', 2]]), dst6: new Map() };
    const shaping = { tuning: a.tuning, cgroups: new Map(), dst4: new Map([['10.3.0.0/16', 3]]), dst6: new Map() }; // a snapshot from before pacing: no field
    const m = mergeTcpStates([a, b, shaping]);
    assert.deepEqual([...m.pacing!], [[1, { rate_bps: 30_000_000 }], [2, { rate_bps: 5_000_000 }]]);
    assert.deepEqual([...m.tuning], [...a.tuning]);
    assert.deepEqual([...m.cgroups], [[11n, 1]]);
    assert.deepEqual([...m.dst4], [['10.3.0.0/16', 3], ['10.2.0.0/16', 2]]);
    assert.deepEqual(mergeTcpStates([]), { tuning: new Map(), pacing: new Map(), marks: new Map(), cgroups: new Map(), dst4: new Map(), dst6: new Map() });
    assert.equal(mergeTcpStates([b]), b, 'one interface: its state as it is, not a copy');
  });

  it('a parent missing on this host skips the class and its children, and nothing else', () => {
    const d = desiredState(
      [
        record('p', 1, { hosts: { matchLabels: { zone: 'b' } } }),
        record('child', 2, { parent: 'p' }),
        record('grandchild', 3, { parent: 'child' }),
        record('other', 4),
      ],
      { zone: 'a' },
      inv(),
    );
    assert.deepEqual([...d.shaper.classes.keys()], [4]);
    assert.deepEqual(d.classErrors.map((e) => e.class), ['child', 'grandchild']);
    assert.match(d.classErrors[0]!.error, /parent p does not apply to this host/);
  });

  it('too deep and cycles are per-class errors', () => {
    const chain = ['a', 'b', 'c', 'd', 'e'].map((n, i, all) => record(n, i + 1, { parent: i === 0 ? null : all[i - 1] }));
    const d = desiredState([...chain, record('x', 10, { parent: 'y' }), record('y', 11, { parent: 'x' })], {}, inv());
    assert.deepEqual([...d.shaper.classes.keys()], [1, 2, 3, 4]);
    assert.deepEqual(d.classErrors.map((e) => e.class), ['e', 'x', 'y']);
  });

  it('a missing cgroup, a bad prefix or a taken selector drops that selector only', () => {
    const d = desiredState(
      [
        record('a', 1, { match: { marks: [1], cgroups: ['/gone', '/db'], dst: ['10.0.0.1/8'] } }),
        record('b', 2, { match: { marks: [1, 2], cgroups: [], dst: [] } }),
      ],
      {},
      inv(),
    );
    assert.deepEqual([...d.shaper.classes.keys()], [1, 2]);
    assert.deepEqual([...d.shaper.cgroups], [[12n, 1]]);
    assert.deepEqual([...d.shaper.marks], [[1, 1], [2, 2]]);
    assert.equal(d.shaper.dst4.size, 0);
    assert.deepEqual(d.classErrors.map((e) => e.class), ['a', 'a', 'b']);
    assert.match(d.classErrors.find((e) => e.class === 'b')!.error, /mark 1 is already selected by class a/);
  });

  it('a duplicate class id keeps the first name', () => {
    const d = desiredState([record('b', 1), record('a', 1)], {}, inv());
    assert.equal(d.shaper.classes.size, 1);
    assert.deepEqual(d.classErrors, [{ class: 'b', error: 'class id 1 is already used by class a' }]);
  });

  it('tcp tuning in µs on the class marks, cgroups and prefixes; a class without selectors cannot be tuned', () => {
    const d = desiredState(
      [
        record('t', 1, { match: { marks: [], cgroups: ['/web'], dst: ['10.1.0.0/16'] }, tcp: { rtoMin: 5_000_000, delackMax: null } }),
        record('m', 2, { match: { marks: [3], cgroups: [], dst: [] }, tcp: { rtoMin: null, delackMax: 1_000_500 } }),
        record('n', 3, { match: { marks: [], cgroups: [], dst: [] }, tcp: { rtoMin: null, delackMax: 1_000_500 } }),
      ],
      {},
      inv(),
    );
    assert.deepEqual([...d.tcp.tuning], [[1, { rto_min_us: 5000, delack_max_us: 0 }], [2, { rto_min_us: 0, delack_max_us: 1001 }]]);
    assert.deepEqual([...d.tcp.marks!], [[3, 2]]);
    assert.deepEqual([...d.tcp.cgroups], [[11n, 1]]);
    assert.deepEqual([...d.tcp.dst4], [['10.1.0.0/16', 1]]);
    assert.deepEqual(d.classErrors, [{ class: 'n', error: 'tcp tuning needs a mark, cgroup or prefix selector; tuning ignored' }]);
    assert.ok(d.shaper.classes.has(3), 'the class is still shaped');
  });

  it('rto_min route metrics for the prefixes of classes with tcp.rtoMin, in whole ms rounded up; delackMax alone has no route metric', () => {
    const d = desiredState(
      [
        record('t', 1, { match: { marks: [], cgroups: ['/web'], dst: ['10.1.0.0/16', 'fd00:1::/64'] }, tcp: { rtoMin: 5_000_001, delackMax: null } }),
        record('d', 2, { match: { marks: [], cgroups: [], dst: ['10.2.0.0/16'] }, tcp: { rtoMin: null, delackMax: 2_000_000 } }),
        record('n', 3, { match: { marks: [], cgroups: [], dst: ['10.3.0.0/16'] } }),
      ],
      {},
      inv(),
    );
    assert.deepEqual([...d.routes], [
      ['10.1.0.0/16', { classId: 1, className: 't', rtoMinMs: 6 }],
      ['fd00:1::/64', { classId: 1, className: 't', rtoMinMs: 6 }],
    ]);
  });

  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const arbClasses = fc
    .uniqueArray(
      fc.record({
        name: fc.constantFrom(...names),
        id: fc.integer({ min: 1, max: 8 }),
        rate: fc.integer({ min: 1_000, max: 1e11 }),
        burst: fc.oneof(fc.record({ bytes: fc.integer({ min: 0, max: 1 << 20 }) }), fc.record({ ns: fc.integer({ min: 0, max: 1e9 }) })),
        horizon: fc.integer({ min: 1_000_000, max: 1e10 }),
        parent: fc.option(fc.constantFrom(...names)),
        zone: fc.option(fc.constantFrom('a', 'b')),
        marks: fc.uniqueArray(fc.integer({ min: 1, max: 4 }), { maxLength: 2 }),
        cgroups: fc.uniqueArray(fc.constantFrom('/web', '/db', '/gone'), { maxLength: 2 }),
        dst: fc.uniqueArray(fc.constantFrom('10.0.0.0/8', '10.0.0.0/16', '2001:db8::/32', '192.168.1.1/24'), { maxLength: 2 }),
        rtoMin: fc.option(fc.integer({ min: 1_000_000, max: 1e9 })),
      }),
      { selector: (c) => c.name },
    )
    .map((list) =>
      list.map((c) =>
        record(c.name, c.id, {
          rate: c.rate,
          burst: c.burst,
          horizon: c.horizon,
          parent: c.parent === c.name ? null : c.parent,
          hosts: { matchLabels: c.zone === null ? {} : { zone: c.zone } },
          match: { marks: c.marks, cgroups: c.cgroups, dst: c.dst },
          tcp: c.rtoMin === null ? null : { rtoMin: c.rtoMin, delackMax: null },
        }),
      ),
    );

  it('property: the result is always a state the data plane accepts, and every class of this host is applied or explained', () => {
    fc.assert(
      fc.property(arbClasses, fc.boolean(), (classes, fq) => {
        const d = desiredState(classes, { zone: 'a' }, inv(fq));
        validate(d.shaper);
        validateTcp(d.tcp);
        const onHost = classes.filter((c) => c.hosts.matchLabels.zone !== 'b');
        for (const c of onHost) {
          assert.ok(d.shaper.classes.get(c.id) !== undefined || d.classErrors.some((e) => e.class === c.name), c.name);
        }
        for (const c of classes.filter((c) => !onHost.includes(c))) assert.ok(!d.classErrors.some((e) => e.class === c.name));
        for (const [, cfg] of d.shaper.classes) if (!fq) assert.ok(cfg.horizon_ns <= policingDepthNs(cfg.rate_bps, cfg.burst_ns, Infinity));
        for (const [id] of d.tcp.pacing!) assert.ok(!fq && d.shaper.classes.has(id), `class ${id} is paced only when policed`);
        // Pure: the same input gives the same output.
        assert.deepEqual(desiredState(classes, { zone: 'a' }, inv(fq)), d);
      }),
      { numRuns: 300 },
    );
  });

  it('property: a burst in bytes never shrinks when converted to time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1 << 30 }), fc.integer({ min: 1_000, max: 4e11 }), (bytes, rate) => {
        assert.ok((burstNs({ bytes }, rate) * rate) / 8e9 >= bytes - 1e-6 * bytes);
      }),
    );
  });
});

describe('DesiredStates', () => {
  const classes = [
    record('tuned', 1, { rate: 5_000_000, match: { marks: [4], cgroups: [], dst: ['10.1.0.0/16'] }, tcp: { rtoMin: 5_000_000, delackMax: null } }),
    record('plain', 2, { match: { marks: [5], cgroups: [], dst: [] } }),
  ];

  it('computes one state per class list and mode, equal to desiredState\'s', () => {
    let computed = 0;
    const states = new DesiredStates({}, (fq) => (computed++, inv(fq)));
    const policing = states.at(classes, false);
    assert.equal(states.at(classes, false), policing, 'the same list again: the same state, not a new one');
    assert.deepEqual(policing, desiredState(classes, {}, inv(false)));
    const shaping = states.at(classes, true);
    assert.notEqual(shaping, policing);
    assert.deepEqual(shaping, desiredState(classes, {}, inv(true)));
    assert.equal(computed, 2);
    assert.notEqual(states.at([...classes], true), shaping, 'a new list (another revision) is computed again');
  });

  it('routes: taken from a state of either mode when there is one, else computed; the same in both modes', () => {
    let computed = 0;
    const states = new DesiredStates({}, (fq) => (computed++, inv(fq)));
    const policing = states.at(classes, false);
    assert.equal(states.routes(classes), policing.routes);
    assert.equal(computed, 1);
    assert.deepEqual([...desiredState(classes, {}, inv(true)).routes], [...policing.routes], 'fq does not change the routes');
    assert.deepEqual([...new DesiredStates({}, inv).routes(classes)], [['10.1.0.0/16', { classId: 1, className: 'tuned', rtoMinMs: 5 }]]);
  });
});
