/**
 * delay_hist, the egress object's ARRAY_OF_MAPS of per-class delay histograms (see
 * shaper-bpf/bpf/delay_hist.h): group (slot >> 4) → the group's inner map, an ARRAY of 16
 * struct pacer_delay_hist, index slot & 15. The program only counts into inner maps; creating
 * them, zeroing a class's histogram and retiring groups is the agent's (the Datapath's), here.
 *
 * Writes to the map of maps are few and batched because the kernel waits for an RCU grace period
 * after each one (maybe_wait_bpf_programs: 10-20 ms on a loaded machine; on 6.1 after every
 * entry of a batch, on 6.18 once per batch). A class's own histogram is zeroed in its group's
 * inner map, a plain array update with no wait. Retiring groups is a replacement too: arrays have
 * no delete batch, and deleting 200 entries one by one took 3.4 s here, so a retired group points
 * at one shared, never-read inner map kept in the entry after the last group, written with one
 * batch; the group's own map is freed with its last reference.
 */
import { BpfMap, type MapBtf } from './libbpf/index.js';
import { delayHist, u32Key } from './layout.js';

/** What the Datapath needs of the histograms; the kernel map and memoryTables implement it. */
export interface HistogramTable {
  readonly name: string;
  /** The slot's counts (HIST_BUCKETS of them), or undefined while the slot has no histogram. */
  get(slot: number): number[] | undefined;
  /** get for many slots at once: slot → counts, for the slots that have a histogram. */
  getMany(slots: ReadonlyArray<number>): Map<number, number[]>;
  /** Which of `slots` have a histogram (one the program counts into). */
  present(slots: ReadonlyArray<number>): Set<number>;
  /** Gives each slot an empty histogram: made if it had none, zeroed if it had one. */
  reset(slots: ReadonlyArray<number>): void;
  /**
   * The slots are free: their histograms are zeroed, and memory no slot of `inUse` needs may go
   * back to the kernel (afterwards a slot may or may not still have a, zero, histogram).
   */
  remove(slots: ReadonlyArray<number>, inUse: ReadonlySet<number>): void;
}

const BPF_MAP_TYPE_ARRAY = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
/** Slots per inner map (PACER_HIST_GROUP). */
export const HIST_GROUP = 16;
/** Inner maps made (and fds held) at once. */
const CREATE_CHUNK = 1024;
/** The inner map of every group: what struct pacer_hist_inner declares (the verifier requires the same). */
export const INNER_MAP = { type: BPF_MAP_TYPE_ARRAY, name: 'pacer_hist', keySize: 4, valueSize: delayHist.size, maxEntries: HIST_GROUP } as const;

/** BTF kinds (linux/btf.h) of the inner map's key (__u32) and value (struct pacer_delay_hist). */
const BTF_KIND_STRUCT = 4;
const BTF_KIND_TYPEDEF = 8;
/** The types struct pacer_hist_inner declares, to find in the object's BTF (BpfObject.btfFor). */
export const INNER_MAP_TYPES = { key: { name: '__u32', kind: BTF_KIND_TYPEDEF }, value: { name: 'pacer_delay_hist', kind: BTF_KIND_STRUCT } } as const;

const groupOf = (slot: number) => Math.floor(slot / HIST_GROUP);

export class DelayHistMap implements HistogramTable {
  /** The entry after the last group: the shared inner map retired groups point at. */
  private readonly retiredEntry: number;

  /**
   * `innerBtf`: the object's BTF for INNER_MAP_TYPES. The inner maps are created with it, as
   * libbpf creates the template from the declaration: kernel 6.1 refuses an inner map whose BTF
   * presence differs from the template's (EINVAL on every update of delay_hist).
   */
  constructor(
    readonly map: BpfMap,
    private readonly innerBtf?: MapBtf,
  ) {
    if (map.type !== BPF_MAP_TYPE_ARRAY_OF_MAPS || map.keySize !== 4 || map.valueSize !== 4) {
      throw new Error(`map ${map.name}: expected an array of maps with u32 keys (delay_hist), got a ${map.typeName} map with key/value sizes ${map.keySize}/${map.valueSize}`);
    }
    this.retiredEntry = map.maxEntries - 1;
  }

  get name(): string {
    return this.map.name;
  }

  /** The kernel id of the group's inner map (what bpftool shows), or undefined; the retired map's id for a retired group. */
  groupMapId(group: number): number | undefined {
    return this.map.lookup(u32Key(group))?.readUInt32LE(0);
  }

  /** Groups that have their own inner map (not retired), in order. */
  liveGroups(): number[] {
    const retired = this.groupMapId(this.retiredEntry);
    const out: number[] = [];
    for (let g = 0; g < this.retiredEntry; g++) {
      const id = this.groupMapId(g);
      if (id !== undefined && id !== retired) out.push(g);
    }
    return out;
  }

  /** group → its own inner map id, for the groups of `slots` that have one. */
  private ownIds(slots: ReadonlyArray<number>): Map<number, number> {
    const retired = this.groupMapId(this.retiredEntry);
    const out = new Map<number, number>();
    for (const g of new Set(slots.map(groupOf))) {
      const id = this.groupMapId(g);
      if (id !== undefined && id !== retired) out.set(g, id);
    }
    return out;
  }

  /** Runs `f` on each group's inner map (opened by id; a group whose map went away meanwhile is skipped). */
  private withGroups(ids: Map<number, number>, f: (group: number, inner: BpfMap) => void): void {
    for (const [g, id] of ids) {
      let inner: BpfMap;
      try {
        inner = BpfMap.openById(id);
      } catch {
        continue; // retired since we looked (ENOENT)
      }
      try {
        f(g, inner);
      } finally {
        inner.close();
      }
    }
  }

  get(slot: number): number[] | undefined {
    return this.getMany([slot]).get(slot);
  }

  /** Each group's map is opened once and only its wanted slots are read (the slots grouped first: a full read has 10,000 slots in 625 groups). */
  getMany(slots: ReadonlyArray<number>): Map<number, number[]> {
    const out = new Map<number, number[]>();
    const byGroup = new Map<number, number[]>();
    for (const slot of slots) {
      const g = groupOf(slot);
      const list = byGroup.get(g);
      if (list) list.push(slot);
      else byGroup.set(g, [slot]);
    }
    this.withGroups(this.ownIds(slots), (g, inner) => {
      for (const slot of byGroup.get(g)!) {
        const raw = inner.lookup(u32Key(slot % HIST_GROUP));
        if (raw) out.set(slot, delayHist.decode(raw).counts);
      }
    });
    return out;
  }

  present(slots: ReadonlyArray<number>): Set<number> {
    const groups = this.ownIds(slots);
    return new Set(slots.filter((slot) => groups.has(groupOf(slot))));
  }

  reset(slots: ReadonlyArray<number>): void {
    if (slots.length === 0) return;
    const have = this.ownIds(slots);
    const missing = [...new Set(slots.map(groupOf))].filter((g) => !have.has(g));
    // A new group's map is all zeros: only the slots of groups that already had one need zeroing.
    for (let start = 0; start < missing.length; start += CREATE_CHUNK) this.createGroups(missing.slice(start, start + CREATE_CHUNK));
    this.zero(slots.filter((slot) => have.has(groupOf(slot))), have);
  }

  remove(slots: ReadonlyArray<number>, inUse: ReadonlySet<number>): void {
    if (slots.length === 0) return;
    const have = this.ownIds(slots);
    this.zero(slots, have);
    const used = new Set([...inUse].map(groupOf));
    const idle = [...have.keys()].filter((g) => !used.has(g));
    if (idle.length > 0) this.retire(idle);
  }

  /** Zeroes the slots' histograms in their groups' maps (plain array writes: no RCU wait). */
  private zero(slots: ReadonlyArray<number>, groups: Map<number, number>): void {
    this.withGroups(groups, (g, inner) => {
      const indexes = slots.filter((slot) => groupOf(slot) === g).map((slot) => slot % HIST_GROUP);
      if (indexes.length === 0) return;
      const keys = Buffer.alloc(4 * indexes.length);
      indexes.forEach((i, k) => keys.writeUInt32LE(i, 4 * k));
      inner.updateBatch(keys, Buffer.alloc(delayHist.size * indexes.length), indexes.length);
    });
  }

  /** Makes the groups' inner maps (all before any entry is written) and writes them in one batch. */
  private createGroups(groups: ReadonlyArray<number>): void {
    const created: BpfMap[] = [];
    try {
      for (let i = 0; i < groups.length; i++) created.push(BpfMap.create({ ...INNER_MAP, btf: this.innerBtf }));
      this.point(groups, created.map((m) => m.fd));
    } finally {
      for (const m of created) m.close(); // the outer map holds its own references
    }
  }

  /** Points the groups at the shared retired map (made on first use): their own maps are freed. */
  private retire(groups: ReadonlyArray<number>): void {
    if (this.groupMapId(this.retiredEntry) === undefined) this.createGroups([this.retiredEntry]);
    const retired = BpfMap.openById(this.groupMapId(this.retiredEntry)!);
    try {
      this.point(groups, groups.map(() => retired.fd));
    } finally {
      retired.close();
    }
  }

  private point(groups: ReadonlyArray<number>, fds: ReadonlyArray<number>): void {
    const keys = Buffer.alloc(4 * groups.length);
    const values = Buffer.alloc(4 * groups.length);
    groups.forEach((g, i) => {
      keys.writeUInt32LE(g, 4 * i);
      values.writeUInt32LE(fds[i]!, 4 * i);
    });
    this.map.updateBatch(keys, values, groups.length);
  }
}
