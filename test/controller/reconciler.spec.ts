import assert from 'node:assert/strict';
import sinon from 'sinon';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { Datapath, memoryTables, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { Reconciler, type Desired, type ReconcileResult } from '../../controller/reconciler/reconciler.js';
import { readSnapshot, SnapshotWriter, writeSnapshot } from '../../controller/reconciler/snapshot.js';
import { desiredState } from '../../controller/desired/desired-state.js';
import { record } from './fixtures.js';

const inv = { fq: true, cgroupRoot: '/sys/fs/cgroup', cgroupIds: (p: string) => (p === '/web' ? 42n : undefined) };
const state = (rate = 10_000_000): ShaperState =>
  desiredState([record('a', 1, { rate, match: { marks: [7], cgroups: ['/web'], dst: ['10.0.0.0/8'] } }), record('b', 2, { parent: 'a' })], {}, inv).shaper;

describe('Reconciler', () => {
  let clock: sinon.SinonFakeTimers;
  let dir: string;
  let tables: ReturnType<typeof memoryTables>;
  let datapath: Datapath;
  let applies: number;
  let results: ReconcileResult[];
  let desired$: Subject<Desired<ShaperState>>;
  let reconciler: Reconciler<ShaperState>;

  let unreadable: string[];
  const start = (apply?: (s: ShaperState) => ReturnType<Datapath['apply']>, startFromSnapshot?: boolean) => {
    const r = (reconciler = new Reconciler<ShaperState>({
      startFromSnapshot,
      onUnreadableSnapshot: (m) => unreadable.push(m),
      apply: (s) => {
        applies++;
        return (apply ?? ((x) => datapath.apply(x)))(s);
      },
      snapshotFile: join(dir, 'eth0.last-known-good.json'),
      resyncMs: 30_000,
      backoff: { minMs: 1000, maxMs: 8000 },
      random: () => 1,
    }));
    return r.run(desired$).subscribe((x) => results.push(x));
  };

  beforeEach(() => {
    clock = sinon.useFakeTimers();
    dir = mkdtempSync(join(tmpdir(), 'pacer-rec-'));
    tables = memoryTables();
    datapath = new Datapath(tables);
    applies = 0;
    results = [];
    unreadable = [];
    desired$ = new Subject();
  });
  afterEach(() => {
    clock.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies a change and drops an identical repeat', () => {
    const sub = start();
    desired$.next({ revision: 3, state: state() });
    desired$.next({ revision: 3, state: state() });
    assert.equal(applies, 1);
    assert.deepEqual(datapath.read(), state());
    desired$.next({ revision: 4, state: state(20_000_000) });
    assert.equal(applies, 2);
    assert.equal(datapath.read().classes.get(1)!.rate_bps, 20_000_000);
    assert.deepEqual(results.map((r) => [r.ok, r.revision, r.why]), [[true, 3, 'change'], [true, 4, 'change']]);
    sub.unsubscribe();
  });

  it('a new revision with the state already applied is reported applied without calling apply; after a failure it is applied', () => {
    let fail = false;
    const sub = start((s) => {
      if (fail) throw new Error('map "class_config" is full');
      return datapath.apply(s);
    });
    desired$.next({ revision: 1, state: state() });
    desired$.next({ revision: 2, state: state() }); // a class of another host changed
    assert.equal(applies, 1);
    assert.deepEqual(results.map((r) => [r.ok, r.revision, r.why, r.ok && r.report.changes]), [[true, 1, 'change', { class_slot: 2, class_config: 2, mark_class: 1, cgroup_class: 1, dst4_class: 1, settings: 1 }], [true, 2, 'change', {}]]);
    fail = true;
    desired$.next({ revision: 3, state: state(20_000_000) });
    assert.equal(results.at(-1)!.ok, false);
    fail = false;
    desired$.next({ revision: 4, state: state() }); // back to the state of revision 1: the failed apply may have left anything
    assert.equal(applies, 3);
    assert.deepEqual(datapath.read(), state());
    sub.unsubscribe();
  });

  it('the periodic resync repairs drift', () => {
    const sub = start();
    desired$.next({ revision: 1, state: state() });
    tables.marks.deleteMany([7]); // someone deleted an entry by hand
    tables.dst4.setMany([['192.168.0.0/16', 1]]);
    clock.tick(29_999);
    assert.equal(tables.marks.entries().size, 0);
    clock.tick(1);
    assert.deepEqual(datapath.read(), state());
    const last = results.at(-1)!;
    assert.ok(last.ok && last.why === 'resync');
    assert.deepEqual(last.report.changes, { mark_class: 1, dst4_class: 1 });
    clock.tick(30_000);
    assert.deepEqual((results.at(-1) as { report: { changes: object } }).report.changes, {}, 'a resync without drift writes nothing');
    sub.unsubscribe();
  });

  it('a failed apply is a result, not the end: retried with backoff until it works', () => {
    let failures = 2;
    const sub = start((s) => {
      if (failures-- > 0) throw new Error('map "class_config" is full');
      return datapath.apply(s);
    });
    desired$.next({ revision: 1, state: state() });
    assert.deepEqual(results.map((r) => [r.ok, r.ok ? 0 : r.retryInMs]), [[false, 1000]]);
    clock.tick(999);
    assert.equal(applies, 1);
    clock.tick(1);
    assert.deepEqual(results.map((r) => [r.ok, r.ok ? 0 : r.retryInMs]), [[false, 1000], [false, 2000]]);
    clock.tick(2000);
    assert.equal(results.at(-1)!.ok, true);
    assert.deepEqual(datapath.read(), state());
    clock.tick(10_000);
    assert.equal(applies, 3, 'no retry after success');
    sub.unsubscribe();
  });

  it('one bad class does not stop the others', () => {
    const sub = start();
    const d = desiredState([record('good', 1), record('orphan', 2, { parent: 'missing' }), record('bad-prefix', 3, { match: { marks: [], cgroups: [], dst: ['10.0.0.1/8'] } })], {}, inv);
    desired$.next({ revision: 9, state: d.shaper });
    assert.ok(results[0]!.ok);
    assert.deepEqual([...datapath.read().classes.keys()], [1, 3]);
    assert.deepEqual(d.classErrors.map((e) => e.class), ['bad-prefix', 'orphan']);
    sub.unsubscribe();
  });

  it('writes a snapshot after each successful apply and enforces it at the next start before the API answers', async () => {
    let sub = start();
    desired$.next({ revision: 5, state: state() });
    sub.unsubscribe();
    await reconciler.snapshotsWritten();
    assert.deepEqual(readdirSync(dir), ['eth0.last-known-good.json'], 'no temporary file left');
    assert.deepEqual(readSnapshot<Desired<ShaperState>>(join(dir, 'eth0.last-known-good.json')), { revision: 5, state: state() });

    // A restarted agent on fresh maps (or maps someone emptied): the snapshot is applied at once.
    tables = memoryTables();
    datapath = new Datapath(tables);
    results = [];
    desired$ = new Subject();
    sub = start();
    assert.deepEqual(results.map((r) => [r.ok, r.revision]), [[true, 5]]);
    assert.deepEqual(datapath.read(), state());
    desired$.next({ revision: 5, state: state() });
    assert.equal(results.length, 1, 'the API agreeing with the snapshot is a repeat');
    sub.unsubscribe();
  });

  it('a corrupt or foreign snapshot file is set aside, reported and ignored: the reconciler runs on', () => {
    const file = join(dir, 'eth0.last-known-good.json');
    for (const [i, text] of ['{"revision": 3, "state": {"$map"', '[]', '{"revision": "x", "state": {}}'].entries()) {
      writeFileSync(file, text);
      results = [];
      unreadable = [];
      const sub = start();
      assert.equal(results.length, 0, `case ${i}: nothing applied from the file`);
      assert.equal(unreadable.length, 1, `case ${i}: reported once`);
      assert.match(unreadable[0]!, /cannot be read .*moved to .*eth0\.last-known-good\.json\.unreadable and ignored/);
      assert.ok(readdirSync(dir).includes('eth0.last-known-good.json.unreadable'), 'kept for a look');
      assert.ok(!readdirSync(dir).includes('eth0.last-known-good.json'), 'and not read again');
      desired$.next({ revision: 10 + i, state: state() });
      assert.deepEqual(results.map((r) => [r.ok, r.revision]), [[true, 10 + i]], 'the API\'s state is applied as usual');
      sub.unsubscribe();
    }
  });

  it('with the kernel holding a state of its own (pins found) the snapshot is not applied: it could only be older', async () => {
    let sub = start();
    desired$.next({ revision: 5, state: state(10_000_000) });
    sub.unsubscribe();
    await reconciler.snapshotsWritten();
    // Revision 6 reached the maps, then the agent was killed before its snapshot was renamed.
    datapath.apply(state(20_000_000));
    writeFileSync(join(dir, 'eth0.last-known-good.json.4242.7.tmp'), '{"revis');
    results = [];
    desired$ = new Subject();
    sub = start(undefined, false);
    assert.equal(results.length, 0, 'nothing applied before the API answers');
    assert.deepEqual(datapath.read(), state(20_000_000), 'the kernel keeps the newer state');
    assert.deepEqual(readdirSync(dir), ['eth0.last-known-good.json'], 'the interrupted write\'s temporary file is gone');
    desired$.next({ revision: 6, state: state(20_000_000) });
    assert.deepEqual(results.map((r) => [r.ok, r.revision]), [[true, 6]]);
    sub.unsubscribe();
  });

  it('a resync of the same state writes no new snapshot; a new state does', async () => {
    const write = sinon.spy(SnapshotWriter.prototype, 'write');
    try {
      const sub = start();
      desired$.next({ revision: 1, state: state() });
      clock.tick(60_000); // two resyncs
      assert.equal(results.length, 3);
      assert.equal(write.callCount, 1);
      desired$.next({ revision: 2, state: state(20_000_000) });
      assert.equal(write.callCount, 2);
      await reconciler.snapshotsWritten();
      assert.equal(readSnapshot<Desired<ShaperState>>(join(dir, 'eth0.last-known-good.json'))!.revision, 2);
      sub.unsubscribe();
    } finally {
      write.restore();
    }
  });

  it('SnapshotWriter: the file only moves forward; flushSync writes the newest at once; no temporary files stay', async () => {
    const file = join(dir, 'w.json');
    const w = new SnapshotWriter(file);
    for (const revision of [1, 2, 3]) w.write({ revision });
    await w.idle();
    assert.deepEqual(readSnapshot(file), { revision: 3 });
    w.write({ revision: 4 });
    w.flushSync();
    assert.deepEqual(readSnapshot(file), { revision: 4 }, 'on disk before the queued write ran');
    await w.idle();
    assert.deepEqual(readSnapshot(file), { revision: 4 });
    assert.deepEqual(readdirSync(dir), ['w.json']);
    writeFileSync(join(dir, 'blocker'), '');
    const broken = new SnapshotWriter(join(dir, 'blocker', 'x.json'));
    broken.write({ revision: 1 });
    await broken.idle();
    assert.match(broken.takeError() ?? '', /ENOTDIR|EEXIST/);
    assert.equal(broken.takeError(), undefined, 'reported once');
  });

  it('a burst coalesces: 1,000 revisions arriving during one slow apply cost one more apply, of the final revision', async () => {
    // The in-memory datapath behind an apply that takes as long as the test says (a slow kernel, a big diff).
    const gates: Array<() => void> = [];
    const slow = new Reconciler<ShaperState>({
      apply: async (s) => {
        applies++;
        await new Promise<void>((r) => gates.push(r));
        return datapath.apply(s);
      },
      snapshotFile: join(dir, 'eth0.last-known-good.json'),
      resyncMs: 30_000,
      backoff: { minMs: 1000, maxMs: 8000 },
    });
    const sub = slow.run(desired$).subscribe((x) => results.push(x));
    desired$.next({ revision: 1, state: state(1_000_000) });
    for (let r = 2; r <= 1001; r++) desired$.next({ revision: r, state: state(1_000_000 + r) });
    assert.equal(applies, 1, 'nothing else starts while the first apply runs');
    gates.shift()!();
    await clock.tickAsync(0);
    assert.equal(applies, 2, 'the 1,000 revisions that waited are one apply');
    gates.shift()!();
    await clock.tickAsync(0);
    assert.deepEqual(results.map((r) => [r.ok, r.revision]), [[true, 1], [true, 1001]]);
    assert.equal(datapath.read().classes.get(1)!.rate_bps, 1_001_001, 'the final revision is what the maps hold');
    sub.unsubscribe();
    await slow.close();
    assert.equal(readSnapshot<Desired<ShaperState>>(join(dir, 'eth0.last-known-good.json'))!.revision, 1001);
    assert.deepEqual(readdirSync(dir), ['eth0.last-known-good.json'], 'no temporary file left');
  });

  it('a burst coalesces with a synchronous apply too: revisions emitted during it (re-entrantly) are one more apply', () => {
    let burst = true;
    const sub = start((s) => {
      if (burst) {
        burst = false;
        for (let r = 2; r <= 1001; r++) desired$.next({ revision: r, state: state(1_000_000 + r) });
      }
      return datapath.apply(s);
    });
    desired$.next({ revision: 1, state: state(1_000_000) });
    assert.equal(applies, 2);
    assert.deepEqual(results.map((r) => r.revision), [1, 1001]);
    sub.unsubscribe();
  });

  it('SnapshotWriter: one write at a time; writes asked for meanwhile are one later write of the newest; close() leaves no temporary file', async () => {
    const file = join(dir, 'w.json');
    writeFileSync(`${file}.4242.tmp`, '{"revis'); // a crashed agent's: removed on start (Reconciler.run) and by close()
    const w = new SnapshotWriter(file);
    // Each disk write, counted as it runs.
    const inner = w as unknown as { writeAsync(gen: number, text: string): Promise<void> };
    const original = inner.writeAsync.bind(w);
    let inFlight = 0;
    let most = 0;
    const texts: string[] = [];
    inner.writeAsync = async (gen, text) => {
      most = Math.max(most, ++inFlight);
      texts.push(text);
      try {
        await original(gen, text);
      } finally {
        inFlight--;
      }
    };
    for (let revision = 1; revision <= 1000; revision++) w.write({ revision, state: {} });
    await w.idle();
    assert.equal(most, 1, 'never two writes at once');
    assert.deepEqual(texts.map((t) => JSON.parse(t).revision), [1, 1000], 'the first, then the newest');
    assert.deepEqual(readSnapshot(file), { revision: 1000, state: {} });
    w.write({ revision: 1001, state: {} });
    await w.close();
    assert.deepEqual(readSnapshot(file), { revision: 1001, state: {} });
    const r = new Reconciler<ShaperState>({ apply: (s) => datapath.apply(s), snapshotFile: file, resyncMs: 30_000, backoff: { minMs: 1000, maxMs: 8000 } });
    r.run(desired$).subscribe().unsubscribe();
    await r.close();
    assert.deepEqual(readdirSync(dir), ['w.json']);
  });

  it('SnapshotWriter: a state asked for while a write runs is serialized once, when its own write starts; one that cannot be is reported, not thrown', async () => {
    const file = join(dir, 'w.json');
    const w = new SnapshotWriter(file);
    let serialized = 0;
    const state = (revision: number) => ({ revision, toJSON: () => (serialized++, { revision }) });
    w.write(state(1));
    assert.equal(serialized, 1, 'no write in flight: serialized at once');
    for (let revision = 2; revision <= 1000; revision++) w.write(state(revision));
    assert.equal(serialized, 1, 'while the first write runs, nothing more is serialized');
    await w.idle();
    assert.equal(serialized, 2, 'then the newest state, once');
    assert.deepEqual(readSnapshot(file), { revision: 1000 });
    const circular: Record<string, unknown> = { revision: 1001 };
    circular.self = circular;
    assert.doesNotThrow(() => w.write(circular));
    assert.match(w.takeError() ?? '', /cannot serialize the snapshot/);
    await w.close();
    assert.deepEqual(readSnapshot(file), { revision: 1000 }, 'the previous snapshot stays');
  });

  it('snapshot: atomic write keeps the old file when the write fails; Maps and bigints round-trip', () => {
    const file = join(dir, 's.json');
    writeSnapshot(file, { m: new Map([[1n, 2]]) });
    assert.deepEqual(readSnapshot(file), { m: new Map([[1n, 2]]) });
    writeFileSync(join(dir, 'blocker'), '');
    assert.throws(() => writeSnapshot(join(dir, 'blocker', 'x.json'), {}));
    assert.deepEqual(readSnapshot(file), { m: new Map([[1n, 2]]) });
  });
});
