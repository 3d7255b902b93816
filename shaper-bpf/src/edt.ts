/**
 * The departure rule of pacer's tc program (shaper-bpf/bpf/edt.h and calendar.h), as pure
 * TypeScript on the same integers. The simulator schedules packets with exactly this code, and a
 * kernel test runs it against the real BPF object on random packet sequences: both must agree to
 * the nanosecond.
 *
 * The leaf, and each ancestor without a calendar, claims a slot in its own schedule:
 *   delay    = ceil(wireLen · 8 · 1e9 / rate)
 *   next     = max(tLast + delay, now − burst)
 *   tLast    = next
 *   d        = max(tstamp, next of each of them)
 * Each class on the path with a calendar (a parent: calendar.ts) then places the packet in the
 * first slot with room at or after d in all of them, and is charged there:
 *   depart   = that time (d when d's slots have room)
 *   held     = depart − max(now, tstamp)                 (0 when depart is not later)
 * The packet's own tstamp (TCP's EDT) enters its departure only, never a schedule, and pacer's
 * delay (delayNs, the ECN threshold) is what pacer adds to it. A parent is charged in the slot the
 * packet leaves in, so a child's backlog booked at the child's own rate leaves the rest of each
 * slot to its siblings and never puts more than the parent's rate on the wire. If any slot is
 * more than the leaf's horizon after now (or past a calendar's reach, or the walk finds only full
 * slots), the packet is dropped and nothing moves.
 *
 * Numbers, not bigints: every value must stay below 2^53 (104 days of nanoseconds; the simulator
 * starts at 0). A value outside that range throws rather than losing precision.
 */
import { Calendar, beyondReach, calendarCharge, calendarLevel, calendarWalk, type CalendarLevel } from './calendar.js';

export interface EdtClassConfig {
  rateBps: number;
  burstNs: number;
  horizonNs: number;
  /** Mark CE on ECT packets waiting longer than this; 0 = off. */
  ecnNs: number;
  /** 0 = a root class. */
  parentId: number;
}

export type EdtVerdict =
  | { action: 'pass'; depart: number; delayNs: number; ecnMark: boolean }
  | { action: 'drop'; reason: 'horizon' };

/** The tree depth the data plane walks (root = level 1). */
export const MAX_DEPTH = 4;
const NSEC_PER_SEC = 1_000_000_000;
/** Beyond this, wireLen · 8e9 leaves the exact range of a double. */
const MAX_WIRE_LEN = 1 << 20;

function exact(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${n}`);
  return n;
}

/** ceil(wireLen · 8 · 1e9 / rate), exactly. */
export function delayNs(wireLen: number, rateBps: number): number {
  if (wireLen > MAX_WIRE_LEN) throw new RangeError(`wireLen ${wireLen} exceeds ${MAX_WIRE_LEN}`);
  const bitsNs = exact('wireLen', wireLen) * 8 * NSEC_PER_SEC;
  exact('rateBps', rateBps);
  if (rateBps === 0) throw new RangeError('rateBps must be positive');
  // Floating division can be off by one for large operands: correct it with exact products.
  let q = Math.floor(bitsNs / rateBps);
  while (q * rateBps > bitsNs) q--;
  while ((q + 1) * rateBps <= bitsNs) q++;
  return q * rateBps === bitsNs ? q : q + 1;
}

/**
 * Departure of one packet. `path` is the leaf class then its ancestors (at most MAX_DEPTH);
 * `tLast` holds their schedules in the same order and is updated in place when the packet passes;
 * `calendars[i]` is class i's calendar, if it has one: an ancestor with a calendar is charged there
 * instead of in its schedule (the leaf's calendar is not used: its own packets claim its schedule).
 */
export function depart(
  path: ReadonlyArray<EdtClassConfig>,
  tLast: number[],
  wireLen: number,
  now: number,
  tstamp = 0,
  calendars: ReadonlyArray<Calendar | undefined> = [],
): EdtVerdict {
  const leaf = path[0];
  if (!leaf) throw new RangeError('a path has at least the leaf class');
  exact('now', now);
  let departure = exact('tstamp', tstamp);
  const beyond = (t: number) => t > now && t - now > leaf.horizonNs;
  const claimed: Array<number | undefined> = [];
  const levels: CalendarLevel[] = [];
  for (let i = 0; i < Math.min(path.length, MAX_DEPTH); i++) {
    const c = path[i]!;
    // An ancestor with a calendar is charged there; the leaf always claims its own schedule.
    const cal = i > 0 ? calendars[i] : undefined;
    if (cal) {
      levels.push(calendarLevel(cal, c.rateBps, c.burstNs, now));
      continue;
    }
    const earliest = now > c.burstNs ? now - c.burstNs : 0;
    const next = Math.max(exact('tLast', tLast[i] ?? 0) + delayNs(wireLen, c.rateBps), earliest);
    if (beyond(next)) return { action: 'drop', reason: 'horizon' };
    claimed[i] = next;
    departure = Math.max(departure, next);
  }
  if (levels.length > 0) {
    const t = calendarWalk(levels, departure, now);
    if (t === undefined || beyond(t) || beyondReach(levels, t, now)) return { action: 'drop', reason: 'horizon' };
    calendarCharge(levels, t, wireLen);
    departure = t;
  }
  claimed.forEach((t, i) => {
    if (t !== undefined) tLast[i] = t;
  });
  const sent = Math.max(now, tstamp);
  const delay = departure > sent ? departure - sent : 0;
  return { action: 'pass', depart: departure, delayNs: delay, ecnMark: leaf.ecnNs > 0 && delay > leaf.ecnNs };
}

/**
 * A shaper over a set of classes by id, holding each class's schedule, as the data plane does
 * with its class_config and class_state maps.
 */
export class EdtShaper {
  private readonly tLast = new Map<number, number>();
  private readonly calendars = new Map<number, Calendar>();

  /**
   * `calendars`: 'none' (the default) paces every ancestor by its own schedule, as the tc program
   * does today; 'parents' gives every class that has children a calendar, the design of
   * docs/data-plane.md ("What a parent guarantees: the calendar"), which the BPF program does not
   * implement yet: only the simulator's calendar scenarios use it.
   */
  constructor(
    private readonly classes: ReadonlyMap<number, EdtClassConfig>,
    private readonly calendarsFor: 'parents' | 'none' = 'none',
  ) {}

  /** The class's calendar when it has children (made on first use, kept across rate changes). */
  calendar(classId: number): Calendar | undefined {
    if (this.calendarsFor === 'none') return undefined;
    let cal = this.calendars.get(classId);
    if (!cal && [...this.classes.values()].some((c) => c.parentId === classId && c.rateBps > 0)) this.calendars.set(classId, (cal = new Calendar()));
    return cal;
  }

  /** The leaf and its ancestors, leaf first, as the BPF program walks them. */
  path(leafId: number): { ids: number[]; configs: EdtClassConfig[] } {
    const ids: number[] = [];
    const configs: EdtClassConfig[] = [];
    let id = leafId;
    while (id !== 0 && ids.length < MAX_DEPTH) {
      const c = this.classes.get(id);
      if (!c || c.rateBps === 0) break;
      ids.push(id);
      configs.push(c);
      id = c.parentId;
    }
    return { ids, configs };
  }

  /** Undefined when the class is unknown: the packet is not shaped. */
  send(leafId: number, wireLen: number, now: number, tstamp = 0): EdtVerdict | undefined {
    const { ids, configs } = this.path(leafId);
    if (ids.length === 0) return undefined;
    const schedules = ids.map((id) => this.tLast.get(id) ?? 0);
    const verdict = depart(configs, schedules, wireLen, now, tstamp, ids.map((id) => this.calendar(id)));
    if (verdict.action === 'pass') ids.forEach((id, i) => this.tLast.set(id, schedules[i]!));
    return verdict;
  }

  schedule(classId: number): number {
    return this.tLast.get(classId) ?? 0;
  }
}
