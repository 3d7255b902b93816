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
import { EncodedEntries, type MapDiff } from './diff.js';
import { deletes, runSteps, upserts, type ApplyReport, type EntryList, type ListTable, type Step, type Table } from './steps.js';
export type { Table } from './steps.js';
export { ApplyFailed, type ApplyReport } from './steps.js';
import { MAX_DEPTH } from './edt.js';
import { classConfig, FREE_SLOT, MAX_CLASSES, type ClassConfig, type ClassState, type ClassStats, type IfaceStats, type Settings, type SlotConfig, type SlotSettings } from './layout.js';
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

/** An array indexed by slot: every entry exists (zero until written). TypedMap implements it. */
export interface SlotTable<V> {
  readonly name: string;
  get(slot: number): V | undefined;
  setMany(entries: ReadonlyArray<readonly [number, V]>): void;
}

/** class_config: also read whole, as encoded bytes, which apply compares with the encoded desired entries. */
export interface ConfigTable extends SlotTable<SlotConfig> {
  /** Slots 0 .. count - 1 as pacer_class_config entries (layout.classConfig), in one read; fewer if the array is smaller. */
  readArray(count: number): Buffer;
}

export interface SlotStatsTable {
  get(slot: number): ClassStats | undefined;
  zeroMany(slots: ReadonlyArray<number>): void;
}

export interface ShaperTables {
  /** Slot-indexed arrays. */
  config: ConfigTable;
  state: SlotTable<ClassState>;
  stats: SlotStatsTable;
  /** class id → slot. */
  slots: ListTable<number, number>;
  /** Selectors: → slot. */
  marks: ListTable<number, number>;
  cgroups: ListTable<bigint, number>;
  dst4: ListTable<string, number>;
  dst6: ListTable<string, number>;
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

/** What the maps hold, in slots, read once per apply: lists as read, class_config as the kernel's bytes. */
interface Snapshot {
  /** class_slot: class ids and their slots. */
  classSlots: EntryList<number, number>;
  /** class_config's entries for slots 0 .. (the highest slot in class_slot), encoded. */
  configBytes: Buffer;
  raw: { [K in SelectorName]: EntryList<ShaperState[K] extends Map<infer S, number> ? S : never, number> };
  settings: SlotSettings;
}

export interface DatapathOptions {
  /** Entries of the slot arrays (PACER_MAX_CLASSES): slots 1 .. slots - 1 hold classes. */
  slots?: number;
}

export class Datapath {
  private readonly slotCount: number;
  /** Whether every class's slot was checked for a histogram (done by the first apply, see apply). */
  private histsChecked = false;
  /** slot → class id, filled from class_slot by each apply (slotIndex). */
  private slotIds: Float64Array | undefined;
  /**
   * Whether this Datapath has bumped settings.generation yet. Its first apply always does: a
   * previous agent killed between a trie write and its bump left cached destinations tagged with
   * the current generation, and nothing in the maps tells that apart from a finished apply.
   */
  private cachesRenewed = false;

  constructor(
    private readonly tables: ShaperTables,
    options: DatapathOptions = {},
  ) {
    this.slotCount = options.slots ?? MAX_CLASSES;
  }

  /**
   * Reads every map apply compares, each at once (lookup batches on the kernel): class_slot, the
   * selectors, settings, and class_config up to the highest slot in use, left encoded.
   */
  private snapshot(): Snapshot {
    const t = this.tables;
    const classSlots = t.slots.list();
    let top = 0;
    for (let i = 0; i < classSlots.values.length; i++) top = Math.max(top, classSlots.values[i]!);
    const configBytes = classSlots.keys.length === 0 ? Buffer.alloc(0) : t.config.readArray(Math.min(top, this.slotCount - 1) + 1);
    const raw = { marks: t.marks.list(), cgroups: t.cgroups.list(), dst4: t.dst4.list(), dst6: t.dst6.list() };
    const settings = t.settings.entries().get(0) ?? ZERO_SETTINGS;
    return { classSlots, configBytes, raw, settings };
  }

  read(): ShaperState {
    const snap = this.snapshot();
    const slots = new Map(Array.from(snap.classSlots.keys, (id, i) => [id, snap.classSlots.values[i]!] as const));
    const idOf = new Map<number, number>();
    for (const [id, slot] of slots) idOf.set(slot, id);
    const classes = new Map<number, ClassConfig>();
    for (const [id, slot] of [...slots].sort((a, b) => a[0] - b[0])) {
      const c = configAt(snap, slot);
      if (c.rate_bps === 0) continue; // allocated, never configured (an apply that crashed): not a class
      classes.set(id, { rate_bps: c.rate_bps, burst_ns: c.burst_ns, horizon_ns: c.horizon_ns, ecn_ns: c.ecn_ns, parent_id: idOf.get(c.parent_slot) ?? 0, flags: c.flags });
    }
    const toIds = <K>(m: EntryList<K, number>) => new Map(Array.from(m.keys, (k, i) => [k, idOf.get(m.values[i]!) ?? 0] as const));
    return {
      classes,
      marks: toIds(snap.raw.marks),
      cgroups: toIds(snap.raw.cgroups),
      dst4: toIds(snap.raw.dst4),
      dst6: toIds(snap.raw.dst6),
      settings: { default_class: idOf.get(snap.settings.default_slot) ?? 0, flags: snap.settings.flags },
    };
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
    return this.histogramsOf(new Set([classId])).get(classId);
  }

  /**
   * delayHistogram of the listed classes (every class without a list) that have one, by class id
   * in id order; an unknown id is left out. One read of class_slot as it is now (a lookup batch,
   * not decoded into a Map), then only the listed classes' histograms, each group's map opened
   * once: the metrics ask for the few classes that passed packets, and reading all 10,000 took
   * ~200 ms. (Not from the slot → class id array apply keeps: it holds class_slot as it was
   * before that apply's changes, and a class id → slot lookup would scan it anyway.)
   */
  delayHistograms(classIds?: Iterable<number>): Map<number, DelayHistogram> {
    return this.histogramsOf(classIds === undefined ? undefined : new Set(classIds));
  }

  /** delayHistograms for the `wanted` class ids (every class when undefined). */
  private histogramsOf(wanted: ReadonlySet<number> | undefined): Map<number, DelayHistogram> {
    const pairs: Array<readonly [number, number]> = [];
    if (wanted === undefined || wanted.size > 0) {
      const { keys, values } = this.tables.slots.list();
      for (let i = 0; i < keys.length; i++) if (wanted === undefined || wanted.has(keys[i]!)) pairs.push([keys[i]!, values[i]!]);
    }
    pairs.sort((a, b) => a[0] - b[0]);
    const counts = this.tables.hists.getMany(pairs.map(([, slot]) => slot));
    const out = new Map<number, DelayHistogram>();
    for (const [id, slot] of pairs) {
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
   * the program's destination caches never serve an answer from before (classify.h), and on
   * this Datapath's first apply, which repairs a crash between a trie write and its bump.
   * A rate change rewrites class_config only: the schedule in class_state is kept.
   */
  apply(desired: ShaperState): ApplyReport {
    validate(desired);
    const t = this.tables;
    const snap = this.snapshot();
    // class_slot as read: entry i gives class ids[i] the slot slotsOf[i].
    const { keys: ids, values: slotsOf } = snap.classSlots;
    // (The array is the Datapath's own, reused: a resync every 30 s need not allocate and fault in 512 KiB.)
    const { idAt, isUsed } = slotIndex(snap.classSlots, (this.slotIds ??= new Float64Array(this.slotCount)));
    // class id → slot before this apply, made only when needed (new classes, removed ones, a changed parent or selector).
    let knownMap: Map<number, number> | undefined;
    const known = () => (knownMap ??= new Map(Array.from(ids, (id, i) => [id, slotsOf[i]!] as const)));

    // Walk class_slot once: each entry is a desired class (kept, its config compared below) or
    // one to remove (deleted classes, and leftovers of a crashed apply).
    // (Sized once: a resync keeps every entry, and growing two arrays of 50,000 is garbage.)
    const keptIndexes = new Int32Array(ids.length); // indexes into class_slot
    const keptConfigs = new Array<ClassConfig>(ids.length); // their desired configs
    let keptCount = 0;
    const removedPairs: Array<readonly [number, number]> = [];
    for (let i = 0; i < ids.length; i++) {
      const c = desired.classes.get(ids[i]!);
      if (c === undefined) {
        removedPairs.push([ids[i]!, slotsOf[i]!]);
        continue;
      }
      keptIndexes[keptCount] = i;
      keptConfigs[keptCount++] = c;
    }
    const keptAt = keptIndexes.subarray(0, keptCount);
    removedPairs.sort((a, b) => a[0] - b[0]);
    const removed = removedPairs.map(([id]) => id);
    const freedSlots = removedPairs.map(([, slot]) => slot);

    // New classes get the lowest free slots, in class id order.
    const fresh: number[] = [];
    if (keptAt.length < desired.classes.size) for (const id of desired.classes.keys()) if (!known().has(id)) fresh.push(id);
    fresh.sort((a, b) => a - b);
    const freeSlots: number[] = [];
    for (let s = 1; s < this.slotCount && freeSlots.length < fresh.length; s++) if (!isUsed(s)) freeSlots.push(s);
    const allocated = fresh.slice(0, freeSlots.length).map((id, i) => [id, freeSlots[i]!] as const);
    const allocatedSlot = new Map(allocated);
    const slotFor = (id: number) => (id === 0 ? 0 : (allocatedSlot.get(id) ?? known().get(id)!));
    // Kept classes whose slot has no histogram (maps pinned by a pacer from before histograms, or
    // an apply that crashed): checked once per Datapath, then this apply gives them one.
    const kept = this.histsChecked ? [] : Array.from(keptAt, (i) => slotsOf[i]!);
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

    const configEntry = (id: number, c: ClassConfig, parentSlot: number): SlotConfig => ({
      rate_bps: c.rate_bps,
      burst_ns: c.burst_ns,
      horizon_ns: c.horizon_ns,
      ecn_ns: c.ecn_ns,
      parent_slot: parentSlot,
      class_id: id,
      flags: c.flags,
      reserved: 0,
    });
    // A slot that had no class had no config worth keeping: an undo writes it free.
    const configsBefore = (slots: number[]) => slots.map((slot) => [slot, isUsed(slot) ? configAt(snap, slot) : FREE_SLOT] as const);

    // Classes: a new class is written; a kept one when its encoded entry differs from the
    // kernel's bytes at its slot (so drift in any field is repaired, class_id included).
    const classUpserts: Array<readonly [number, SlotConfig]> = [];
    const encoded = Buffer.alloc(classConfig.size);
    const compare = new EncodedEntries(encoded, snap.configBytes, classConfig.size);
    const entry: SlotConfig = { ...FREE_SLOT }; // one object refilled per class: no garbage per class on a resync
    for (let k = 0; k < keptAt.length; k++) {
      const id = ids[keptAt[k]!]!;
      const slot = slotsOf[keptAt[k]!]!;
      const c = keptConfigs[k]!;
      // The parent's slot: the one the kernel's entry names when class_slot gives it to that parent.
      const had = parentSlotAt(snap, slot);
      const parentSlot = c.parent_id === 0 ? 0 : had !== undefined && idAt(had) === c.parent_id ? had : slotFor(c.parent_id);
      entry.rate_bps = c.rate_bps;
      entry.burst_ns = c.burst_ns;
      entry.horizon_ns = c.horizon_ns;
      entry.ecn_ns = c.ecn_ns;
      entry.parent_slot = parentSlot;
      entry.class_id = id;
      entry.flags = c.flags;
      classConfig.encodeInto(entry, encoded, 0);
      if (!compare.same(0, slot)) classUpserts.push([slot, configEntry(id, c, parentSlot)]);
    }
    for (const id of fresh) {
      const c = desired.classes.get(id)!;
      classUpserts.push([slotFor(id), configEntry(id, c, slotFor(c.parent_id))]);
    }
    // Selectors, compared in slots, walking what the kernel has: an entry is kept when class_slot
    // gives its slot to the class the desired state selects (so not a slot given to a new class).
    // `before` keeps the kernel's value of every entry this apply changes, for the undo.
    const selectorDiff = (k: SelectorName) => {
      const want = desired[k] as Map<unknown, number>;
      const have = snap.raw[k] as EntryList<unknown, number>;
      const upserts: Array<[unknown, number]> = [];
      const deletes: unknown[] = [];
      const before = new Map<unknown, number>();
      let present = 0;
      for (let i = 0; i < have.keys.length; i++) {
        const sel = have.keys[i];
        const slot = have.values[i]!;
        const id = want.get(sel);
        if (id === undefined) {
          deletes.push(sel);
          before.set(sel, slot);
          continue;
        }
        present++;
        if (idAt(slot) !== id) {
          upserts.push([sel, slotFor(id)]);
          before.set(sel, slot);
        }
      }
      // Desired entries the kernel lacks exist only when it has fewer of them than desired.
      if (present < want.size) {
        const has = new Set(have.keys);
        for (const [sel, id] of want) if (!has.has(sel)) upserts.push([sel, slotFor(id)]);
      }
      return { upserts, deletes, before };
    };
    const diffs = Object.fromEntries(SELECTORS.map((k) => [k, selectorDiff(k)])) as Record<SelectorName, MapDiff<unknown, number> & { before: Map<unknown, number> }>;
    const desiredSettings = {
      default_slot: slotFor(desired.settings.default_class),
      flags: desired.settings.flags,
      cgroup_selectors: desired.cgroups.size,
    };
    const settingsChange = (['default_slot', 'flags', 'cgroup_selectors'] as const).some((k) => snap.settings[k] !== desiredSettings[k]);
    const upsertSlots = classUpserts.map(([slot]) => slot);
    const dstUpserts = diffs.dst4.upserts.length + diffs.dst6.upserts.length;
    const dstDeletes = diffs.dst4.deletes.length + diffs.dst6.deletes.length;

    const steps: Step[] = [
      {
        name: t.slots.name,
        size: fresh.length,
        describe: `allocating slots for ${fresh.length} new classes in ${t.config.name}`,
        run: () => {
          if (allocated.length < fresh.length) {
            throw new Error(`${t.config.name} is full: ${this.slotCount - 1} slots, ${ids.length} in use, ${fresh.length} more needed`);
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
        undo: () => t.hists.remove(allocated.map(([, slot]) => slot), new Set(Array.from(slotsOf))),
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
        size: classUpserts.length,
        describe: `writing ${classUpserts.length} entries of ${t.config.name}`,
        run: () => t.config.setMany(classUpserts),
        undo: () => t.config.setMany(configsBefore(upsertSlots)),
      },
      ...SELECTORS.map((k) => upserts(t[k] as Table<unknown, number>, diffs[k], diffs[k].before)),
      {
        name: t.settings.name,
        size: settingsChange ? 1 : 0,
        describe: `writing ${t.settings.name}`,
        run: () => writeSettings({ ...live, ...desiredSettings }),
        undo: () => writeSettings({ ...live, default_slot: snap.settings.default_slot, flags: snap.settings.flags, cgroup_selectors: snap.settings.cgroup_selectors }),
      },
      ...(dstUpserts > 0 || !this.cachesRenewed ? [bump()] : []),
      ...SELECTORS.map((k) => deletes(t[k] as Table<unknown, number>, diffs[k], diffs[k].before)),
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
          t.slots.setMany(removedPairs.filter(([id]) => !now.has(id)));
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
    this.cachesRenewed = true;
    // Schedules and counters of freed slots go last; losing them cannot misdirect a packet. (They
    // are zeroed again when the slot is reused, in case a packet in flight wrote them meanwhile.)
    // A freed slot's histogram is zeroed; a group no class uses any more gives its memory back.
    if (freedSlots.length > 0) {
      zeroSlots(freedSlots);
      t.hists.remove(freedSlots, new Set([...Array.from(keptAt, (i) => slotsOf[i]!), ...allocated.map(([, slot]) => slot)]));
    }
    return report;
  }
}

/**
 * slot → the class id class_slot gives it (the last entry wins, as a Map built from it would),
 * in a typed array: a resync asks once per class and per selector. Slots past the array can
 * only be in a class_slot written by hand; they are looked up in a Map.
 */
function slotIndex(classSlots: EntryList<number, number>, inArray: Float64Array): { idAt(slot: number): number; isUsed(slot: number): boolean } {
  const slotCount = inArray.length;
  inArray.fill(-1);
  const pastArray = new Map<number, number>();
  for (let i = 0; i < classSlots.keys.length; i++) {
    const slot = classSlots.values[i]!;
    if (slot < slotCount) inArray[slot] = classSlots.keys[i]!;
    else pastArray.set(slot, classSlots.keys[i]!);
  }
  const idAt = (slot: number) => (slot < slotCount ? inArray[slot]! : (pastArray.get(slot) ?? -1));
  return { idAt, isUsed: (slot) => idAt(slot) !== -1 };
}

const PARENT_SLOT = classConfig.fields.find((f) => f.name === 'parent_slot')!.offset;

/** The parent_slot of the kernel's entry at `slot`, or undefined past what was read. */
function parentSlotAt(snap: Snapshot, slot: number): number | undefined {
  const at = slot * classConfig.size;
  return at + classConfig.size <= snap.configBytes.length ? snap.configBytes.readUInt32LE(at + PARENT_SLOT) : undefined;
}

/** The config the kernel had at `slot` when the snapshot was read (a free slot past what was read). */
function configAt(snap: Snapshot, slot: number): SlotConfig {
  const at = slot * classConfig.size;
  return at + classConfig.size <= snap.configBytes.length ? classConfig.decode(snap.configBytes, at) : FREE_SLOT;
}

const isNanoseconds = (v: number) => Number.isSafeInteger(v) && v >= 0;

/** Everything the program relies on, checked before any map is touched. */
export function validate(s: ShaperState): void {
  const problems: string[] = [];
  for (const [id, c] of s.classes) {
    if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) problems.push(`class id ${id} is not a u32 above 0`);
    if (!Number.isInteger(c.rate_bps) || c.rate_bps < RATE_LIMITS.min || c.rate_bps > RATE_LIMITS.max) {
      problems.push(`class ${id}: rate ${c.rate_bps} bit/s is outside ${RATE_LIMITS.min}..${RATE_LIMITS.max}`);
    }
    if (!(c.horizon_ns > 0)) problems.push(`class ${id}: horizon must be positive`);
    // The rest must encode (u64 nanoseconds, u32 flags): apply compares encoded entries before it writes any.
    if (!(isNanoseconds(c.burst_ns) && isNanoseconds(c.horizon_ns) && isNanoseconds(c.ecn_ns))) {
      problems.push(`class ${id}: burst_ns, horizon_ns and ecn_ns must be whole numbers of nanoseconds (0..2^53 - 1), got ${c.burst_ns}, ${c.horizon_ns}, ${c.ecn_ns}`);
    }
    if (c.flags >>> 0 !== c.flags) problems.push(`class ${id}: flags ${c.flags} is not a u32`);
    let depth = 1;
    if (c.parent_id !== 0) {
      const parent = s.classes.get(c.parent_id); // one lookup for both checks: a resync validates every class
      if (!parent) problems.push(`class ${id}: parent ${c.parent_id} is not in the state`);
      depth = 2;
      for (let p = parent?.parent_id ?? 0; p !== 0 && depth <= MAX_DEPTH; depth++) p = s.classes.get(p)?.parent_id ?? 0;
    }
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
export function memoryTables(capacity = 65_536, slotCount = MAX_CLASSES): ShaperTables & { slots: ListTable<number, number>; hists: MemoryHistograms } {
  const table = <K, V>(name: string): ListTable<K, V> & { map: Map<K, V> } => {
    const map = new Map<K, V>();
    return {
      name,
      map,
      entries: () => new Map(map),
      list: () => ({ keys: [...map.keys()], values: [...map.values()] }),
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
  const config = array<SlotConfig>('class_config', FREE_SLOT);
  // What the kernel's readArray returns: the slots' entries encoded, free slots all zero.
  const readArray = (count: number): Buffer => {
    const n = Math.min(count, slotCount);
    const out = Buffer.alloc(n * classConfig.size);
    for (const [slot, v] of config.map) if (slot < n) classConfig.encodeInto(v, out, slot * classConfig.size);
    return out;
  };
  const ZERO_STATS: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };
  const stats = array<ClassStats>('class_stats', ZERO_STATS);
  const hists = new Map<number, number[]>();
  return {
    config: Object.assign(config, { readArray }),
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
