/**
 * CUBIC (RFC 9438) in congestion avoidance; windows in segments inside, bytes at the interface.
 *
 *   W_cubic(t) = C·(t − K)³ + W_max,   K = ∛((W_max − cwnd_epoch) / C)        (§4.2, Fig. 1–2)
 *
 * t runs from the start of the current congestion-avoidance stage (the first ACK in congestion
 * avoidance after a reduction, as Linux's epoch_start), less idle time (§5.8). What is not
 * modelled: HyStart/HyStart++ (§4.10 allows standard slow start, which is what runs here;
 * Linux's HyStart would leave slow start earlier on a delay increase), spurious-congestion undo
 * (§4.9), ECN reduction, and the application-limited rule beyond idle periods.
 */
import type { TimeNs } from '../engine/events.js';
import type { CcSender, CongestionControl } from './congestion.js';

/** §4.1.1: C = 0.4, β_cubic = 0.7. */
export const CUBIC_C = 0.4;
export const CUBIC_BETA = 0.7;
/** §4.3: α_cubic = 3·(1 − β)/(1 + β), so CUBIC's Reno-friendly AIMD matches Reno's rate. */
export const CUBIC_ALPHA = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);

/** W_cubic(t) of §4.2, segments; t and K in seconds. */
export function wCubic(t: number, k: number, wMax: number): number {
  return CUBIC_C * (t - k) ** 3 + wMax;
}

/** K of §4.2 for a stage starting at cwnd_epoch below W_max. */
export function cubicK(wMax: number, cwndEpoch: number): number {
  return Math.cbrt(Math.max(0, wMax - cwndEpoch) / CUBIC_C);
}

export class Cubic implements CongestionControl {
  /** §4.7: the window at the last reduction (after fast convergence), segments. */
  wMax = 0;
  /** §4.6: cwnd just before the last reduction, segments. */
  cwndPrior = 0;
  /** Start of the congestion-avoidance stage; -1 until its first ACK. */
  epochStart: TimeNs = -1;
  k = 0;
  cwndEpoch = 0;
  /** §4.3: Reno's window estimate, segments. */
  wEst = 0;
  private afterTimeout = false;
  /** §4.7: fast convergence, on by default as in Linux. */
  fastConvergence = true;

  ssthreshOnLoss(s: CcSender): number {
    const cwnd = s.cwnd / s.cfg.mss;
    // §4.7 fast convergence: a flow whose window is lower than at the last reduction releases bandwidth.
    this.wMax = this.fastConvergence && cwnd < this.wMax ? (cwnd * (1 + CUBIC_BETA)) / 2 : cwnd;
    this.cwndPrior = cwnd; // §4.6
    this.epochStart = -1;
    // §4.6: ssthresh = cwnd·β_cubic, at least 2 segments. The RFC's pseudocode reduces
    // flight_size and notes that implementations use cwnd; Linux (bictcp_recalc_ssthresh) does.
    return Math.max(Math.floor(s.cwnd * CUBIC_BETA), 2 * s.cfg.mss);
  }

  avoid(s: CcSender, acked: number, now: TimeNs): number {
    const mss = s.cfg.mss;
    const cwnd = s.cwnd / mss;
    if (this.epochStart < 0) {
      this.epochStart = now;
      this.cwndEpoch = cwnd;
      if (this.afterTimeout) {
        // §4.8: the first stage after a timeout uses K = 0 and W_max = cwnd at its start.
        this.wMax = cwnd;
        this.afterTimeout = false;
      }
      this.k = cubicK(this.wMax, cwnd);
      this.wEst = cwnd; // §4.3 (and §4.8): W_est starts at cwnd_epoch
    }
    const t = (now - this.epochStart) / 1e9;
    const segs = acked / mss;
    // §4.3: W_est grows by α_cubic per window of ACKs; α_cubic = 1 once W_est reaches cwnd_prior.
    this.wEst += ((this.wEst >= this.cwndPrior ? 1 : CUBIC_ALPHA) * segs) / cwnd;
    if (wCubic(t, this.k, this.wMax) < this.wEst) {
      // §4.3 Reno-friendly region: cwnd = W_est (never a decrease within a stage).
      return Math.max(cwnd, this.wEst) * mss;
    }
    // §4.2: the target is W_cubic one RTT ahead, kept within [cwnd, 1.5·cwnd].
    const target = Math.min(Math.max(wCubic(t + s.srtt / 1e9, this.k, this.wMax), cwnd), 1.5 * cwnd);
    // §4.4 (concave) and §4.5 (convex): cwnd += (target − cwnd)/cwnd per ACK; per segment
    // acknowledged here, as Linux counts (so delayed ACKs do not halve the growth).
    return (cwnd + ((target - cwnd) / cwnd) * segs) * mss;
  }

  onTimeout(): void {
    this.epochStart = -1;
    this.afterTimeout = true; // §4.8
  }

  onIdle(idleNs: TimeNs, now: TimeNs): void {
    // §5.8: t must not count time the flow was idle (Linux bictcp_cwnd_event, CA_EVENT_TX_START).
    if (this.epochStart >= 0) this.epochStart = Math.min(this.epochStart + idleNs, now);
  }
}
