/**
 * DelayHistogramCache and histogramIncrease (controller/metrics/delay-histograms.ts) on an
 * in-memory Datapath: which classes' histograms are read again, and what an interval gained.
 */
import assert from 'node:assert/strict';
import sinon from 'sinon';
import { Datapath, memoryTables, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import { DelayHistogramCache, histogramIncrease } from '../../controller/metrics/delay-histograms.js';

const ZERO: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };

function classes(ids: number[]): ShaperState {
  return {
    classes: new Map(ids.map((id) => [id, { rate_bps: 1_000_000, burst_ns: 0, horizon_ns: 1_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 }])),
    marks: new Map(),
    cgroups: new Map(),
    dst4: new Map(),
    dst6: new Map(),
    settings: { default_class: 0, flags: 0 },
  };
}

describe('DelayHistogramCache', () => {
  const tables = memoryTables();
  const datapath = new Datapath(tables);
  datapath.apply(classes([1, 2, 3]));
  const slot = (id: number) => datapath.slots().get(id)!;
  const stats = (packets: Record<number, number>) => new Map(Object.entries(packets).map(([id, p]) => [Number(id), { ...ZERO, packets: p }]));

  afterEach(() => sinon.restore());

  it('reads a class once it passed packets, then only when its packets moved; never an idle class', () => {
    const cache = new DelayHistogramCache();
    const read = sinon.spy(datapath, 'delayHistograms');
    tables.hists.record(slot(2), 5_000);
    let h = cache.histograms(datapath, stats({ 1: 0, 2: 1, 3: 0 }));
    sinon.assert.calledOnce(read);
    assert.deepEqual(read.firstCall.args, [[2]], 'classes 1 and 3 passed nothing: not read');
    assert.deepEqual([...h.keys()], [2], 'and not returned (an empty histogram)');
    assert.equal(h.get(2)!.total, 1);

    h = cache.histograms(datapath, stats({ 1: 0, 2: 1, 3: 0 }));
    sinon.assert.calledOnce(read); // nothing moved: nothing read
    assert.equal(h.get(2)!.total, 1, 'the cached histogram is returned');

    tables.hists.record(slot(3), 7_000);
    tables.hists.record(slot(3), 7_000);
    h = cache.histograms(datapath, stats({ 1: 0, 2: 1, 3: 2 }));
    sinon.assert.calledTwice(read);
    assert.deepEqual(read.secondCall.args, [[3]]);
    assert.equal(h.get(3)!.total, 2);

    // Class 2's slot freed and given again: its counters start from 0, and its old histogram goes.
    h = cache.histograms(datapath, stats({ 1: 0, 2: 0, 3: 2 }));
    sinon.assert.calledTwice(read);
    assert.deepEqual([...h.keys()], [3]);
  });

  it('reads again a histogram that lagged its packets counter, once; forgets classes gone from the stats', () => {
    const cache = new DelayHistogramCache();
    const read = sinon.spy(datapath, 'delayHistograms');
    const before = datapath.delayHistogram(1)!.total;
    // class_stats already counts a packet its histogram does not have yet.
    cache.histograms(datapath, stats({ 1: before + 1 }));
    tables.hists.record(slot(1), 2_000);
    const h = cache.histograms(datapath, stats({ 1: before + 1 }));
    assert.deepEqual(read.secondCall.args, [[1]], 'read again at the same packets');
    assert.equal(h.get(1)!.total, before + 1);
    cache.histograms(datapath, stats({ 1: before + 1 }));
    sinon.assert.calledTwice(read);
    assert.equal(cache.histograms(datapath, stats({})).size, 0);
  });
});

describe('histogramIncrease', () => {
  const tables = memoryTables();
  const datapath = new Datapath(tables);
  datapath.apply(classes([1]));
  const slot = datapath.slots().get(1)!;

  it('is the per-bucket difference; after a reset (a count went down) it is the whole new histogram', () => {
    tables.hists.record(slot, 0);
    const a = datapath.delayHistogram(1)!;
    tables.hists.record(slot, 0);
    tables.hists.record(slot, 1_000_000);
    const b = datapath.delayHistogram(1)!;
    const d = histogramIncrease(b, a);
    assert.equal(d.total, 2);
    assert.deepEqual(d.buckets.filter((x) => x.count > 0).map((x) => [x.lowerNs, x.count]), [[0, 1], [b.buckets.find((x) => x.lowerNs <= 1_000_000 && 1_000_000 < x.upperNs)!.lowerNs, 1]]);
    tables.hists.reset([slot]);
    tables.hists.record(slot, 3_000);
    const c = datapath.delayHistogram(1)!;
    assert.deepEqual(histogramIncrease(c, b), c);
    assert.deepEqual(histogramIncrease(c, undefined), c);
  });
});
