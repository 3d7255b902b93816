/**
 * delay_hist, the egress object's ARRAY_OF_MAPS of per-class delay histograms (see
 * shaper-bpf/bpf/delay_hist.h): slot → the class's own inner map, a 1-entry ARRAY holding a
 * struct pacer_delay_hist. The program only counts into inner maps; creating, replacing and
 * removing them is the agent's (the Datapath's), here.
 *
 * Removing is a replacement too. The kernel waits for an RCU grace period after every write to
 * a map of maps (maybe_wait_bpf_programs: 10-20 ms each on a loaded machine), once per batch,
 * but arrays have no delete batch: deleting 200 entries one by one took 3.4 s here. So a removed
 * slot points at one shared, never-read "retired" inner map kept in entry 0 (slot 0 is no class),
 * written with one batch; the slot's own inner map is freed as it loses its last reference.
 */
import { BpfMap, type MapBtf } from './libbpf/index.js';
import { delayHist, u32Key } from './layout.js';

/** What the Datapath needs of the histograms; the kernel map and memoryTables implement it. */
export interface HistogramTable {
  readonly name: string;
  /** The slot's counts (HIST_BUCKETS of them), or undefined while the slot has no histogram. */
  get(slot: number): number[] | undefined;
  /** Which of `slots` have a histogram. */
  present(slots: ReadonlyArray<number>): Set<number>;
  /**
   * Gives each slot a fresh, empty histogram, replacing the one it had. On a failure (out of
   * memory) some slots may have theirs already: the Datapath's undo removes them.
   */
  reset(slots: ReadonlyArray<number>): void;
  /** Removes the slots' histograms (missing ones are ignored). */
  remove(slots: ReadonlyArray<number>): void;
}

const BPF_MAP_TYPE_ARRAY = 2;
const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
/** The inner map every slot gets: what struct pacer_hist_inner declares (the verifier requires the same). */
/** Inner maps made (and fds held) at once by reset. */
const RESET_CHUNK = 1024;
export const INNER_MAP = { type: BPF_MAP_TYPE_ARRAY, name: 'pacer_hist', keySize: 4, valueSize: delayHist.size, maxEntries: 1 } as const;

/** BTF kinds (linux/btf.h) of the inner map's key (__u32) and value (struct pacer_delay_hist). */
const BTF_KIND_STRUCT = 4;
const BTF_KIND_TYPEDEF = 8;
/** The types struct pacer_hist_inner declares, to find in the object's BTF (BpfObject.btfFor). */
export const INNER_MAP_TYPES = { key: { name: '__u32', kind: BTF_KIND_TYPEDEF }, value: { name: 'pacer_delay_hist', kind: BTF_KIND_STRUCT } } as const;

export class DelayHistMap implements HistogramTable {
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
  }

  get name(): string {
    return this.map.name;
  }

  /** The kernel id of the slot's inner map (what bpftool shows), or undefined; the retired map's id for a removed slot. */
  innerId(slot: number): number | undefined {
    return this.map.lookup(u32Key(slot))?.readUInt32LE(0);
  }

  /** The id of the shared inner map removed slots point at (entry 0), made on first use. */
  private retiredId(): number {
    const have = this.innerId(0);
    if (have !== undefined) return have;
    this.resetChunk([0]);
    return this.innerId(0)!;
  }

  /** The slot's inner map id if it is the slot's own histogram (not retired, not empty). */
  private ownId(slot: number): number | undefined {
    const id = this.innerId(slot);
    return id === undefined || id === this.innerId(0) ? undefined : id;
  }

  get(slot: number): number[] | undefined {
    // The agent may replace or remove the slot's inner map between the two reads: look again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const id = this.ownId(slot);
      if (id === undefined) return undefined;
      let inner: BpfMap;
      try {
        inner = BpfMap.openById(id);
      } catch {
        continue; // that inner map is gone (ENOENT): the outer entry has changed since
      }
      try {
        const raw = inner.lookup(u32Key(0));
        return raw && delayHist.decode(raw).counts;
      } finally {
        inner.close();
      }
    }
    return undefined;
  }

  present(slots: ReadonlyArray<number>): Set<number> {
    const retired = this.innerId(0);
    return new Set(
      slots.filter((slot) => {
        const id = this.innerId(slot);
        return id !== undefined && id !== retired;
      }),
    );
  }

  reset(slots: ReadonlyArray<number>): void {
    // In chunks, so that thousands of new classes never hold thousands of fds open at once.
    for (let start = 0; start < slots.length; start += RESET_CHUNK) this.resetChunk(slots.slice(start, start + RESET_CHUNK));
  }

  private resetChunk(slots: ReadonlyArray<number>): void {
    const n = slots.length;
    // The chunk's inner maps are all made before any entry is written, so a failed creation
    // (memory) replaces nothing of it. The outer map keeps its own reference: our fds close after.
    const created: BpfMap[] = [];
    try {
      for (let i = 0; i < n; i++) created.push(BpfMap.create({ ...INNER_MAP, btf: this.innerBtf }));
      const keys = Buffer.alloc(4 * n);
      const fds = Buffer.alloc(4 * n);
      for (let i = 0; i < n; i++) {
        keys.writeUInt32LE(slots[i]!, 4 * i);
        fds.writeUInt32LE(created[i]!.fd, 4 * i);
      }
      this.map.updateBatch(keys, fds, n);
    } finally {
      for (const m of created) m.close();
    }
  }

  remove(slots: ReadonlyArray<number>): void {
    const own = [...this.present(slots.filter((slot) => slot !== 0))];
    const n = own.length;
    if (n === 0) return;
    const retired = BpfMap.openById(this.retiredId());
    try {
      const keys = Buffer.alloc(4 * n);
      const fds = Buffer.alloc(4 * n);
      own.forEach((slot, i) => {
        keys.writeUInt32LE(slot, 4 * i);
        fds.writeUInt32LE(retired.fd, 4 * i);
      });
      this.map.updateBatch(keys, fds, n);
    } finally {
      retired.close();
    }
  }
}
