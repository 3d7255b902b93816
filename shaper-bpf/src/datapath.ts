/**
 * The Datapath: what the controller drives. It takes the whole desired state of one interface as
 * data, applies only what differs from the maps, reads the maps back, and reads the counters.
 *
 * One implementation serves both the kernel and tests: it works on `Table`s, which are the typed
 * BPF maps in production (`EgressObject`) and plain in-memory maps in unit tests of callers
 * (`memoryTables`).
 *
 * Callers speak class ids (ShaperState). The data plane speaks slots (shaper-bpf/bpf/pacer.h):
 * the Datapath gives each class the lowest free slot (1 .. slots - 1) when it first appears,
 * records it in class_slot (class id → slot, which is also how a restarted agent finds it
 * again), translates every parent, selector and the default to slots, and frees the slot when
 * the class is deleted: after its selectors and children are gone; its state and counters are
 * zeroed then and again before the slot is reused, and so is its delay histogram (delay_hist,
 * shaper-bpf/bpf/delay_hist.h), whose group of 16 slots gets its map with its first class and
 * gives it back when its last class is gone.
 *
 * An apply is all or nothing: the state is validated before any map is touched, and when the
 * kernel refuses a write halfway (a full map, no free slot), every change already made (slot
 * allocations included) is undone before the error is thrown.
 */
import ipaddr from 'ipaddr.js';
import { diffMaps, type MapDiff } from './diff.js';
import { deletes, runSteps, upserts, type ApplyReport, type Step, type Table } from './steps.js';
export type { Table } from './steps.js';
export { ApplyFailed, type ApplyReport } from './steps.js';
import { MAX_DEPTH } from './edt.js';
import { FREE_SLOT, MAX_CLASSES, type ClassConfig, type ClassState, type ClassStats, type IfaceStats, type Settings, type SlotConfig, type SlotSettings } from './layout.js';
import { bucketOf, HIST_BUCKETS, histogramOf, type DelayHistogram } from './delay-hist.js';
import type { HistogramTable } from './delay-hist-map.js';
export type { HistogramTable } from './delay-hist-map.js';
export { delayQuantile, type DelayBucket, type DelayHistogram } from './delay-hist.js';

/** What one interface should enforce. Built by the agent from the API's classes. Keyed by class id. */
export interface ShaperState {
  classes: Map<number, ClassConfig>;
  marks: Map<number, number>;
  cgroups: Map<bigint, number>;
  /** Canonical CIDR → class id. */
  dst4: Map<string, number>;
  dst6: Map<string, number>;
  settings: Settings;
}

/** settings.flags: the agent's mode, for operators reading the pinned maps. The program ignores it. */
export const SETTINGS_POLICING = 1;

export const RATE_LIMITS = { min: 1_000, max: 400_000_000_000 } as const;

/** The operations the datapath needs from a hash map; TypedMap implements them. */
/** An array indexed by slot: every entry exists (zero until written). TypedMap implements it. */
export interface SlotTable<V> {
  readonly name: string;
  get(slot: number): V | undefined;
  setMany(entries: ReadonlyArray<readonly [number, V]>): void;
}

export interface SlotStatsTable {
  get(slot: number): ClassStats | undefined;
  zeroMany(slots: ReadonlyArray<number>): void;
}

export interface ShaperTables {
  /** Slot-indexed arrays. */
  config: SlotTable<SlotConfig>;
  state: SlotTable<ClassState>;
  stats: SlotStatsTable;
  /** class id → slot. */
  slots: Table<number, number>;
  /** Selectors: → slot. */
  marks: Table<number, number>;
  cgroups: Table<bigint, number>;
  dst4: Table<string, number>;
  dst6: Table<string, number>;
  settings: Table<number, SlotSettings>;
  ifaceStats: { get(k: number): IfaceStats | undefined };
  /** slot → the class's delay histogram (delay_hist). */
  hists: HistogramTable;
}

export class InvalidShaperState extends Error {
  constructor(readonly problems: string[]) {
    super(`the desired state is invalid, nothing was changed: ${problems.join('; ')}`);
  }
}

const SELECTORS = ['marks', 'cgroups', 'dst4', 'dst6'] as const;
type SelectorName = (typeof SELECTORS)[number];
const ZERO_SETTINGS: SlotSettings = { default_slot: 0, flags: 0, generation: 0, cgroup_selectors: 0 };

/** What the maps hold, in slots (`raw`) and translated to class ids (`state`). */
interface Snapshot {
  /** class id → slot, as class_slot has it. */
  slots: Map<number, number>;
  /** slot → config, for every slot in class_slot. */
  configs: Map<number, SlotConfig>;
  raw: { [K in SelectorName]: Map<ShaperState[K] extends Map<infer S, number> ? S : never, number> };
  settings: SlotSettings;
  state: ShaperState;
}

export interface DatapathOptions {
  /** Entries of the slot arrays (PACER_MAX_CLASSES): slots 1 .. slots - 1 hold classes. */
  slots?: number;
}

export class Datapath {
  private readonly slotCount: number;
  /** Whether every class's slot was checked for a histogram (done by the first apply, see apply). */
  private histsChecked = false;

  constructor(
    private readonly tables: ShaperTables,
    options: DatapathOptions = {},
  ) {
    this.slotCount = options.slots ?? MAX_CLASSES;
  }

  private snapshot(): Snapshot {
    const t = this.tables;
    const slots = t.slots.entries();
    const idOf = new Map<number, number>();
    const configs = new Map<number, SlotConfig>();
    for (const [id, slot] of slots) {
      idOf.set(slot, id);
      configs.set(slot, t.config.get(slot) ?? FREE_SLOT);
    }
    const classes = new Map<number, ClassConfig>();
    for (const [id, slot] of [...slots].sort((a, b) => a[0] - b[0])) {
      const c = configs.get(slot)!;
      if (c.rate_bps === 0) continue; // allocated, never configured (an apply that crashed): not a class
      classes.set(id, { rate_bps: c.rate_bps, burst_ns: c.burst_ns, horizon_ns: c.horizon_ns, ecn_ns: c.ecn_ns, parent_id: idOf.get(c.parent_slot) ?? 0, flags: c.flags });
    }
    const raw = { marks: t.marks.entries(), cgroups: t.cgroups.entries(), dst4: t.dst4.entries(), dst6: t.dst6.entries() };
    const toIds = <K>(m: Map<K, number>) => new Map([...m].map(([k, slot]) => [k, idOf.get(slot) ?? 0] as const));
    const settings = t.settings.entries().get(0) ?? ZERO_SETTINGS;
    return {
      slots,
      configs,
      raw,
      settings,
      state: {
        classes,
        marks: toIds(raw.marks),
        cgroups: toIds(raw.cgroups),
        dst4: toIds(raw.dst4),
        dst6: toIds(raw.dst6),
        settings: { default_class: idOf.get(settings.default_slot) ?? 0, flags: settings.flags },
      },
    };
  }

  read(): ShaperState {
    return this.snapshot().state;
  }

  /** class id → slot, as the data plane has them (for operators and tools). */
  slots(): Map<number, number> {
    return this.tables.slots.entries();
  }

  /**
   * The class's queueing-delay histogram: every packet of the class that passed since the class
   * got its slot, by how long the program held it (delay-hist.ts has the buckets; delayQuantile
   * reads percentiles off it). undefined for an unknown class, or a slot without a histogram.
   */
  delayHistogram(classId: number): DelayHistogram | undefined {
    const slot = this.tables.slots.entries().get(classId);
    if (slot === undefined) return undefined;
    const counts = this.tables.hists.get(slot);
    return counts && histogramOf(counts);
  }

  /** delayHistogram of every class that has one, by class id (one read of class_slot, each group's map opened once). */
  delayHistograms(): Map<number, DelayHistogram> {
    const slots = [...this.tables.slots.entries()].sort((a, b) => a[0] - b[0]);
    const counts = this.tables.hists.getMany(slots.map(([, slot]) => slot));
    const out = new Map<number, DelayHistogram>();
    for (const [id, slot] of slots) {
      const c = counts.get(slot);
      if (c) out.set(id, histogramOf(c));
    }
    return out;
  }

  stats(): { classes: Map<number, ClassStats>; unclassified: IfaceStats } {
    const classes = new Map<number, ClassStats>();
    for (const [id, slot] of [...this.tables.slots.entries()].sort((a, b) => a[0] - b[0])) {
      const s = this.tables.stats.get(slot);
      if (s) classes.set(id, s);
    }
    return {
      classes,
      unclassified: this.tables.ifaceStats.get(0) ?? { unclassified_packets: 0, unclassified_bytes: 0 },
    };
  }

  /**
   * Makes the maps equal `desired`, writing only what differs. Order keeps every packet
   * classifiable to a configured class: slots for new classes (zeroed), new and changed classes,
   * then selectors, the settings, removed selectors, and removed classes last (their slots freed:
   * config rate 0, then class_slot; their schedules and counters zeroed once nothing can fail).
   * settings.generation is bumped after the prefix tries change and after slots are freed, so
   * the program's destination caches never serve an answer from before (classify.h).
   * A rate change rewrites class_config only: the schedule in class_state is kept.
   */
  apply(desired: ShaperState): ApplyReport {
    validate(desired);
    const t = this.tables;
    const snap = this.snapshot();
    const actual = snap.state;
    const classes = diffMaps(actual.classes, desired.classes);

    // Slots: classes keep theirs; new ones get the lowest free slots, in class id order.
    const slotOf = new Map(snap.slots);
    const used = new Set(snap.slots.values());
    const fresh = [...desired.classes.keys()].filter((id) => !slotOf.has(id)).sort((a, b) => a - b);
    const freeSlots: number[] = [];
    for (let s = 1; s < this.slotCount && freeSlots.length < fresh.length; s++) if (!used.has(s)) freeSlots.push(s);
    const allocated = fresh.slice(0, freeSlots.length).map((id, i) => [id, freeSlots[i]!] as const);
    for (const [id, slot] of allocated) slotOf.set(id, slot);
    const slotFor = (id: number) => (id === 0 ? 0 : slotOf.get(id)!);
    // Everything in class_slot that is not wanted: deleted classes, and leftovers of a crashed apply.
    const removed = [...snap.slots.keys()].filter((id) => !desired.classes.has(id)).sort((a, b) => a - b);
    const freedSlots = removed.map((id) => snap.slots.get(id)!);
    const usedAfter = new Set([...desired.classes.keys()].map((id) => slotOf.get(id)!));
    // Kept classes whose slot has no histogram (maps pinned by a pacer from before histograms, or
    // an apply that crashed): checked once per Datapath, then this apply gives them one.
    const kept = [...desired.classes.keys()].filter((id) => snap.slots.has(id)).map((id) => snap.slots.get(id)!);
    const withHist = this.histsChecked ? undefined : t.hists.present(kept);
    const histless = withHist ? kept.filter((slot) => !withHist.has(slot)) : [];

    // The settings entry is written whole; `live` is what the kernel has now (generation included).
    let live: SlotSettings = { ...snap.settings };
    const writeSettings = (next: SlotSettings) => {
      t.settings.setMany([[0, next]]);
      live = next;
    };
    const bump = (): Step => ({
      name: 'settings',
      size: 1,
      reported: false,
      describe: 'bumping settings.generation',
      run: () => writeSettings({ ...live, generation: (live.generation + 1) >>> 0 }),
      undo: () => {}, // the generation only ever grows
    });

    const configEntry = (id: number, c: ClassConfig): SlotConfig => ({
      rate_bps: c.rate_bps,
      burst_ns: c.burst_ns,
      horizon_ns: c.horizon_ns,
      ecn_ns: c.ecn_ns,
      parent_slot: slotFor(c.parent_id),
      class_id: id,
      flags: c.flags,
      reserved: 0,
    });
    const configsBefore = (slots: number[]) => slots.map((slot) => [slot, snap.configs.get(slot) ?? FREE_SLOT] as const);
    const selectorDiff = (k: SelectorName) => {
      const d = diffMaps<unknown, number>(actual[k] as Map<unknown, number>, desired[k] as Map<unknown, number>);
      return { upserts: d.upserts.map(([sel, id]) => [sel, slotFor(id)] as [unknown, number]), deletes: d.deletes } as MapDiff<unknown, number>;
    };
    const diffs = Object.fromEntries(SELECTORS.map((k) => [k, selectorDiff(k)])) as Record<SelectorName, MapDiff<unknown, number>>;
    const desiredSettings = {
      default_slot: slotFor(desired.settings.default_class),
      flags: desired.settings.flags,
      cgroup_selectors: desired.cgroups.size,
    };
    const settingsChange = (['default_slot', 'flags', 'cgroup_selectors'] as const).some((k) => snap.settings[k] !== desiredSettings[k]);
    const upsertSlots = classes.upserts.map(([id]) => slotFor(id));
    const dstUpserts = diffs.dst4.upserts.length + diffs.dst6.upserts.length;
    const dstDeletes = diffs.dst4.deletes.length + diffs.dst6.deletes.length;

    const steps: Step[] = [
      {
        name: t.slots.name,
        size: fresh.length,
        describe: `allocating slots for ${fresh.length} new classes in ${t.config.name}`,
        run: () => {
          if (allocated.length < fresh.length) {
            throw new Error(`${t.config.name} is full: ${this.slotCount - 1} slots, ${used.size} in use, ${fresh.length} more needed`);
          }
          t.slots.setMany(allocated);
        },
        undo: () => {
          const now = t.slots.entries();
          t.slots.deleteMany(allocated.map(([id]) => id).filter((id) => now.has(id)));
        },
      },
      {
        name: t.state.name,
        size: allocated.length,
        reported: false,
        describe: `zeroing the schedules, counters and delay histograms of ${allocated.length} new slots`,
        run: () => {
          const slots = allocated.map(([, slot]) => slot);
          zeroSlots(slots);
          t.hists.reset(slots);
        },
        // Free slots: zero is what they should hold; groups that only this apply needed go back.
        undo: () => t.hists.remove(allocated.map(([, slot]) => slot), used),
      },
      {
        name: t.hists.name,
        size: histless.length,
        reported: false,
        describe: `creating delay histograms for ${histless.length} classes that had none`,
        run: () => t.hists.reset(histless),
        undo: () => t.hists.remove(histless, new Set(kept.filter((slot) => !histless.includes(slot)))),
      },
      {
        name: t.config.name,
        size: classes.upserts.length,
        describe: `writing ${classes.upserts.length} entries of ${t.config.name}`,
        run: () => t.config.setMany(classes.upserts.map(([id, c]) => [slotFor(id), configEntry(id, c)] as const)),
        undo: () => t.config.setMany(configsBefore(upsertSlots)),
      },
      ...SELECTORS.map((k) => upserts(t[k] as Table<unknown, number>, diffs[k], snap.raw[k] as Map<unknown, number>)),
      {
        name: t.settings.name,
        size: settingsChange ? 1 : 0,
        describe: `writing ${t.settings.name}`,
        run: () => writeSettings({ ...live, ...desiredSettings }),
        undo: () => writeSettings({ ...live, default_slot: snap.settings.default_slot, flags: snap.settings.flags, cgroup_selectors: snap.settings.cgroup_selectors }),
      },
      ...(dstUpserts > 0 ? [bump()] : []),
      ...SELECTORS.map((k) => deletes(t[k] as Table<unknown, number>, diffs[k], snap.raw[k] as Map<unknown, number>)),
      ...(dstDeletes > 0 ? [bump()] : []),
      {
        name: t.config.name,
        size: removed.length,
        describe: `freeing ${removed.length} slots of ${t.config.name}`,
        run: () => t.config.setMany(freedSlots.map((slot) => [slot, FREE_SLOT] as const)),
        undo: () => t.config.setMany(configsBefore(freedSlots)),
      },
      {
        name: t.slots.name,
        size: removed.length,
        describe: `deleting ${removed.length} entries of ${t.slots.name}`,
        run: () => t.slots.deleteMany(removed),
        undo: () => {
          const now = t.slots.entries();
          t.slots.setMany(removed.filter((id) => !now.has(id)).map((id) => [id, snap.slots.get(id)!] as const));
        },
      },
      ...(removed.length > 0 ? [bump()] : []),
    ];
    const zeroSlots = (slots: number[]) => {
      if (slots.length === 0) return;
      t.state.setMany(slots.map((slot) => [slot, { t_last: 0 }] as const));
      t.stats.zeroMany(slots);
    };

    // The tries and slots are back as they were after an undo: make the caches forget this apply's answers too.
    const report = runSteps(steps, () => bump().run());
    this.histsChecked = true;
    // Schedules and counters of freed slots go last; losing them cannot misdirect a packet. (They
    // are zeroed again when the slot is reused, in case a packet in flight wrote them meanwhile.)
    // A freed slot's histogram is zeroed; a group no class uses any more gives its memory back.
    zeroSlots(freedSlots);
    t.hists.remove(freedSlots, usedAfter);
    return report;
  }
}

/** Everything the program relies on, checked before any map is touched. */
export function validate(s: ShaperState): void {
  const problems: string[] = [];
  for (const [id, c] of s.classes) {
    if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) problems.push(`class id ${id} is not a u32 above 0`);
    if (!Number.isInteger(c.rate_bps) || c.rate_bps < RATE_LIMITS.min || c.rate_bps > RATE_LIMITS.max) {
      problems.push(`class ${id}: rate ${c.rate_bps} bit/s is outside ${RATE_LIMITS.min}..${RATE_LIMITS.max}`);
    }
    if (!(c.horizon_ns > 0)) problems.push(`class ${id}: horizon must be positive`);
    if (c.parent_id !== 0 && !s.classes.has(c.parent_id)) problems.push(`class ${id}: parent ${c.parent_id} is not in the state`);
    let depth = 1;
    for (let p = c.parent_id; p !== 0 && depth <= MAX_DEPTH; depth++) p = s.classes.get(p)?.parent_id ?? 0;
    if (depth > MAX_DEPTH) problems.push(`class ${id}: deeper than ${MAX_DEPTH} levels, or a parent cycle`);
  }
  const selectors: Array<[string, Map<unknown, number>]> = [
    ['mark', s.marks],
    ['cgroup', s.cgroups],
    ['prefix', s.dst4],
    ['prefix', s.dst6],
  ];
  for (const [what, map] of selectors) {
    for (const [sel, id] of map) if (!s.classes.has(id)) problems.push(`${what} ${String(sel)} selects class ${id}, which is not in the state`);
  }
  for (const [family, map] of [['ipv4', s.dst4], ['ipv6', s.dst6]] as const) {
    for (const cidr of map.keys()) {
      if (!ipaddr.isValidCIDR(cidr) || ipaddr.parseCIDR(cidr)[0].kind() !== family) problems.push(`"${cidr}" is not an ${family} prefix`);
    }
  }
  if (s.settings.default_class !== 0 && !s.classes.has(s.settings.default_class)) {
    problems.push(`default class ${s.settings.default_class} is not in the state`);
  }
  if (problems.length > 0) throw new InvalidShaperState(problems);
}

/** memoryTables' histograms: a slot → counts map, and what the program does per packet. */
export interface MemoryHistograms extends HistogramTable {
  readonly name: string;
  readonly map: Map<number, number[]>;
  /** Counts a passed packet of the class in `slot` held `delayNs`, as the program does (nothing without a histogram). */
  record(slot: number, delayNs: number): void;
}

/** In-memory tables with the same behaviour, for unit tests of the controller. `capacity` bounds the hash maps; `slots` the arrays. */
export function memoryTables(capacity = 65_536, slotCount = MAX_CLASSES): ShaperTables & { slots: Table<number, number>; hists: MemoryHistograms } {
  const table = <K, V>(name: string): Table<K, V> & { map: Map<K, V> } => {
    const map = new Map<K, V>();
    return {
      name,
      map,
      entries: () => new Map(map),
      setMany(entries) {
        for (const [k, v] of entries) {
          if (!map.has(k) && map.size >= capacity) throw new Error(`map "${name}" is full: max_entries is ${capacity}`);
          map.set(k, v);
        }
      },
      deleteMany(keys) {
        for (const k of keys) map.delete(k);
      },
    };
  };
  const array = <V>(name: string, zero: V): SlotTable<V> & { map: Map<number, V> } => {
    const map = new Map<number, V>();
    return {
      name,
      map,
      get: (slot) => (Number.isInteger(slot) && slot >= 0 && slot < slotCount ? (map.get(slot) ?? zero) : undefined),
      setMany(entries) {
        for (const [slot] of entries) if (!(Number.isInteger(slot) && slot >= 0 && slot < slotCount)) throw new Error(`array "${name}" has ${slotCount} slots; ${slot} is out of range`);
        for (const [slot, v] of entries) map.set(slot, v);
      },
    };
  };
  const ZERO_STATS: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contention_drops: 0 };
  const stats = array<ClassStats>('class_stats', ZERO_STATS);
  const hists = new Map<number, number[]>();
  return {
    config: array<SlotConfig>('class_config', FREE_SLOT),
    state: array<ClassState>('class_state', { t_last: 0 }),
    stats: { get: stats.get, zeroMany: (keys) => stats.setMany(keys.map((k) => [k, ZERO_STATS] as const)) },
    slots: table('class_slot'),
    marks: table('mark_class'),
    cgroups: table('cgroup_class'),
    dst4: table('dst4_class'),
    dst6: table('dst6_class'),
    settings: table('settings'),
    ifaceStats: { get: () => ({ unclassified_packets: 0, unclassified_bytes: 0 }) },
    hists: {
      name: 'delay_hist',
      map: hists,
      get: (slot) => hists.get(slot)?.slice(),
      getMany: (slots) => new Map(slots.filter((slot) => hists.has(slot)).map((slot) => [slot, hists.get(slot)!.slice()] as const)),
      present: (slots) => new Set(slots.filter((slot) => hists.has(slot))),
      reset(slots) {
        for (const slot of slots) if (!(Number.isInteger(slot) && slot >= 0 && slot < slotCount)) throw new Error(`array "delay_hist" has ${slotCount} slots; ${slot} is out of range`);
        for (const slot of slots) hists.set(slot, new Array<number>(HIST_BUCKETS).fill(0));
      },
      remove(slots) {
        for (const slot of slots) hists.delete(slot);
      },
      // What the program does for a passed packet of the class in `slot` (tests of callers feed it).
      record(slot, delayNs) {
        const h = hists.get(slot);
        if (h) h[bucketOf(delayNs)]!++;
      },
    },
  };
}
