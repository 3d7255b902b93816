/**
 * The pure half of shaper-bpf/src/qdisc.ts: parsing `tc -j qdisc show` and planning tc commands.
 * Fixtures marked "captured" are verbatim output of iproute2 6.1 on the 6.18 development kernel.
 * That kernel has no sch_fq, so the fq fixtures are built from iproute2's fq_print_opt
 * (q_fq.c): horizon is a bare number of µs and horizon_drop is a key whose value is null.
 */
import assert from 'node:assert/strict';
import { isKernelDefault, isRestorable, parseRootQdisc, planFq, planRestore, sameTree } from '../../shaper-bpf/src/qdisc.js';

const PFIFO_FAST = '"options":{"bands":3,"priomap":[1,2,2,2,1,2,0,0,1,1,1,1,1,1,1,1],"multiqueue":false}';
const fixtures = {
  // captured: a veth pair (IFF_NO_QUEUE) after creation
  vethDefault: '[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]',
  // captured: lo, or any device that is down, has no qdisc at all
  none: '[]\n',
  // captured: `tc qdisc replace dev va root pfifo limit 77` with clsact (pacer's BPF hook) present
  pfifo77: '[{"kind":"pfifo","handle":"8004:","root":true,"refcnt":5,"options":{"limit":77}},{"kind":"clsact","handle":"ffff:","parent":"ffff:fff1","options":{}}]',
  // captured: a 4-queue ifb: the kernel's default mq; tc omits the zero major in ":4"
  mqDefault: `[{"kind":"mq","handle":"0:","root":true,"options":{}},${[4, 3, 2, 1].map((q) => `{"kind":"pfifo_fast","handle":"0:","parent":":${q}",${PFIFO_FAST}}`).join(',')}]`,
  // captured: `tc qdisc replace dev va root handle 1: mq` + `parent 1:2 pfifo`; children listed from the last queue down
  mqOnePfifo: `[{"kind":"mq","handle":"1:","root":true,"options":{}},${[4, 3, 1].map((q) => `{"kind":"pfifo_fast","handle":"0:","parent":"1:${q}",${PFIFO_FAST}}`).join(',')},{"kind":"pfifo","handle":"8008:","parent":"1:2","options":{"limit":1000}}]`,
  // captured: htb with a class and a leaf qdisc; note "default" is a hex string
  htb: '[{"kind":"htb","handle":"1:","root":true,"refcnt":5,"options":{"r2q":10,"default":"0x10","direct_packets_stat":0,"direct_qlen":1000}},{"kind":"pfifo","handle":"8005:","parent":"1:10","options":{"limit":5}}]',
};

const fqOptions = '"limit":10000,"flow_limit":100,"buckets":1024,"orphan_mask":1023,"quantum":3028,"initial_quantum":15140,"refill_delay":40000,"timer_slack":10000';
const fqRoot = (horizonUs: number, flowLimit = 100) =>
  `[{"kind":"fq","handle":"8001:","root":true,"refcnt":2,"options":{${fqOptions.replace('"flow_limit":100', `"flow_limit":${flowLimit}`)},"horizon":${horizonUs},"horizon_drop":null}}]`;
const fqMq = (horizonUs: number, queues = 4) =>
  `[{"kind":"mq","handle":"1:","root":true,"options":{}},${Array.from({ length: queues }, (_, i) =>
    `{"kind":"fq","handle":"80${10 + i}:","parent":"1:${(queues - i).toString(16)}","options":{${fqOptions},"horizon":${horizonUs},"horizon_drop":null}}`).join(',')}]`;

const opts = { iface: 'eth0', horizonNs: 2_000_000, flowLimit: 100 };
const fqArgs = ['fq', 'horizon', '2000us', 'horizon_drop', 'flow_limit', '100'];

describe('qdisc plan (pure)', () => {
  describe('parseRootQdisc', () => {
    it('reads the root and ignores clsact, which is not part of the root tree', () => {
      assert.deepEqual(parseRootQdisc(fixtures.pfifo77), { kind: 'pfifo', handle: '8004:', options: { limit: 77 }, children: [] });
    });

    it('orders mq children by queue even though tc lists them from the last queue down', () => {
      const root = parseRootQdisc(fixtures.mqOnePfifo)!;
      assert.deepEqual(root.children.map((c) => [c.parent, c.kind]), [['1:1', 'pfifo_fast'], ['1:2', 'pfifo'], ['1:3', 'pfifo_fast'], ['1:4', 'pfifo_fast']]);
    });

    it('finds the children of a default mq, whose parents are printed as ":N"', () => {
      assert.deepEqual(parseRootQdisc(fixtures.mqDefault)!.children.map((c) => c.parent), [':1', ':2', ':3', ':4']);
    });

    it('returns null for a device without any qdisc', () => {
      assert.equal(parseRootQdisc(fixtures.none), null);
    });

    it('tells the kernel default from a configured tree', () => {
      const defaults = [fixtures.vethDefault, fixtures.none, fixtures.mqDefault].map(parseRootQdisc);
      assert.deepEqual(defaults.map(isKernelDefault), [true, true, true]);
      assert.deepEqual([fixtures.pfifo77, fixtures.mqOnePfifo].map(parseRootQdisc).map(isKernelDefault), [false, false]);
    });

    it('rejects output that is not a list of qdiscs', () => {
      assert.throws(() => parseRootQdisc('{"kind":"fq"}'), /expected an array/);
      assert.throws(() => parseRootQdisc('[{"root":true}]'), /without kind\/handle/);
    });
  });

  describe('planFq', () => {
    it('makes fq the root of a single-queue device', () => {
      assert.deepEqual(planFq(parseRootQdisc(fixtures.vethDefault), { ...opts, txQueues: 1 }), [['qdisc', 'replace', 'dev', 'eth0', 'root', ...fqArgs]]);
    });

    it('puts mq at the root of a 4-queue device and one fq on each queue', () => {
      assert.deepEqual(planFq(parseRootQdisc(fixtures.mqDefault), { ...opts, txQueues: 4 }), [
        ['qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '1:', 'mq'],
        ...[1, 2, 3, 4].map((q) => ['qdisc', 'replace', 'dev', 'eth0', 'parent', `1:${q}`, ...fqArgs]),
      ]);
    });

    it('writes queue numbers in hex, as tc reads them', () => {
      const plan = planFq(null, { ...opts, txQueues: 11 });
      assert.deepEqual(plan.slice(-2).map((step) => step[5]), ['1:a', '1:b']);
    });

    it('plans nothing when the device already is exactly so', () => {
      assert.deepEqual(planFq(parseRootQdisc(fqRoot(2000)), { ...opts, txQueues: 1 }), []);
      assert.deepEqual(planFq(parseRootQdisc(fqMq(2000)), { ...opts, txQueues: 4 }), []);
    });

    it('replaces fq whose horizon or flow_limit differ, and keeps the existing mq', () => {
      assert.deepEqual(planFq(parseRootQdisc(fqRoot(1000)), { ...opts, txQueues: 1 }), [['qdisc', 'replace', 'dev', 'eth0', 'root', ...fqArgs]]);
      assert.deepEqual(planFq(parseRootQdisc(fqRoot(2000, 50)), { ...opts, txQueues: 1 }).length, 1);
      const plan = planFq(parseRootQdisc(fqMq(1000)), { ...opts, txQueues: 4 });
      assert.deepEqual(plan.map((step) => step.slice(4, 6)), [1, 2, 3, 4].map((q) => ['parent', `1:${q}`]));
    });

    it('replaces only the queues that are not yet right', () => {
      const plan = planFq(parseRootQdisc(fixtures.mqOnePfifo), { ...opts, txQueues: 4, leafKind: 'pfifo' });
      assert.deepEqual(plan, [1, 3, 4].map((q) => ['qdisc', 'replace', 'dev', 'eth0', 'parent', `1:${q}`, 'pfifo']));
    });

    it('rounds the horizon up to whole microseconds, so fq never drops what the program let through', () => {
      assert.deepEqual(planFq(null, { ...opts, horizonNs: 1_500_001, txQueues: 1 })[0]!.slice(5, 8), ['fq', 'horizon', '1501us']);
    });

    it('chooses an mq handle no qdisc uses: replace onto a used handle would change that qdisc instead', () => {
      const root = parseRootQdisc('[{"kind":"pfifo","handle":"1:","root":true,"refcnt":5,"options":{"limit":5}}]');
      assert.deepEqual(planFq(root, { ...opts, txQueues: 2 })[0], ['qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '2:', 'mq']);
    });

    it('rejects options tc would misread', () => {
      assert.throws(() => planFq(null, { ...opts, txQueues: 1, flowLimit: 0 }), RangeError);
      assert.throws(() => planFq(null, { ...opts, txQueues: 1, horizonNs: 0 }), RangeError);
    });
  });

  describe('planRestore', () => {
    it('returns to the kernel default by deleting the root, and does nothing if it already is there', () => {
      const ours = parseRootQdisc(fqMq(2000));
      assert.deepEqual(planRestore(ours, parseRootQdisc(fixtures.vethDefault), 'eth0'), [['qdisc', 'del', 'dev', 'eth0', 'root']]);
      assert.deepEqual(planRestore(parseRootQdisc(fixtures.mqDefault), null, 'eth0'), []);
    });

    it('re-creates a configured root with its handle and options', () => {
      const saved = parseRootQdisc(fixtures.pfifo77);
      assert.deepEqual(planRestore(parseRootQdisc(fqRoot(2000)), saved, 'eth0'), [
        ['qdisc', 'del', 'dev', 'eth0', 'root'],
        ['qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '8004:', 'pfifo', 'limit', '77'],
      ]);
      assert.deepEqual(planRestore(saved, saved, 'eth0'), []);
    });

    it('re-creates an operator fq with the options tc printed', () => {
      const steps = planRestore(null, parseRootQdisc(fqRoot(10_000_000)), 'eth0');
      assert.deepEqual(steps[0]!.slice(-5), ['timer_slack', '10000ns', 'horizon', '10000000us', 'horizon_drop']);
    });

    it('re-creates only the non-default children of an mq', () => {
      assert.deepEqual(planRestore(null, parseRootQdisc(fixtures.mqOnePfifo), 'eth0'), [
        ['qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'mq'],
        ['qdisc', 'replace', 'dev', 'eth0', 'parent', '1:2', 'handle', '8008:', 'pfifo', 'limit', '1000'],
      ]);
    });

    it('knows what it cannot re-create', () => {
      assert.equal(isRestorable(parseRootQdisc(fixtures.htb)), false);
      assert.equal(isRestorable(parseRootQdisc('[{"kind":"fq","handle":"1:","root":true,"options":{"maxrate":125000}}]')), false);
      assert.equal(isRestorable(parseRootQdisc(fixtures.pfifo77)), true);
      assert.throws(() => planRestore(null, parseRootQdisc(fixtures.htb), 'eth0'), /cannot re-create htb/);
    });

    it('compares trees regardless of the order of option keys', () => {
      const a = parseRootQdisc('[{"kind":"fq","handle":"1:","root":true,"options":{"limit":1,"flow_limit":2}}]');
      const b = parseRootQdisc('[{"kind":"fq","handle":"1:","root":true,"options":{"flow_limit":2,"limit":1}}]');
      assert.ok(sameTree(a, b));
      assert.ok(!sameTree(a, parseRootQdisc('[{"kind":"fq","handle":"2:","root":true,"options":{"flow_limit":2,"limit":1}}]')));
    });

    it('counts default mq children as the kernel\'s choice, whatever net.core.default_qdisc made them', () => {
      const withPfifoFast = parseRootQdisc(fixtures.mqOnePfifo)!;
      const withFqCodel = { ...withPfifoFast, children: withPfifoFast.children.map((c) => (c.handle === '0:' ? { ...c, kind: 'fq_codel', options: {} } : c)) };
      assert.ok(sameTree(withPfifoFast, withFqCodel));
      assert.deepEqual(planRestore(withFqCodel, withPfifoFast, 'eth0'), []);
      const otherLeaf = { ...withPfifoFast, children: withPfifoFast.children.map((c) => (c.kind === 'pfifo' ? { ...c, options: { limit: 5 } } : c)) };
      assert.ok(!sameTree(withPfifoFast, otherLeaf));
    });
  });
});
