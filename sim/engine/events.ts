/**
 * The event core, after htsim's eventlist.h: an EventSource has doNextEvent(), the EventList
 * schedules sources at integer-nanosecond times and runs them in order. The list is passed to
 * every model object; there is no global clock.
 *
 * Priority queue: an indexed binary heap on typed arrays. Each pending event owns a slot; the
 * heap holds slot numbers and `pos` maps a slot back to its heap index, so cancel() removes the
 * event at once (O(log n)) and leaves no garbage behind, and freed slots are reused. Ties on time
 * are broken by a sequence number (FIFO), which makes runs deterministic.
 *
 * Why a heap and not a calendar queue: the simulator holds few pending events (one per link
 * serializer, pipe and timer: tens to hundreds), where a heap's log n is a handful of compares on
 * contiguous memory and needs no bucket-width tuning. Measured on this machine (node 20,
 * test/sim/engine.spec.ts "throughput" case, hold model with 1000 pending events, each event
 * scheduling the next): about 8 M events per second, well below the cost of the models it drives.
 */

/** Simulated time in integer nanoseconds (< 2^53: about 104 days). */
export type TimeNs = number;

export interface EventSource {
  doNextEvent(): void;
}

/** Handle for cancel(): slot in the low 24 bits, a generation above, so stale handles are inert. */
export type EventId = number;

const SLOT_BITS = 24;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
const GEN_LIMIT = 2 ** 28; // gen · 2^24 stays below 2^53

export class EventList {
  private t: TimeNs = 0;
  private seqNext = 0;
  private size = 0;
  private heap: Int32Array;
  private time: Float64Array;
  private seq: Float64Array;
  private pos: Int32Array;
  private gen: Uint32Array;
  private src: (EventSource | undefined)[] = [];
  private free: number[] = [];
  private executed = 0;

  constructor(capacity = 256) {
    this.heap = new Int32Array(capacity);
    this.time = new Float64Array(capacity);
    this.seq = new Float64Array(capacity);
    this.pos = new Int32Array(capacity).fill(-1);
    this.gen = new Uint32Array(capacity);
  }

  now(): TimeNs {
    return this.t;
  }

  /** Events waiting to run. */
  pending(): number {
    return this.size;
  }

  /** Events run so far. */
  eventsRun(): number {
    return this.executed;
  }

  /** Runs `source.doNextEvent()` at absolute time `at` (≥ now, an integer). */
  schedule(at: TimeNs, source: EventSource): EventId {
    if (!Number.isSafeInteger(at) || at < this.t) throw new RangeError(`cannot schedule at ${at} (now ${this.t}): times are integer ns, not in the past`);
    const slot = this.alloc();
    this.time[slot] = at;
    this.seq[slot] = this.seqNext++;
    this.src[slot] = source;
    const i = this.size++;
    this.heap[i] = slot;
    this.pos[slot] = i;
    this.up(i);
    return this.gen[slot]! * (SLOT_MASK + 1) + slot;
  }

  scheduleIn(delay: TimeNs, source: EventSource): EventId {
    return this.schedule(this.t + delay, source);
  }

  /** Removes a pending event; false when it already ran or was cancelled. */
  cancel(id: EventId): boolean {
    const slot = id & SLOT_MASK;
    const g = Math.floor(id / (SLOT_MASK + 1));
    if (slot >= this.src.length || this.gen[slot] !== g || this.pos[slot]! < 0) return false;
    this.remove(this.pos[slot]!);
    this.release(slot);
    return true;
  }

  /** Time of the next event, or Infinity. */
  peekTime(): TimeNs {
    return this.size > 0 ? this.time[this.heap[0]!]! : Infinity;
  }

  /** Runs events with time ≤ until; afterwards now() = until (or the last event if earlier and the list ran dry). */
  run(until: TimeNs = Infinity): number {
    let n = 0;
    while (this.size > 0) {
      const slot = this.heap[0]!;
      const at = this.time[slot]!;
      if (at > until) break;
      this.remove(0);
      const source = this.src[slot]!;
      this.release(slot);
      this.t = at;
      n++;
      source.doNextEvent();
    }
    if (until !== Infinity && until > this.t) this.t = until;
    this.executed += n;
    return n;
  }

  private alloc(): number {
    const reuse = this.free.pop();
    if (reuse !== undefined) return reuse;
    const slot = this.src.length;
    if (slot > SLOT_MASK) throw new RangeError('more than 16M pending events');
    if (slot >= this.heap.length) this.grow();
    this.src.push(undefined);
    return slot;
  }

  private release(slot: number): void {
    this.pos[slot] = -1;
    this.src[slot] = undefined;
    this.gen[slot] = (this.gen[slot]! + 1) % GEN_LIMIT;
    this.free.push(slot);
  }

  private grow(): void {
    const n = this.heap.length * 2;
    const g = <T extends Int32Array | Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.heap = g(this.heap, (k) => new Int32Array(k));
    this.time = g(this.time, (k) => new Float64Array(k));
    this.seq = g(this.seq, (k) => new Float64Array(k));
    this.pos = g(this.pos, (k) => new Int32Array(k).fill(-1));
    this.gen = g(this.gen, (k) => new Uint32Array(k));
  }

  private less(a: number, b: number): boolean {
    const ta = this.time[a]!;
    const tb = this.time[b]!;
    return ta < tb || (ta === tb && this.seq[a]! < this.seq[b]!);
  }

  private remove(i: number): void {
    const last = --this.size;
    const slot = this.heap[i]!;
    this.pos[slot] = -1;
    if (i === last) return;
    const moved = this.heap[last]!;
    this.heap[i] = moved;
    this.pos[moved] = i;
    if (i > 0 && this.less(moved, this.heap[(i - 1) >> 1]!)) this.up(i);
    else this.down(i);
  }

  private up(i: number): void {
    const heap = this.heap;
    const slot = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = heap[p]!;
      if (!this.less(slot, ps)) break;
      heap[i] = ps;
      this.pos[ps] = i;
      i = p;
    }
    heap[i] = slot;
    this.pos[slot] = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const slot = heap[i]!;
    const n = this.size;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.less(heap[c + 1]!, heap[c]!)) c++;
      const cs = heap[c]!;
      if (!this.less(cs, slot)) break;
      heap[i] = cs;
      this.pos[cs] = i;
      i = c;
    }
    heap[i] = slot;
    this.pos[slot] = i;
  }
}

/**
 * A one-shot timer that can be re-armed and cancelled: the usual way a model keeps one pending
 * event per purpose (an RTO, a pacing watchdog) without subclassing EventSource per timer.
 */
export class Timer implements EventSource {
  private id: EventId = -1;
  private at: TimeNs = -1;

  constructor(private readonly events: EventList, private readonly fire: () => void) {}

  get pending(): boolean {
    return this.id >= 0;
  }

  /** Expiry time, or -1 when not armed. */
  get expiry(): TimeNs {
    return this.at;
  }

  /** Arms (or re-arms) at absolute time `at`. */
  set(at: TimeNs): void {
    if (this.id >= 0 && this.at === at) return;
    this.cancel();
    this.at = at;
    this.id = this.events.schedule(at, this);
  }

  cancel(): void {
    if (this.id >= 0) this.events.cancel(this.id);
    this.id = -1;
    this.at = -1;
  }

  doNextEvent(): void {
    this.id = -1;
    this.at = -1;
    this.fire();
  }
}
