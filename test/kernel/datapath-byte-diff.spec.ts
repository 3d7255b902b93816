/**
 * Datapath.apply compares what the maps hold as read (class_config as encoded bytes, selectors
 * as slots) instead of decoding every entry into objects and deep-comparing them. These tests
 * hold it to the writes the object diff made (the Datapath before this change, kept here as the
 * reference), on the real maps and on memory tables, over random sequences of desired states
 * with drift made behind the Datapath's back between applies.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { Datapath, memoryTables, type ShaperState, type ShaperTables } from '../../shaper-bpf/src/datapath.js';
import { diffMaps } from '../../shaper-bpf/src/diff.js';
import { FREE_SLOT, MAX_CLASSES, type ClassConfig, type SlotConfig } from '../../shaper-bpf/src/layout.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';

const SELECTORS = ['marks', 'cgroups', 'dst4', 'dst6'] as const;
type SelectorName = (typeof SELECTORS)[number];
const TABLE_NAMES: Record<SelectorName, string> = { marks: 'mark_class', cgroups: 'cgroup_class', dst4: 'dst4_class', dst6: 'dst6_class' };

/** What one apply wrote: class_config entries, and each selector map's writes and deletes. */
interface Writes {
  config: Array<[number, SlotConfig]>;
  upserts: Record<SelectorName, Array<[unknown, number]>>;
  deletes: Record<SelectorName, unknown[]>;
}
const noWrites = (): Writes => ({ config: [], upserts: { marks: [], cgroups: [], dst4: [], dst6: [] }, deletes: { marks: [], cgroups: [], dst4: [], dst6: [] } });
const sortedByKey = <T extends [unknown, unknown]>(xs: T[]) => [...xs].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : String(a[0]) > String(b[0]) ? 1 : 0));
const normalized = (w: Writes) => ({
  config: sortedByKey(w.config),
  upserts: Object.fromEntries(SELECTORS.map((k) => [k, sortedByKey(w.upserts[k])])),
  deletes: Object.fromEntries(SELECTORS.map((k) => [k, w.deletes[k].map(String).sort()])),
});

/** The tables, with every class_config and selector write recorded in `log` (reads go to the real tables). */
function recording(tables: ShaperTables, log: { writes: Writes }): ShaperTables {
  const config = Object.create(tables.config) as ShaperTables['config'];
  config.setMany = (entries) => {
    log.writes.config.push(...entries.map(([slot, c]) => [slot, { ...c }] as [number, SlotConfig]));
    tables.config.setMany(entries);
  };
  const out: ShaperTables = { ...tables, config };
  for (const k of SELECTORS) {
    const table = tables[k] as ShaperTables['marks'];
    const rec = Object.create(table) as ShaperTables['marks'];
    rec.setMany = (entries) => {
      log.writes.upserts[k].push(...(entries as Array<[unknown, number]>));
      table.setMany(entries);
    };
    rec.deleteMany = (keys) => {
      log.writes.deletes[k].push(...keys);
      table.deleteMany(keys);
    };
    (out as unknown as Record<string, unknown>)[k] = rec;
  }
  return out;
}

/**
 * The writes of the object diff, the Datapath's apply before it compared bytes (commit
 * 484ceff): every class_config entry decoded into a class (parent translated to a class id) and
 * deep-compared; selectors compared in class ids; new classes get the lowest free slots in
 * class id order; removed classes' slots are written free.
 */
function objectDiffWrites(t: ShaperTables, desired: ShaperState, slotCount = MAX_CLASSES): { writes: Writes; changes: Record<string, number> } {
  const slots = t.slots.entries();
  const idOf = new Map<number, number>();
  for (const [id, slot] of slots) idOf.set(slot, id);
  const classes = new Map<number, ClassConfig>();
  for (const [id, slot] of [...slots].sort((a, b) => a[0] - b[0])) {
    const c = t.config.get(slot) ?? FREE_SLOT;
    if (c.rate_bps === 0) continue;
    classes.set(id, { rate_bps: c.rate_bps, burst_ns: c.burst_ns, horizon_ns: c.horizon_ns, ecn_ns: c.ecn_ns, parent_id: idOf.get(c.parent_slot) ?? 0, flags: c.flags });
  }
  const used = new Set(slots.values());
  const fresh = [...desired.classes.keys()].filter((id) => !slots.has(id)).sort((a, b) => a - b);
  const free: number[] = [];
  for (let s = 1; s < slotCount && free.length < fresh.length; s++) if (!used.has(s)) free.push(s);
  const slotOf = new Map(slots);
  fresh.forEach((id, i) => slotOf.set(id, free[i]!));
  const slotFor = (id: number) => (id === 0 ? 0 : slotOf.get(id)!);
  const removed = [...slots.keys()].filter((id) => !desired.classes.has(id));

  const writes = noWrites();
  const changes: Record<string, number> = {};
  const count = (name: string, n: number) => n > 0 && (changes[name] = (changes[name] ?? 0) + n);
  const classDiff = diffMaps(classes, desired.classes);
  writes.config = classDiff.upserts.map(([id, c]) => [slotFor(id), { rate_bps: c.rate_bps, burst_ns: c.burst_ns, horizon_ns: c.horizon_ns, ecn_ns: c.ecn_ns, parent_slot: slotFor(c.parent_id), class_id: id, flags: c.flags, reserved: 0 }]);
  count('class_slot', fresh.length);
  count('class_config', classDiff.upserts.length);
  for (const k of SELECTORS) {
    const actual = new Map([...(t[k] as ShaperTables['marks']).entries()].map(([sel, slot]) => [sel, idOf.get(slot) ?? 0] as const));
    const d = diffMaps<unknown, number>(actual as Map<unknown, number>, desired[k] as Map<unknown, number>);
    writes.upserts[k] = d.upserts.map(([sel, id]) => [sel, slotFor(id)]);
    writes.deletes[k] = d.deletes;
    count(TABLE_NAMES[k], d.upserts.length + d.deletes.length);
  }
  const settings = t.settings.entries().get(0) ?? { default_slot: 0, flags: 0, generation: 0, cgroup_selectors: 0 };
  const wanted = { default_slot: slotFor(desired.settings.default_class), flags: desired.settings.flags, cgroup_selectors: desired.cgroups.size };
  if ((['default_slot', 'flags', 'cgroup_selectors'] as const).some((f) => settings[f] !== wanted[f])) count('settings', 1);
  writes.config.push(...removed.map((id) => [slots.get(id)!, FREE_SLOT] as [number, SlotConfig]));
  count('class_config', removed.length);
  count('class_slot', removed.length);
  return { writes, changes };
}

const PREFIXES4 = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '192.168.0.0/16', '192.168.7.0/24', '172.16.0.0/12'];
const PREFIXES6 = ['2001:db8::/32', '2001:db8:1::/48', 'fd00::/8'];
const RATES = [1_000_000, 2_000_000, 50_000_000];

/** A valid desired state: classes from a small id range (so applies keep, change, add and remove), parents at most 4 deep. */
const desiredState: fc.Arbitrary<ShaperState> = fc
  .record({
    ids: fc.uniqueArray(fc.integer({ min: 1, max: 20 }), { maxLength: 10 }),
    picks: fc.array(fc.record({ rate: fc.nat(RATES.length - 1), parent: fc.nat(12), burst: fc.constantFrom(0, 1_000_000), ecn: fc.constantFrom(0, 5_000_000) }), { minLength: 10, maxLength: 10 }),
    marks: fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 30 }), fc.nat(9)), { maxLength: 8, selector: ([m]) => m }),
    cgroups: fc.uniqueArray(fc.tuple(fc.bigInt({ min: 1n, max: 12n }), fc.nat(9)), { maxLength: 4, selector: ([c]) => c }),
    dst4: fc.uniqueArray(fc.tuple(fc.constantFrom(...PREFIXES4), fc.nat(9)), { maxLength: 4, selector: ([p]) => p }),
    dst6: fc.uniqueArray(fc.tuple(fc.constantFrom(...PREFIXES6), fc.nat(9)), { maxLength: 2, selector: ([p]) => p }),
    defaultPick: fc.nat(10),
  })
  .map((r) => {
    const classes = new Map<number, ClassConfig>();
    const depth = (id: number): number => (id === 0 ? 0 : 1 + depth(classes.get(id)!.parent_id));
    r.ids.forEach((id, i) => {
      const p = r.picks[i]!;
      const parent = p.parent < i ? r.ids[p.parent]! : 0;
      classes.set(id, { rate_bps: RATES[p.rate]!, burst_ns: p.burst, horizon_ns: 2_000_000_000, ecn_ns: p.ecn, parent_id: parent !== 0 && depth(parent) < 4 ? parent : 0, flags: 0 });
    });
    const pick = (n: number) => r.ids[n % Math.max(1, r.ids.length)]!;
    const sel = <K>(xs: Array<[K, number]>) => new Map(r.ids.length === 0 ? [] : xs.map(([k, n]) => [k, pick(n)] as const));
    return {
      classes,
      marks: sel(r.marks),
      cgroups: sel(r.cgroups),
      dst4: sel(r.dst4),
      dst6: sel(r.dst6),
      settings: { default_class: r.ids.length > 0 && r.defaultPick < r.ids.length ? r.ids[r.defaultPick]! : 0, flags: 0 },
    };
  });

/** Drift made behind the Datapath's back: a class's rate or parent, a mark deleted or pointed elsewhere. */
type Drift = { kind: 'rate' | 'parent' | 'markDelete' | 'markMove'; pick: number };
const drift: fc.Arbitrary<Drift> = fc.record({ kind: fc.constantFrom('rate' as const, 'parent' as const, 'markDelete' as const, 'markMove' as const), pick: fc.nat(50) });

function makeDrift(t: ShaperTables, d: Drift): void {
  const slots = [...t.slots.entries().values()].sort((a, b) => a - b);
  const marks = [...t.marks.entries()];
  if (d.kind === 'rate' || d.kind === 'parent') {
    if (slots.length === 0) return;
    const slot = slots[d.pick % slots.length]!;
    const c = t.config.get(slot)!;
    const other = slots[(d.pick >> 1) % slots.length]!;
    t.config.setMany([[slot, d.kind === 'rate' ? { ...c, rate_bps: c.rate_bps + 1_000 } : { ...c, parent_slot: other === slot ? 0 : other }]]);
  } else if (marks.length > 0) {
    const [mark] = marks[d.pick % marks.length]!;
    if (d.kind === 'markDelete') t.marks.deleteMany([mark]);
    else t.marks.setMany([[mark, slots[d.pick % slots.length] ?? 0]]);
  }
}

describe('Datapath.apply compares bytes and slots: the same writes as the object diff', function () {
  this.timeout(300_000);
  let pinRoot: string;
  let eg: EgressObject;
  before(() => {
    pinRoot = makePinDir();
    eg = EgressObject.load({ pinRoot });
  });
  after(() => {
    eg?.close();
    removePinDir(pinRoot);
  });

  const empty = (): ShaperState => ({ classes: new Map(), marks: new Map(), cgroups: new Map(), dst4: new Map(), dst6: new Map(), settings: { default_class: 0, flags: 0 } });

  it('on the kernel maps and on memory tables, over random applies with drift between them (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ desired: desiredState, drifts: fc.array(drift, { maxLength: 3 }) }), { minLength: 1, maxLength: 5 }), (rounds) => {
        new Datapath(eg).apply(empty()); // a clean start on the shared pins
        const sides = [
          { name: 'kernel', tables: eg as ShaperTables },
          { name: 'memory', tables: memoryTables() as ShaperTables },
        ].map((s) => {
          const log = { writes: noWrites() };
          return { ...s, log, dp: new Datapath(recording(s.tables, log)) };
        });
        for (const [r, round] of rounds.entries()) {
          for (const side of sides) {
            for (const d of round.drifts) makeDrift(side.tables, d);
            const expected = objectDiffWrites(side.tables, round.desired);
            side.log.writes = noWrites();
            const report = side.dp.apply(round.desired);
            assert.deepEqual(normalized(side.log.writes), normalized(expected.writes), `${side.name}, round ${r}: the writes`);
            assert.deepEqual(report.changes, expected.changes, `${side.name}, round ${r}: the report`);
            assert.deepEqual(side.dp.read(), round.desired, `${side.name}, round ${r}: the maps hold the desired state`);
            assert.deepEqual(side.dp.apply(round.desired).changes, {}, `${side.name}, round ${r}: a resync writes nothing`);
          }
          assert.deepEqual(sides[0]!.dp.slots(), sides[1]!.dp.slots(), `round ${r}: the same slots`);
        }
      }),
      { numRuns: 60 },
    );
    new Datapath(eg).apply(empty());
  });

  it('also repairs what the object diff could not see in class_config: a wrong class_id, reserved bits, a parent_slot of no class', () => {
    const dp = new Datapath(eg);
    const desired: ShaperState = {
      ...empty(),
      classes: new Map([
        [1, { rate_bps: 100e6, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: 0, flags: 0 }],
        [2, { rate_bps: 10e6, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: 1, flags: 0 }],
      ]),
    };
    dp.apply(desired);
    const [s1, s2] = [eg.slots.get(1)!, eg.slots.get(2)!];
    const right = [eg.config.get(s1)!, eg.config.get(s2)!];
    eg.config.setMany([
      [s1, { ...right[0]!, parent_slot: 777, reserved: 5 }], // the object diff read parent 777 as "no parent": equal
      [s2, { ...right[1]!, class_id: 99 }], // the object diff never compared class_id
    ]);
    assert.deepEqual(objectDiffWrites(eg, desired).changes, {}, 'invisible to the object diff');
    assert.deepEqual(dp.apply(desired).changes, { class_config: 2 });
    assert.deepEqual([eg.config.get(s1), eg.config.get(s2)], right);
    dp.apply(empty());
  });
});
