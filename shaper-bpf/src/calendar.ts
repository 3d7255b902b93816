/**
 * A parent's calendar (docs/data-plane.md, "What a parent guarantees: the calendar"): byte counts
 * of the parent's future time slots, so that a packet is charged to the slot it leaves in.
 * Integers only, as a BPF version would compute them. Not in the tc program yet: the simulator's
 * calendar scenarios use it (EdtShaper with 'parents').
 */

/** Words in a calendar's ring (a power of two): slot s lives at s mod CAL_RING. */
export const CAL_RING = 16_384;
const CAL_RING_SHIFT = 14;
/** The shortest slot: 2^18 ns = 262 µs. */
export const CAL_MIN_SHIFT = 18;
/** shift = max(CAL_MIN_SHIFT, CAL_SHIFT_BASE − ⌊log2 rate⌋): a slot holds at least 2^44 / 8e9 · 2^f / 2^f ≥ 2,199 bytes. */
const CAL_SHIFT_BASE = 44;
/** Slots a walk may skip, and slots a packet's bytes may spread over. */
export const CAL_MAX_WALK = 32;
export const CAL_MAX_SPILL = 32;
/** How far past now (in slots) a packet may be charged: half the ring, less room for its spill. */
export const CAL_REACH = CAL_RING / 2 - CAL_MAX_SPILL;
/** How far behind now (in slots) a burst may reach. */
export const CAL_BEHIND = CAL_RING / 2 - 1;

const TWO32 = 2 ** 32;

/** ⌊log2 n⌋ for 1 ≤ n < 2^53. */
function floorLog2(n: number): number {
  let f = Math.floor(Math.log2(n));
  while (2 ** f > n) f--;
  while (2 ** (f + 1) <= n) f++;
  return f;
}

/** The slot width (log2 ns) of a calendar at this rate. */
export function calShift(rateBps: number): number {
  return Math.max(CAL_MIN_SHIFT, CAL_SHIFT_BASE - floorLog2(rateBps));
}

/** ⌊rate · 2^shift / 8e9⌋ bytes: a slot's room, exactly. */
export function calCap(rateBps: number, shift: number): number {
  // 8e9 = 2^9 · 15,625,000, so the numerator stays a small multiple of the rate.
  const num = rateBps * 2 ** (shift - 9);
  let q = Math.floor(num / 15_625_000);
  while (q * 15_625_000 > num) q--;
  while ((q + 1) * 15_625_000 <= num) q++;
  return q;
}

/** The 32-bit tag a slot's word carries: its lap of the ring and the slot width. */
export function calTag(slot: number, shift: number): number {
  return (Math.floor(slot / CAL_RING) * 64 + shift) % TWO32;
}

/** One calendar: the ring of (tag, bytes) words and the hint (first slot with room it knows of). */
export class Calendar {
  readonly tags = new Uint32Array(CAL_RING);
  readonly counts = new Float64Array(CAL_RING);
  /** slot · 64 + shift, 0 = none (as the kernel's word). */
  hint = 0;

  /** Bytes charged to `slot` (0 for a word of another lap or width). */
  count(slot: number, shift: number): number {
    const i = slot % CAL_RING;
    return this.tags[i] === calTag(slot, shift) ? this.counts[i]! : 0;
  }

  /** The hint's slot at this width, or 0 when it was written at another. */
  hintSlot(shift: number): number {
    return this.hint % 64 === shift ? Math.floor(this.hint / 64) : 0;
  }

  /** Moves the hint past `slot` when it points at it (the slot was found or made full). */
  passed(slot: number, shift: number): void {
    if (this.hintSlot(shift) === slot) this.hint = (slot + 1) * 64 + shift;
  }

  /**
   * Takes up to `need` bytes of `slot`'s room: returns what it got. (The kernel adds `need` and
   * gives back what did not fit; on one CPU that is the same.)
   */
  take(slot: number, shift: number, cap: number, need: number): number {
    const i = slot % CAL_RING;
    const tag = calTag(slot, shift);
    if (this.tags[i] !== tag) {
      this.tags[i] = tag;
      this.counts[i] = 0;
    }
    const old = this.counts[i]!;
    const got = old >= cap ? 0 : Math.min(need, cap - old);
    this.counts[i] = old + got;
    if (old + need >= cap) this.passed(slot, shift);
    return got;
  }

  /** Charges bytes the spill could not place (a packet past CAL_MAX_SPILL slots), beyond cap. */
  overfill(slot: number, shift: number, bytes: number): void {
    const i = slot % CAL_RING;
    const tag = calTag(slot, shift);
    if (this.tags[i] !== tag) {
      this.tags[i] = tag;
      this.counts[i] = 0;
    }
    this.counts[i] = this.counts[i]! + bytes;
  }
}

/** A calendared class on a packet's path, as the walk sees it. */
export interface CalendarLevel {
  cal: Calendar;
  shift: number;
  cap: number;
  /** now − burst (0 when the clock is younger than the burst). */
  earliest: number;
}

export function calendarLevel(cal: Calendar, rateBps: number, burstNs: number, now: number): CalendarLevel {
  const shift = calShift(rateBps);
  return { cal, shift, cap: calCap(rateBps, shift), earliest: now > burstNs ? now - burstNs : 0 };
}

const slotOf = (t: number, shift: number): number => Math.floor(t / 2 ** shift);
const startOf = (slot: number, shift: number): number => slot * 2 ** shift;

/**
 * The departure at or after `d` in the first slot with room in every calendar (nearest class
 * first), or undefined when the walk found CAL_MAX_WALK full slots. Moves hints past full slots.
 */
export function calendarWalk(levels: ReadonlyArray<CalendarLevel>, d: number, now: number): number | undefined {
  let t = d;
  for (const l of levels) {
    t = Math.max(t, l.earliest);
    const nowSlot = slotOf(now, l.shift);
    if (nowSlot > CAL_BEHIND) t = Math.max(t, startOf(nowSlot - CAL_BEHIND, l.shift));
    t = Math.max(t, startOf(l.cal.hintSlot(l.shift), l.shift));
  }
  for (let step = 0; step <= CAL_MAX_WALK; step++) {
    let moved = false;
    for (const l of levels) {
      const s = slotOf(t, l.shift);
      if (l.cal.count(s, l.shift) >= l.cap) {
        l.cal.passed(s, l.shift);
        t = startOf(s + 1, l.shift);
        moved = true;
        break;
      }
    }
    if (!moved) return t;
  }
  return undefined;
}

/** Whether `t` is past a calendar's reach (the ring would alias). */
export function beyondReach(levels: ReadonlyArray<CalendarLevel>, t: number, now: number): boolean {
  return levels.some((l) => slotOf(t, l.shift) - slotOf(now, l.shift) >= CAL_REACH);
}

/** Charges a departing packet's bytes to its slot of `t` in every calendar, and the slots after it. */
export function calendarCharge(levels: ReadonlyArray<CalendarLevel>, t: number, wireLen: number): void {
  for (const l of levels) {
    const s = slotOf(t, l.shift);
    let need = wireLen;
    for (let i = 0; i < CAL_MAX_SPILL && need > 0; i++) need -= l.cal.take(s + i, l.shift, l.cap, need);
    if (need > 0) l.cal.overfill(s + CAL_MAX_SPILL - 1, l.shift, need);
  }
}
