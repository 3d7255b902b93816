/**
 * For tests that write the egress object's maps directly: classes keyed by class id, as the
 * tests think of them, given slots the way the Datapath does (the lowest free slot, recorded in
 * class_slot, with an empty delay histogram), with parents and selectors translated to slots, and settings.generation bumped
 * after each change of the prefix tries (what the Datapath does, so the destination caches
 * forget answers from before).
 */
import type { EgressObject } from '../../shaper-bpf/src/egress.js';
import { FREE_SLOT, type ClassConfig, type Settings } from '../../shaper-bpf/src/layout.js';

export class TestClasses {
  constructor(private readonly eg: EgressObject) {}

  /** The class's slot; allocated (lowest free) and recorded in class_slot on first use. */
  slot(id: number): number {
    const have = this.eg.slots.get(id);
    if (have !== undefined) return have;
    const used = new Set(this.eg.slots.entries().values());
    let slot = 1;
    while (used.has(slot)) slot++;
    this.eg.slots.set(id, slot);
    this.eg.hists.reset([slot]);
    return slot;
  }

  /** Writes the class's config at its slot (a rate change keeps its schedule, as the Datapath's). */
  set(id: number, c: ClassConfig): void {
    const { parent_id, ...rest } = c;
    this.eg.config.set(this.slot(id), { ...rest, parent_slot: parent_id ? this.slot(parent_id) : 0, class_id: id, reserved: 0 });
  }

  mark(mark: number, id: number): void {
    this.eg.marks.set(mark, this.slot(id));
  }

  dst4(entries: ReadonlyArray<readonly [string, number]>): void {
    this.eg.dst4.setMany(entries.map(([cidr, id]) => [cidr, this.slot(id)] as const));
    this.bump();
  }

  dst6(entries: ReadonlyArray<readonly [string, number]>): void {
    this.eg.dst6.setMany(entries.map(([cidr, id]) => [cidr, this.slot(id)] as const));
    this.bump();
  }

  settings(s: Settings): void {
    const now = this.eg.settings.get(0)!;
    this.eg.settings.set(0, { ...now, default_slot: s.default_class ? this.slot(s.default_class) : 0, flags: s.flags });
  }

  /** settings.generation + 1: every cached destination answer is stale. */
  bump(): void {
    const now = this.eg.settings.get(0)!;
    this.eg.settings.set(0, { ...now, generation: (now.generation + 1) >>> 0 });
  }

  /** The class's schedule and counters (undefined while it has no slot). */
  state(id: number) {
    const slot = this.eg.slots.get(id);
    return slot === undefined ? undefined : this.eg.state.get(slot);
  }
  stats(id: number) {
    const slot = this.eg.slots.get(id);
    return slot === undefined ? undefined : this.eg.stats.get(slot);
  }
  config(id: number) {
    const slot = this.eg.slots.get(id);
    return slot === undefined ? undefined : this.eg.config.get(slot);
  }

  /** The class's delay histogram counts (undefined while it has no slot). */
  delays(id: number): number[] | undefined {
    const slot = this.eg.slots.get(id);
    return slot === undefined ? undefined : this.eg.hists.get(slot);
  }

  /** Every class's packets by class id (classes with a slot). */
  packets(): Map<number, number> {
    return new Map([...this.eg.slots.entries()].map(([id, slot]) => [id, this.eg.stats.get(slot)?.packets ?? 0]));
  }

  /** Removes every class, selector and schedule: each used slot's config, state and stats zeroed. */
  clear(): void {
    const eg = this.eg;
    const slots = [...eg.slots.entries().values()];
    eg.config.setMany(slots.map((s) => [s, FREE_SLOT] as const));
    eg.state.setMany(slots.map((s) => [s, { t_last: 0 }] as const));
    eg.stats.zeroMany(slots);
    eg.hists.remove(slots, new Set());
    for (const m of [eg.slots, eg.marks, eg.dst4, eg.dst6]) m.deleteMany([...m.entries().keys()] as never[]);
    eg.cgroups.deleteMany([...eg.cgroups.entries().keys()]);
    const now = eg.settings.get(0)!;
    eg.settings.set(0, { default_slot: 0, flags: 0, cgroup_selectors: 0, generation: (now.generation + 1) >>> 0 });
    eg.ifaceStats.zero(0);
  }
}
