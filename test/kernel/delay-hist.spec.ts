/**
 * Per-class queueing-delay histograms on the real object, through BPF_PROG_TEST_RUN at times the
 * test chooses. A packet's delay is set exactly through its class's schedule: the test writes the
 * class's t_last so that its next slot (t_last + 2 ns: 60 bytes at 400 Gbit/s) is now + delay, so
 * the program holds the packet exactly that long, which the test checks on the departure it
 * stamped. (A packet's own timestamp would not do: pacer counts only what it adds to it.)
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { ApplyFailed, Datapath, delayQuantile, memoryTables, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { bucketLowerNs, bucketOf, bucketUpperNs, HIST_BUCKETS, histogramOf } from '../../shaper-bpf/src/delay-hist.js';
import { BpfMap, readSkbContext, skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { delayHist, type ClassConfig } from '../../shaper-bpf/src/layout.js';
import { frame } from '../support/packets.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { TestClasses } from '../support/slots.js';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const T0 = 1_000_000_000_000_000;
/** Far beyond any delay sent here: each packet's "now" starts a fresh, idle stretch of the schedule. */
const GAP = 100_000_000_000;
const FAST: ClassConfig = { rate_bps: 400_000_000_000, burst_ns: 0, horizon_ns: 60_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 };
const DATA = frame('192.0.2.1');
/** A 60-byte packet's slot at FAST's rate: ceil(60 · 8e9 / 4e11). */
const SLOT_NS = 2;

/** Delays at every bucket edge the rule has: each bound, one below it, and the ends. */
function edgeDelays(): number[] {
  const out = [0, 1, 1023];
  for (let b = 1; b < HIST_BUCKETS; b++) out.push(bucketLowerNs(b) - 1, bucketLowerNs(b));
  out.push(30_000_000_000);
  return out;
}

function expectedCounts(delays: Iterable<number>): number[] {
  const counts = new Array<number>(HIST_BUCKETS).fill(0);
  for (const d of delays) counts[bucketOf(d)]!++;
  return counts;
}

describe('per-class delay histograms (BPF_PROG_TEST_RUN on the real object)', function () {
  this.timeout(300_000);
  let eg: EgressObject;
  let tc: TestClasses;
  let pinRoot: string;
  let now = T0;

  before(() => {
    pinRoot = makePinDir();
    eg = EgressObject.load({ pinRoot });
    tc = new TestClasses(eg);
  });
  after(() => {
    eg?.close();
    removePinDir(pinRoot);
  });
  afterEach(() => tc.clear());

  /** One packet with `mark`, held exactly `delayNs` by the program (0: sent at once) if `shaped`; returns the verdict. */
  function sendHeld(mark: number, delayNs: number, shaped = true): number {
    now += GAP;
    eg.setTestClock(BigInt(now));
    const slot = eg.marks.get(mark);
    if (slot !== undefined) eg.state.set(slot, { t_last: delayNs === 0 ? 0 : now + delayNs - SLOT_NS });
    const r = eg.program.testRun({ data: DATA, ctxIn: skbContext({ mark, wireLen: 60 }), ctxOutSize: 192 });
    if (r.retval === TC_ACT_OK) assert.equal(Number(readSkbContext(r.ctxOut!).tstamp), shaped ? now + delayNs : 0, 'the departure the program stamped');
    return r.retval;
  }

  it('packets with known delays land in the exact buckets: every bound, one below it, under 1 µs and over 17 s', () => {
    tc.set(1, FAST);
    tc.mark(1, 1);
    const delays = edgeDelays();
    for (const d of delays) assert.equal(sendHeld(1, d), TC_ACT_OK);
    const counts = tc.delays(1)!;
    assert.deepEqual(counts, expectedCounts(delays));
    // Spot checks that do not go through bucketOf: the first bucket holds 0, 1 and 1023 ns
    // (and 1023 ns again, one below bucket 1's bound); bucket 1 is [1024, 1220); the last ≥ 2^34.
    assert.equal(counts[0], 4);
    assert.deepEqual([bucketLowerNs(1), bucketUpperNs(1), bucketLowerNs(2), bucketLowerNs(5)], [1024, 1220, 1220, 2048]);
    assert.equal(counts[1], 2); // 1024 and 1219
    assert.equal(counts[HIST_BUCKETS - 1], 2, '2^34 ns and 30 s');
    assert.equal(counts.reduce((a, c) => a + c, 0), tc.stats(1)!.packets);
  });

  it('the kernel and bucketOf agree on random delays (fast-check)', () => {
    tc.set(1, FAST);
    tc.mark(1, 1);
    const delay = fc.oneof(
      fc.integer({ min: 0, max: 4096 }),
      fc.integer({ min: 0, max: 2_000_000 }),
      fc.integer({ min: 0, max: 20_000_000_000 }),
      fc.integer({ min: 1, max: HIST_BUCKETS - 1 }).map((b) => bucketLowerNs(b)),
      fc.integer({ min: 1, max: HIST_BUCKETS - 1 }).map((b) => bucketLowerNs(b) - 1),
    );
    fc.assert(
      fc.property(fc.array(delay, { minLength: 1, maxLength: 40 }), (delays) => {
        const before = tc.delays(1)!;
        for (const d of delays) assert.equal(sendHeld(1, d), TC_ACT_OK);
        const grown = tc.delays(1)!.map((c, i) => c - before[i]!);
        assert.deepEqual(grown, expectedCounts(delays));
      }),
      { numRuns: 100 },
    );
  });

  it('counts only the packets that pass: a horizon drop is counted in horizon_drops, not in the histogram', () => {
    tc.set(1, { ...FAST, horizon_ns: 5_000_000 });
    tc.mark(1, 1);
    assert.equal(sendHeld(1, 4_000_000), TC_ACT_OK);
    assert.equal(sendHeld(1, 6_000_000), TC_ACT_SHOT);
    assert.equal(tc.stats(1)!.horizon_drops, 1);
    assert.deepEqual(tc.delays(1), expectedCounts([4_000_000]));
  });

  it('counts in the leaf class only, and a class written without a histogram still passes its packets', () => {
    tc.set(10, FAST);
    tc.set(11, { ...FAST, parent_id: 10 });
    tc.mark(11, 11);
    assert.equal(sendHeld(11, 3000), TC_ACT_OK);
    assert.deepEqual(tc.delays(11), expectedCounts([3000]));
    assert.deepEqual(tc.delays(10), expectedCounts([]), 'the parent: no packet of its own');
    eg.hists.remove([tc.slot(10), tc.slot(11)], new Set()); // their group's map is given back
    assert.equal(sendHeld(11, 3000), TC_ACT_OK);
    assert.equal(tc.stats(11)!.packets, 2);
    assert.equal(tc.delays(11), undefined);
  });

  describe('through the Datapath', () => {
    const cfg = FAST;
    const state = (ids: number[]): ShaperState => ({
      classes: new Map(ids.map((id) => [id, cfg])),
      marks: new Map(ids.map((id) => [id, id])),
      cgroups: new Map(),
      dst4: new Map(),
      dst6: new Map(),
      settings: { default_class: 0, flags: 0 },
    });

    it('delayHistogram gives bucket bounds and counts, and delayQuantile the upper bound of the bucket that holds the quantile', () => {
      const dp = new Datapath(eg);
      dp.apply(state([1]));
      // 90 packets not delayed, 9 held 100 µs, 1 held 5 ms.
      const delays = [...Array(90).fill(0), ...Array(9).fill(100_000), 5_000_000];
      for (const d of delays) sendHeld(1, d);
      const h = dp.delayHistogram(1)!;
      assert.equal(h.total, 100);
      assert.equal(h.buckets.length, HIST_BUCKETS);
      assert.deepEqual(h.buckets[0], { lowerNs: 0, upperNs: 1024, count: 90 });
      const b100us = bucketOf(100_000);
      assert.deepEqual(h.buckets[b100us], { lowerNs: bucketLowerNs(b100us), upperNs: bucketUpperNs(b100us), count: 9 });
      assert.ok(h.buckets[b100us]!.lowerNs <= 100_000 && 100_000 < h.buckets[b100us]!.upperNs);
      assert.equal(delayQuantile(h, 0.5), 1024, 'p50: under 1 µs');
      assert.equal(delayQuantile(h, 0.9), 1024, 'p90: the 90th packet is still not delayed');
      assert.equal(delayQuantile(h, 0.91), bucketUpperNs(b100us));
      assert.equal(delayQuantile(h, 0.99), bucketUpperNs(b100us), 'p99: the 99th packet, held 100 µs');
      assert.equal(delayQuantile(h, 1), bucketUpperNs(bucketOf(5_000_000)), 'max');
      assert.ok(bucketUpperNs(b100us) / 100_000 < 1.191, 'the bound is within 19.1% of the delay');
      assert.equal(dp.delayHistogram(42), undefined, 'an unknown class');
      assert.deepEqual([...dp.delayHistograms().keys()], [1]);
      dp.apply(state([]));
    });

    it('delayHistograms(list) reads exactly the listed classes, with the counts of the full read; an unknown id is left out', () => {
      const dp = new Datapath(eg);
      // Classes in two groups of 16 slots (slots 1..20), each with its own delays.
      const ids = Array.from({ length: 20 }, (_, i) => i + 1);
      dp.apply(state(ids));
      for (const id of ids) for (let k = 0; k < id % 4; k++) sendHeld(id, id * 1000 + k * 100_000);
      const all = dp.delayHistograms();
      assert.deepEqual([...all.keys()], ids);
      const listed = dp.delayHistograms([18, 3, 999, 3]);
      assert.deepEqual([...listed.keys()], [3, 18], 'the listed known classes, in id order, each once; 999 is unknown');
      assert.deepEqual(listed.get(3), all.get(3));
      assert.deepEqual(listed.get(18), all.get(18));
      assert.deepEqual(listed.get(3)!.buckets.map((b) => b.count), expectedCounts([3000, 103_000, 203_000]));
      assert.deepEqual(listed.get(18)!.buckets.map((b) => b.count), expectedCounts([18_000, 118_000]));
      assert.equal(dp.delayHistograms([]).size, 0);
      assert.equal(dp.delayHistograms([999]).size, 0);
      assert.deepEqual(dp.delayHistogram(7), all.get(7));
      dp.apply(state([]));
    });

    it('a freed slot\'s histogram is zeroed, the class that reuses the slot starts from zero, and a group with no class left is given back', () => {
      const dp = new Datapath(eg);
      dp.apply(state([1, 2]));
      const slot2 = dp.slots().get(2)!;
      for (const d of [0, 5000, 5000]) sendHeld(2, d);
      for (const d of [0, 7000]) sendHeld(1, d);
      dp.apply(state([1]));
      assert.equal(dp.delayHistogram(2), undefined);
      assert.deepEqual(eg.hists.get(slot2), Array(HIST_BUCKETS).fill(0), 'the free slot\'s histogram is zero');
      assert.deepEqual(dp.delayHistogram(1)!.buckets.map((b) => b.count), expectedCounts([0, 7000]), 'its group neighbour keeps its counts');
      dp.apply(state([1, 9]));
      assert.equal(dp.slots().get(9), slot2, 'class 9 reuses class 2\'s slot');
      assert.equal(dp.delayHistogram(9)!.total, 0);
      sendHeld(9, 2000);
      assert.deepEqual(dp.delayHistogram(9)!.buckets.map((b) => b.count), expectedCounts([2000]));
      const group = eg.hists.groupMapId(0)!;
      dp.apply(state([]));
      assert.deepEqual(eg.hists.liveGroups(), [], 'no class left in the group: its map is retired');
      assert.throws(() => BpfMap.openById(group), /ENOENT/, 'and gone from the kernel');
    });

    it('a failed apply leaves no histogram behind for the slots it allocated', () => {
      const dp = new Datapath(eg);
      dp.apply(state([1]));
      // 40 new classes (slots and histograms are made first), then more marks than mark_class holds.
      const tooMany = state(Array.from({ length: 41 }, (_, i) => i + 1));
      for (let mark = 1000; mark < 1000 + 65_536; mark++) tooMany.marks.set(mark, 1);
      assert.throws(() => dp.apply(tooMany), (err: unknown) => err instanceof ApplyFailed && err.rolledBack && /mark_class/.test(err.message));
      assert.deepEqual(eg.hists.liveGroups(), [0], 'the groups of slots 16..41 were given back');
      assert.deepEqual(eg.hists.get(17), undefined);
      assert.deepEqual(dp.slots(), new Map([[1, 1]]));
      dp.apply(state([]));
    });

    it('an apply gives a histogram to kept classes that have none (maps pinned before histograms existed)', () => {
      new Datapath(eg).apply(state([1, 2]));
      eg.hists.remove([1, 2], new Set());
      const restarted = new Datapath(eg);
      assert.deepEqual(restarted.apply(state([1, 2])).changes, {});
      assert.deepEqual([...eg.hists.present([1, 2])], [1, 2]);
      restarted.apply(state([]));
    });

    it('memory tables agree with the kernel on random applies and packets (fast-check)', () => {
      const op = fc.oneof(
        fc.record({ kind: fc.constant('apply' as const), ids: fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { maxLength: 6 }) }),
        fc.record({ kind: fc.constant('send' as const), id: fc.integer({ min: 1, max: 6 }), delay: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50_000_000 })) }),
      );
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
          tc.clear();
          const kernel = new Datapath(eg);
          const tables = memoryTables();
          const memory = new Datapath(tables);
          for (const o of ops) {
            if (o.kind === 'apply') {
              kernel.apply(state(o.ids));
              memory.apply(state(o.ids));
            } else {
              const slot = memory.slots().get(o.id);
              const verdict = sendHeld(o.id, o.delay, slot !== undefined); // an unknown mark passes unclassified
              assert.equal(verdict, TC_ACT_OK);
              if (slot !== undefined) tables.hists.record(slot, o.delay);
            }
            assert.deepEqual(kernel.slots(), memory.slots());
            assert.deepEqual(kernel.delayHistograms(), memory.delayHistograms());
            assert.deepEqual(kernel.delayHistograms([2, 5, 7]), memory.delayHistograms([2, 5, 7]));
          }
          kernel.apply(state([]));
        }),
        { numRuns: 40 },
      );
    });
  });

  it('gives every slot a histogram (groups of 16, made in chunks of fds) and gives them all back', () => {
    const slots = Array.from({ length: 65_535 }, (_, i) => i + 1);
    eg.hists.reset(slots);
    assert.equal(eg.hists.present(slots).size, 65_535);
    assert.equal(eg.hists.liveGroups().length, 4096);
    assert.deepEqual(eg.hists.get(65_535), Array(HIST_BUCKETS).fill(0));
    eg.hists.remove(slots, new Set([3]));
    assert.deepEqual(eg.hists.liveGroups(), [0], 'the group of a slot still in use stays');
    eg.hists.remove([3], new Set());
    assert.equal(eg.hists.present(slots).size, 0);
  });

  it('the counts codec round-trips every u64 up to 2^53 - 1 and refuses a count above', () => {
    const counts = Array.from({ length: HIST_BUCKETS }, (_, i) => [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER][i % 6]!);
    assert.deepEqual(delayHist.decode(delayHist.encode({ counts })), { counts });
    const big = delayHist.encode({ counts: new Array(HIST_BUCKETS).fill(0) });
    big.writeBigUInt64LE(2n ** 53n, 8 * 7);
    assert.throws(() => delayHist.decode(big), /counts\[7\] = 9007199254740992 does not fit a safe integer/);
  });

  it('histogramOf refuses a wrong number of counts, and delayQuantile a q outside (0, 1]', () => {
    assert.throws(() => histogramOf([1, 2]), /98 counts/);
    const h = histogramOf(new Array(HIST_BUCKETS).fill(0));
    assert.equal(delayQuantile(h, 0.5), undefined, 'empty');
    assert.throws(() => delayQuantile(h, 0), /\(0, 1\]/);
    assert.throws(() => delayQuantile(h, 1.5), /\(0, 1\]/);
  });
});
