/**
 * A switch's packet memory shared by all its output ports, with Choudhury and Hahne's dynamic
 * threshold ("Dynamic queue length thresholds for shared-memory packet switches", IEEE/ACM ToN
 * 6(2), 1998), the scheme merchant-silicon switches (Broadcom's "dynamic" alpha) implement:
 *
 *   a packet may join port i's queue only if  q_i < α · (B − Q)  and  Q + size ≤ B
 *
 * where B is the pool, Q what all ports hold and q_i what port i holds (bytes, the packet on the
 * wire not counted, as for the per-port limit). One congested port alone can take
 * α/(1+α) of the pool (half at α = 1), far more than a static B/N share; N congested ports get
 * α/(1+N·α) each, and some memory always stays free for a port that becomes busy. Without α
 * (complete sharing) only the pool limit applies. A per-port limit (the switch's `buffer` or
 * `bufferPackets`) can be set as well; whichever is stricter drops.
 */
import type { TimeNs } from '../engine/events.js';

export interface SharedBufferConfig {
  /** The pool, bytes. */
  poolBytes: number;
  /** Dynamic-threshold α; null = complete sharing (only the pool limit). */
  alpha: number | null;
}

export class SharedBuffer {
  readonly poolBytes: number;
  readonly alpha: number | null;
  /** Bytes queued in all ports now, and the most ever. */
  used = 0;
  maxUsed = 0;
  /** Packets refused by the threshold or the pool. */
  drops = 0;
  private integral = 0;
  private since: TimeNs = 0;

  constructor(cfg: SharedBufferConfig) {
    if (!Number.isSafeInteger(cfg.poolBytes) || cfg.poolBytes < 1) throw new RangeError(`a shared buffer pool is a positive whole number of bytes, got ${cfg.poolBytes}`);
    if (cfg.alpha !== null && !(cfg.alpha > 0 && Number.isFinite(cfg.alpha))) throw new RangeError(`alpha must be a positive number, got ${cfg.alpha}`);
    this.poolBytes = cfg.poolBytes;
    this.alpha = cfg.alpha;
  }

  /** May a packet of `size` bytes join a port that holds `portBytes`? */
  admits(portBytes: number, size: number): boolean {
    if (this.used + size > this.poolBytes) return false;
    return this.alpha === null || portBytes < this.alpha * (this.poolBytes - this.used);
  }

  take(size: number, now: TimeNs): void {
    this.advance(now);
    this.used += size;
    if (this.used > this.maxUsed) this.maxUsed = this.used;
  }

  release(size: number, now: TimeNs): void {
    this.advance(now);
    this.used -= size;
  }

  /** ∫ used dt up to `now`, byte·ns: the time average is this over the elapsed time. */
  integralTo(now: TimeNs): number {
    return this.integral + this.used * (now - this.since);
  }

  private advance(now: TimeNs): void {
    this.integral += this.used * (now - this.since);
    this.since = now;
  }
}
