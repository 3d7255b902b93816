/**
 * TCP's own pacing, as Linux computes it (tcp_update_pacing_rate, tcp_update_skb_after_send):
 *
 *   rate = ratio · max(cwnd, bytes in flight) / srtt,  ratio = tcp_pacing_ss_ratio (200%) while
 *          cwnd < ssthresh/2, else tcp_pacing_ca_ratio (120%)
 *   after each segment: wstamp = max(wstamp, now) + len/rate − min(len/rate / 2, credit),
 *          credit = how far the clock had run past wstamp (idle time gives back half a slot)
 *
 * The first 10 data segments of a connection are not paced (data_segs_out < 10). Linux stamps
 * each skb with wstamp (skb->tstamp) and lets fq hold it. The simulator's host model
 * (sim/net/host.ts) gives edt.ts only the arrival time, not a packet's own tstamp, so here the
 * socket holds a segment until wstamp and then hands it to the host (Linux's own fallback when
 * the qdisc does not pace: tcp_internal_pacing, an hrtimer). pacer's EDT shaper then schedules it
 * at max(wstamp, the class's slot): the later of the two, as with skb->tstamp.
 */
import { Timer, type EventList, type TimeNs } from '../engine/events.js';

/** data_segs_out below which Linux does not pace. */
export const PACING_FREE_SEGMENTS = 10;

export class TcpPacing {
  /** tp->tcp_wstamp_ns: the earliest departure of the next segment. */
  wstamp: TimeNs = 0;
  /** Bytes per second used for the last segment (for traces and tests). */
  lastRate = 0;
  private readonly timer: Timer;

  constructor(private readonly events: EventList, private readonly ssRatio: number, private readonly caRatio: number, wake: () => void) {
    this.timer = new Timer(events, wake);
  }

  /** tcp_pacing_check(): false, with the timer armed, while the next departure is ahead. */
  mayDepart(): boolean {
    const now = this.events.now();
    if (this.wstamp <= now) return true;
    if (!this.timer.pending) this.timer.set(this.wstamp);
    return false;
  }

  /** tcp_update_pacing_rate(): bytes per second. */
  rate(cwnd: number, ssthresh: number, inFlight: number, srttNs: TimeNs): number {
    if (srttNs <= 0) return Infinity;
    const ratio = cwnd < ssthresh / 2 ? this.ssRatio : this.caRatio;
    return Math.floor((ratio * Math.max(cwnd, inFlight) * 1e9) / (100 * srttNs));
  }

  /** tcp_update_skb_after_send() for a segment of `len` payload bytes sent now. */
  sent(len: number, segmentsSent: number, rate: number): void {
    const prior = this.wstamp;
    this.wstamp = Math.max(this.wstamp, this.events.now());
    if (segmentsSent < PACING_FREE_SEGMENTS || !(rate > 0) || rate === Infinity) return;
    this.lastRate = rate;
    let lenNs = Math.floor((len * 1e9) / rate);
    lenNs -= Math.min(Math.floor(lenNs / 2), this.wstamp - prior);
    this.wstamp += lenNs;
  }
}
