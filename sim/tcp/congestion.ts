/**
 * Congestion control as a pluggable part of the sender: what a loss does to ssthresh and how cwnd
 * grows in congestion avoidance. Slow start, fast retransmit and recovery stay in the sender
 * (RFC 9438 §4.10: CUBIC uses the standard slow start; §1: it keeps Reno's recovery). cwnd and
 * ssthresh are bytes.
 */
import type { TimeNs } from '../engine/events.js';
import type { TcpConfig } from './config.js';
import { Cubic } from './cubic.js';

/** What congestion control may read of its sender. */
export interface CcSender {
  readonly cwnd: number;
  readonly srtt: TimeNs;
  readonly cfg: TcpConfig;
  /** Bytes sent and not yet cumulatively acknowledged (RFC 5681 FlightSize). */
  flightSize(): number;
}

export interface CongestionControl {
  /** ssthresh when a loss is detected (fast retransmit or the first RTO of a series). */
  ssthreshOnLoss(s: CcSender, now: TimeNs): number;
  /** cwnd after `acked` bytes are newly acknowledged in congestion avoidance (cwnd ≥ ssthresh). */
  avoid(s: CcSender, acked: number, now: TimeNs): number;
  /** The retransmission timer fired (after ssthreshOnLoss, when that applies). */
  onTimeout(): void;
  /** The sender starts again at `now` after `idleNs` with nothing outstanding. */
  onIdle(idleNs: TimeNs, now: TimeNs): void;
}

/** RFC 5681 §3.1. */
export class NewReno implements CongestionControl {
  ssthreshOnLoss(s: CcSender): number {
    return Math.max(Math.floor(s.flightSize() / 2), 2 * s.cfg.mss); // RFC 5681 §3.1 eq. (4)
  }

  avoid(s: CcSender): number {
    const mss = s.cfg.mss;
    return s.cwnd + Math.max(1, Math.floor((mss * mss) / s.cwnd)); // RFC 5681 §3.1 eq. (3)
  }

  onTimeout(): void {}
  onIdle(): void {}
}

export function congestionControl(cfg: TcpConfig): CongestionControl {
  return cfg.variant === 'cubic' ? new Cubic() : new NewReno();
}
