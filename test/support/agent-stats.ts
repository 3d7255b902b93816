/**
 * In-memory shaper tables whose stats the test writes: `add(classId, bytes, drops)` advances a
 * class's counters as if the data plane had passed that traffic.
 */
import { memoryTables } from '../../shaper-bpf/src/datapath.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';

const ZERO: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };

export function fakeStatsTables() {
  const t = memoryTables();
  const bySlot = new Map<number, ClassStats>();
  t.stats = {
    get: (slot) => bySlot.get(slot) ?? ZERO,
    zeroMany: (slots) => slots.forEach((s) => bySlot.delete(s)),
  };
  const add = (classId: number, bytes: number, drops = 0) => {
    const slot = t.slots.entries().get(classId);
    if (slot === undefined) throw new Error(`class ${classId} has no slot`);
    const s = bySlot.get(slot) ?? ZERO;
    bySlot.set(slot, { ...s, packets: s.packets + Math.ceil(bytes / 1500), bytes: s.bytes + Math.floor(bytes), horizon_drops: s.horizon_drops + drops });
  };
  return Object.assign(t, { add });
}
