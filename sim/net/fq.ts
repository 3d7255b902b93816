/**
 * Linux's fq qdisc (net/sched/sch_fq.c) as a model: per-flow queues served round robin with a
 * byte deficit, new flows before old ones, and each packet held until its time to send
 * (skb->tstamp, set by pacer's EDT program). The list handling follows ns-3's
 * fq-codel-queue-disc.cc and fq_dequeue(); what is left out is said below.
 *
 * Parameters and their Linux defaults (tc-fq(8)):
 *   limit            10000 packets in the qdisc            → drop 'fq_limit'
 *   flowLimit        100 packets per flow                  → drop 'fq_flow_limit'
 *   quantum          2·MTU bytes of credit per round       (MTU = psched_mtu: 1500 + 14 = 1514)
 *   initialQuantum   10·MTU bytes for a new flow
 *   horizonNs        10 s; a packet whose time to send is further ahead is dropped
 *                    (horizon_drop, the default)           → drop 'fq_horizon'
 *   flowRefillDelayNs 40 ms: a flow idle longer than this gets at least one quantum back
 * Flow garbage collection (fq_gc): a flow detached (empty) for more than 3 s (FQ_GC_AGE) is
 * freed, so a host that opens a connection per RPC does not keep every flow it ever saw. Linux
 * frees up to 8 such flows whenever a lookup passes them in its rb-tree; here they are swept
 * whenever the table has doubled since the last sweep (amortised O(1) per new flow). A freed flow
 * that sends again is a new flow (initial quantum), as in Linux.
 * Not modelled: the per-socket pacing rate (sk_pacing_rate, maxrate), the three priority bands
 * (6.x), ce_threshold and orphan-mask hashing. Packets of a flow leave in
 * arrival order (Linux sorts a flow's packets by tstamp; EDT schedules per class are monotonic, so
 * a flow's tstamps never go backwards here).
 */
import type { TimeNs } from '../engine/events.js';
import { Fifo } from './fifo.js';
import { L2_HEADER, type DropReason, type Packet } from './packet.js';
import type { Qdisc } from './port.js';

export interface FqConfig {
  limit?: number;
  flowLimit?: number;
  mtu?: number;
  quantum?: number;
  initialQuantum?: number;
  horizonNs?: number;
  flowRefillDelayNs?: number;
}

export const FQ_DEFAULTS = {
  limit: 10_000,
  flowLimit: 100,
  /** psched_mtu(dev): the device MTU plus the link-layer header. */
  mtu: 1500 + L2_HEADER,
  horizonNs: 10_000_000_000,
  flowRefillDelayNs: 40_000_000,
  /** FQ_GC_AGE: 3 s (3·HZ). */
  gcAgeNs: 3_000_000_000,
} as const;

type List = 'new' | 'old' | 'throttled' | 'detached';

class Flow {
  readonly q = new Fifo<Packet>();
  credit: number;
  list: List = 'detached';
  /** When it last became empty (fq's f->age). */
  age: TimeNs = 0;
  /** Time to send of the head packet while throttled. */
  timeNext: TimeNs = 0;
  constructor(credit: number) {
    this.credit = credit;
  }
}

export class Fq implements Qdisc {
  readonly limit: number;
  readonly flowLimit: number;
  readonly quantum: number;
  readonly initialQuantum: number;
  readonly horizonNs: number;
  readonly flowRefillDelayNs: number;
  private readonly flows = new Map<number, Flow>();
  private readonly newFlows = new Fifo<Flow>();
  private readonly oldFlows = new Fifo<Flow>();
  /** Throttled flows; few per host, so a linear scan beats a tree here. */
  private throttled: Flow[] = [];
  private nPackets = 0;
  private nBytes = 0;
  /** Table size after the last garbage collection: the next runs when it has doubled. */
  private gcMark = 64;

  constructor(cfg: FqConfig = {}) {
    const mtu = cfg.mtu ?? FQ_DEFAULTS.mtu;
    this.limit = cfg.limit ?? FQ_DEFAULTS.limit;
    this.flowLimit = cfg.flowLimit ?? FQ_DEFAULTS.flowLimit;
    this.quantum = cfg.quantum ?? 2 * mtu;
    this.initialQuantum = cfg.initialQuantum ?? 10 * mtu;
    this.horizonNs = cfg.horizonNs ?? FQ_DEFAULTS.horizonNs;
    this.flowRefillDelayNs = cfg.flowRefillDelayNs ?? FQ_DEFAULTS.flowRefillDelayNs;
    // CheckConfig: every parameter is a positive integer (initial quantum may be 0, as in Linux).
    const check: Array<[string, number, number]> = [
      ['mtu', mtu, 1], ['limit', this.limit, 1], ['flowLimit', this.flowLimit, 1], ['quantum', this.quantum, 1],
      ['initialQuantum', this.initialQuantum, 0], ['horizonNs', this.horizonNs, 0], ['flowRefillDelayNs', this.flowRefillDelayNs, 0],
    ];
    for (const [k, v, min] of check) {
      if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`fq ${k} must be an integer ≥ ${min}, got ${v}`);
    }
  }

  get packets(): number {
    return this.nPackets;
  }

  get bytes(): number {
    return this.nBytes;
  }

  /** fq_enqueue() */
  enqueue(pkt: Packet, now: TimeNs): DropReason | null {
    if (this.nPackets >= this.limit) return 'fq_limit';
    if (pkt.tstamp > now + this.horizonNs) return 'fq_horizon';
    let f = this.flows.get(pkt.flow);
    if (!f) {
      if (this.flows.size >= 2 * this.gcMark) this.gc(now);
      f = new Flow(this.initialQuantum);
      f.age = now;
      this.flows.set(pkt.flow, f);
    }
    if (f.q.length >= this.flowLimit) return 'fq_flow_limit';
    if (f.list === 'detached') {
      this.attach(f, 'new');
      if (now - f.age > this.flowRefillDelayNs) f.credit = Math.max(f.credit, this.quantum);
    }
    f.q.push(pkt);
    this.nPackets++;
    this.nBytes += pkt.size;
    return null;
  }

  /** fq_dequeue() */
  dequeue(now: TimeNs): Packet | null {
    this.unthrottle(now);
    for (;;) {
      const list = this.newFlows.length > 0 ? this.newFlows : this.oldFlows;
      const f = list.peek();
      if (!f) return null;
      if (f.credit <= 0) {
        f.credit += this.quantum;
        list.shift();
        this.attach(f, 'old');
        continue;
      }
      const head = f.q.peek();
      if (!head) {
        // An empty new flow moves to the old list so it cannot starve old flows by
        // re-entering as new; otherwise it is detached.
        list.shift();
        if (list === this.newFlows && this.oldFlows.length > 0) this.attach(f, 'old');
        else {
          f.list = 'detached';
          f.age = now;
        }
        continue;
      }
      if (head.tstamp > now) {
        list.shift();
        f.list = 'throttled';
        f.timeNext = head.tstamp;
        this.throttled.push(f);
        continue;
      }
      f.q.shift();
      f.credit -= head.size + L2_HEADER;
      this.nPackets--;
      this.nBytes -= head.size;
      return head;
    }
  }

  /** Number of flows in the table (for tests of the garbage collection). */
  get flowCount(): number {
    return this.flows.size;
  }

  /** fq_gc(): frees flows detached for longer than FQ_GC_AGE. */
  private gc(now: TimeNs): void {
    for (const [key, f] of this.flows) if (f.list === 'detached' && now - f.age > FQ_DEFAULTS.gcAgeNs) this.flows.delete(key);
    this.gcMark = Math.max(64, this.flows.size);
  }

  nextWake(): TimeNs {
    let t = Infinity;
    for (const f of this.throttled) if (f.timeNext < t) t = f.timeNext;
    return t;
  }

  /** fq_check_throttled(): flows whose time has come go to the tail of the old list. */
  private unthrottle(now: TimeNs): void {
    if (this.throttled.length === 0) return;
    const still: Flow[] = [];
    for (const f of this.throttled) {
      if (f.timeNext <= now) this.attach(f, 'old');
      else still.push(f);
    }
    this.throttled = still;
  }

  private attach(f: Flow, list: 'new' | 'old'): void {
    f.list = list;
    (list === 'new' ? this.newFlows : this.oldFlows).push(f);
  }
}
