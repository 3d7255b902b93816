/**
 * bench:agent, part 2: the agent's Reconciler driving the kernel Datapath on real pinned maps,
 * 100,000 classes from empty and then a no-op resync, against the raw batch update of the same
 * entries (bench/raw-batch.ts, the floor bench:bpf uses).
 *
 * One interface holds at most 65,535 classes (PACER_MAX_CLASSES slots, slot 0 unused), so the
 * 100,000 classes are spread over interfaces of `perIface` classes each (default 2 × 50,000), one
 * Reconciler per interface as the agent runs them; times are summed over the interfaces. Each
 * class has one mark selector; classes after the first 1,000 of an interface are children of one
 * of those (two levels). The maps are the real pacer_tc.o's, loaded on fresh pins under
 * /sys/fs/bpf/pacer-bench-* for every round (the program is not attached: map writes do not
 * depend on it), and removed after the round.
 *
 * What the reconcile writes from empty: class_slot, class_state (zeroed), class_stats (zeroed,
 * per-CPU), class_config, mark_class and settings, and a fresh delay-histogram map per class in
 * delay_hist; the floor writes exactly those entries, pre-encoded, with one update-batch syscall
 * per map, and makes the histograms with the same DelayHistMap.reset call the Datapath makes. The reconcile is timed from handing the
 * Reconciler its desired state to its result (its own timings split the Datapath's apply from
 * the last-known-good snapshot it writes after every successful apply, as the agent does).
 * The no-op resync is the Reconciler's periodic resync tick on the same maps, desired == kernel:
 * its first tick, right after the full apply (cold: V8 has not compiled the resync's loops yet,
 * and the full apply's garbage is still to collect), and the two ticks after it (what the agent
 * pays every resync interval once it runs).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, NEVER, startWith, take, toArray } from 'rxjs';
import { Reconciler, type ReconcileResult } from '../controller/reconciler/reconciler.js';
import { Datapath, type ShaperState } from '../shaper-bpf/src/datapath.js';
import { EgressObject } from '../shaper-bpf/src/egress.js';
import * as layout from '../shaper-bpf/src/layout.js';
import { struct, u32 } from '../shaper-bpf/src/typed-map.js';
import { makeBenchPinDir, removeBenchPinDir, trackObject } from './pins.js';
import { readAllBatched } from './lookup-batch.js';
import { encodeBatch, writeRaw, zeroBatch } from './raw-batch.js';
import { log, summary, type Summary } from './report.js';
import { median, round } from './stats.js';

export interface ReconcileBenchOptions {
  classes: number;
  perIface: number;
  rounds: number;
}

const ROOTS = 1_000;
/** Long enough that the resync does not fire during the full apply of a round. */
const RESYNC_MS = 1_500;

/** Interface k's desired state: classes k·perIface + 1 …, each with its own mark. */
function desiredFor(first: number, count: number): ShaperState {
  const classes = new Map<number, layout.ClassConfig>();
  const marks = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const id = first + i;
    classes.set(id, {
      rate_bps: 1_000_000 + (id % 1000) * 1_000_000,
      burst_ns: 1_000_000,
      horizon_ns: 2_000_000_000,
      ecn_ns: id % 2 ? 5_000_000 : 0,
      parent_id: i < ROOTS ? 0 : first + (i % ROOTS),
      flags: 0,
    });
    marks.set(id, id);
  }
  return { classes, marks, cgroups: new Map(), dst4: new Map(), dst6: new Map(), settings: { default_class: 0, flags: 0 } };
}

/** The same entries the Datapath writes from empty (slots allocated in class id order from 1), encoded once. */
function rawBatches(eg: EgressObject, d: ShaperState) {
  const ids = [...d.classes.keys()].sort((a, b) => a - b);
  const slotOf = new Map(ids.map((id, i) => [id, i + 1] as const));
  const slots = ids.map((id) => slotOf.get(id)!);
  const config: Array<readonly [number, layout.SlotConfig]> = ids.map((id) => {
    const c = d.classes.get(id)!;
    const entry = { rate_bps: c.rate_bps, burst_ns: c.burst_ns, horizon_ns: c.horizon_ns, ecn_ns: c.ecn_ns, parent_slot: c.parent_id ? slotOf.get(c.parent_id)! : 0, class_id: id, flags: c.flags, reserved: 0 };
    return [slotOf.get(id)!, entry] as const;
  });
  return [
    encodeBatch(eg.slots.map, u32, u32, ids.map((id) => [id, slotOf.get(id)!] as const)),
    encodeBatch(eg.state.map, u32, struct(layout.classState), slots.map((s) => [s, { t_last: 0 }] as const)),
    zeroBatch(eg.stats.map, u32, slots),
    encodeBatch(eg.config.map, u32, struct(layout.classConfig), config),
    encodeBatch(eg.marks.map, u32, u32, [...d.marks].map(([mark, id]) => [mark, slotOf.get(id)!] as const)),
    encodeBatch(eg.settings.map, u32, struct(layout.settings), [[0, { default_slot: 0, flags: 0, generation: 0, cgroup_selectors: 0 }]]),
  ];
}

const nowMs = () => performance.now();

/**
 * The floor of the delay histograms the Datapath gives new slots: the binding's own
 * DelayHistMap.reset on fresh maps, the same call the Datapath makes (inner maps created in
 * groups of slots, written into delay_hist in batches; each batch waits for an RCU grace period).
 */
function rawHistograms(eg: EgressObject, slots: readonly number[]): void {
  eg.hists.reset(slots);
}

export interface ReconcileBenchResult {
  classes: number;
  interfaces: number;
  perIface: number;
  rounds: number;
  /** ms, summed over the interfaces, per round. */
  raw: Summary;
  /** The floor's parts: the batch writes, and creating the histogram maps. */
  rawMaps: Summary;
  rawHists: Summary;
  /** Reading class_slot, class_config and mark_class of every interface with BPF_MAP_LOOKUP_BATCH. */
  resyncFloor: Summary;
  reconcile: Summary;
  reconcileApply: Summary;
  reconcileSnapshot: Summary;
  resync: Summary;
  resyncApply: Summary;
  resyncSnapshot: Summary;
  /** The next resync ticks (the second and third), summed over the interfaces: each interface's median of the two. */
  resyncLater: Summary;
  ratio: number;
  /** Datapath.apply (the full apply, inside the Reconciler) against the floor: ratio of medians, and each round's own ratio. */
  applyRatio: number;
  perRoundApplyRatio: Summary;
  perRoundRatio: Summary;
  entriesWritten: Record<string, number>;
}

export async function reconcileBench(o: ReconcileBenchOptions): Promise<ReconcileBenchResult> {
  if (o.perIface > layout.MAX_CLASSES - 1) throw new Error(`--per-iface: an interface holds at most ${layout.MAX_CLASSES - 1} classes`);
  const perIface = o.perIface;
  const ifaces = Math.ceil(o.classes / perIface);
  const desired = Array.from({ length: ifaces }, (_, k) => desiredFor(k * perIface + 1, Math.min(perIface, o.classes - k * perIface)));
  const stateDir = mkdtempSync(join(os.tmpdir(), 'pacer-bench-agent-state-'));
  const rows = { rawMaps: [] as number[], rawHists: [] as number[], resyncFloor: [] as number[], raw: [] as number[], reconcile: [] as number[], reconcileApply: [] as number[], reconcileSnapshot: [] as number[], resync: [] as number[], resyncApply: [] as number[], resyncSnapshot: [] as number[], resyncLater: [] as number[] };
  let entriesWritten: Record<string, number> = {};
  try {
    for (let r = 0; r < o.rounds; r++) {
      // The floor: the same entries into fresh maps.
      {
        const dirs = desired.map(() => makeBenchPinDir());
        const objects = dirs.map((pinRoot) => trackObject(EgressObject.load({ pinRoot })));
        const batches = objects.map((eg, k) => rawBatches(eg, desired[k]!));
        let maps = 0;
        let hists = 0;
        for (const [k, b] of batches.entries()) {
          const t = nowMs();
          writeRaw(b);
          const t1 = nowMs();
          rawHistograms(objects[k]!, Array.from({ length: desired[k]!.classes.size }, (_, i) => i + 1));
          maps += t1 - t;
          hists += nowMs() - t1;
        }
        rows.rawMaps.push(maps);
        rows.rawHists.push(hists);
        rows.raw.push(maps + hists);
        assert.equal(objects[0]!.config.get(ROOTS + 1)?.class_id, ROOTS + 1, 'the floor wrote class_config');
        objects.forEach((eg) => eg.close());
        dirs.forEach(removeBenchPinDir);
      }
      // The agent's path: one Reconciler per interface, on fresh maps, then its first resync.
      const dirs = desired.map(() => makeBenchPinDir());
      const objects = dirs.map((pinRoot) => trackObject(EgressObject.load({ pinRoot })));
      let total = 0;
      const full: ReconcileResult[] = [];
      const resyncs: ReconcileResult[] = [];
      let later = 0;
      for (let k = 0; k < ifaces; k++) {
        const datapath = new Datapath(objects[k]!);
        const snapshotFile = join(stateDir, `bench${k}.last-known-good.json`);
        rmSync(snapshotFile, { force: true });
        const reconciler = new Reconciler<ShaperState>({ apply: (s) => datapath.apply(s), snapshotFile, resyncMs: RESYNC_MS, backoff: { minMs: 500, maxMs: 30_000 } });
        // The desired state arrives once and stays (NEVER: the stream does not end, as the API's does not).
        const results = reconciler.run(NEVER.pipe(startWith({ revision: 1, state: desired[k]! })));
        const [first, second, ...next] = (await firstValueFrom(results.pipe(take(4), toArray()))) as ReconcileResult[];
        if (!first || !second) throw new Error('the Reconciler stopped before its first resync');
        full.push(first);
        resyncs.push(second);
        const nextMs = next.map((x) => x.timings.applyMs + x.timings.snapshotMs);
        if (next.some((x) => !x.ok || x.why !== 'resync' || Object.keys(x.report.changes).length > 0)) throw new Error(`a later resync was not a no-op: ${JSON.stringify(next)}`);
        later += median(nextMs);
        total += first.timings.applyMs + first.timings.snapshotMs;
        if (!first.ok) throw new Error(`the reconcile failed: ${first.error}`);
        if (!second.ok || second.why !== 'resync') throw new Error(`expected a resync, got ${JSON.stringify(second)}`);
        assert.deepEqual(second.report.changes, {}, 'the resync found nothing to change');
        if (r === 0 && k === 0) {
          entriesWritten = first.report.changes;
          assert.deepEqual(datapath.read(), desired[k], 'the maps hold the desired state');
        }
      }
      // The floor of the resync's reads: the same maps read with BPF_MAP_LOOKUP_BATCH.
      {
        const t = nowMs();
        for (const eg of objects) for (const m of [eg.slots.map, eg.config.map, eg.marks.map]) readAllBatched(m);
        rows.resyncFloor.push(nowMs() - t);
      }
      const sum = (xs: ReconcileResult[], f: (x: ReconcileResult) => number) => xs.reduce((a, x) => a + f(x), 0);
      rows.reconcile.push(total);
      rows.reconcileApply.push(sum(full, (x) => x.timings.applyMs));
      rows.reconcileSnapshot.push(sum(full, (x) => x.timings.snapshotMs));
      rows.resync.push(sum(resyncs, (x) => x.timings.applyMs + x.timings.snapshotMs));
      rows.resyncApply.push(sum(resyncs, (x) => x.timings.applyMs));
      rows.resyncSnapshot.push(sum(resyncs, (x) => x.timings.snapshotMs));
      rows.resyncLater.push(later);
      objects.forEach((eg) => eg.close());
      dirs.forEach(removeBenchPinDir);
      log(
        `reconcile round ${r + 1}/${o.rounds}: raw ${round(rows.raw.at(-1)!, 1)} ms, reconcile ${round(rows.reconcile.at(-1)!, 1)} ms ` +
          `(apply ${round(rows.reconcileApply.at(-1)!, 1)}, snapshot ${round(rows.reconcileSnapshot.at(-1)!, 1)}), no-op resync ${round(rows.resync.at(-1)!, 1)} ms, later ones ${round(rows.resyncLater.at(-1)!, 1)} ms ` +
          `(reads with lookup batches: ${round(rows.resyncFloor.at(-1)!, 1)} ms)`,
      );
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  const raw = summary(rows.raw);
  const reconcile = summary(rows.reconcile);
  return {
    classes: o.classes,
    interfaces: ifaces,
    perIface,
    rounds: o.rounds,
    raw,
    rawMaps: summary(rows.rawMaps),
    rawHists: summary(rows.rawHists),
    resyncFloor: summary(rows.resyncFloor),
    reconcile,
    reconcileApply: summary(rows.reconcileApply),
    reconcileSnapshot: summary(rows.reconcileSnapshot),
    resync: summary(rows.resync),
    resyncApply: summary(rows.resyncApply),
    resyncSnapshot: summary(rows.resyncSnapshot),
    resyncLater: summary(rows.resyncLater),
    ratio: round(reconcile.median / raw.median, 2),
    applyRatio: round(median(rows.reconcileApply) / raw.median, 2),
    perRoundApplyRatio: summary(rows.reconcileApply.map((v, i) => v / rows.raw[i]!)),
    perRoundRatio: summary(rows.reconcile.map((v, i) => v / rows.raw[i]!)),
    entriesWritten,
  };
}
