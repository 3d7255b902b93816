/**
 * TCP parameters of the simulator: documented attributes with defaults, checked before a run
 * starts (ns-3's CheckConfig). Times are integer nanoseconds.
 */
import type { TimeNs } from '../engine/events.js';

export type RtoStyle = 'rfc6298' | 'linux';
export type TcpVariant = 'newreno' | 'cubic';

export interface TcpConfig {
  /** Congestion control: NewReno (RFC 5681, RFC 6582) or CUBIC (RFC 9438). Default newreno. */
  variant: TcpVariant;
  /**
   * Selective acknowledgments (RFC 2018) with RFC 6675 loss recovery. Default false: cumulative
   * ACKs only and NewReno's recovery (RFC 6582), as in the incast papers.
   */
  sack: boolean;
  /** Payload bytes per segment. Default 1448 (1500 MTU with timestamps). */
  mss: number;
  /** IP + TCP header bytes with options. Default 52 (20 + 20 + 12 for timestamps). */
  headerBytes: number;
  /** Initial window in segments; default 10 (RFC 6928). */
  initialWindow: number;
  /**
   * Lower bound on the RTO. Default 200 ms, Linux's TCP_RTO_MIN (RFC 6298 §2.4 says 1 s, which
   * no deployed stack uses). The incast literature's fix is to lower it to about 1 ms or less.
   */
  rtoMinNs: TimeNs;
  /** Upper bound on the RTO: default 120 s (Linux TCP_RTO_MAX; RFC 6298 §2.5 allows ≥ 60 s). */
  rtoMaxNs: TimeNs;
  /** RTO before the first RTT sample: 1 s (RFC 6298 §2.1). */
  rtoInitialNs: TimeNs;
  /**
   * 'rfc6298': RTO = SRTT + max(G, 4·RTTVAR), then at least rtoMin (§2.3, §2.4).
   * 'linux': RTO = SRTT + max(4·RTTVAR, rtoMin) (tcp_set_rto(): rttvar is floored at
   * tcp_rto_min), so even a steady RTT gets rtoMin of slack above it.
   */
  rtoStyle: RtoStyle;
  /**
   * Timer clock granularity G. The RTO and delayed-ACK timers fire on ticks of G (a jiffy: 1 ms
   * at HZ=1000, 4 ms at HZ=250) and are rounded up to whole ticks. Default 1 ms. (The pacing
   * timer is an hrtimer in Linux and is not rounded.)
   */
  clockGranularityNs: TimeNs;
  /**
   * Delayed ACKs (RFC 5681 §4.2, RFC 1122 §4.2.3.2): ACK when more than one full segment is
   * unacknowledged, or when the delayed-ACK timer fires. Default false: ACK every segment.
   */
  delayedAck: boolean;
  /**
   * Linux's delack_max (TCP_BPF_DELACK_MAX; pacer's class `tcp.delackMax` sets it per class):
   * the delayed-ACK timer is min(ATO, delackMax), where ATO starts at TCP_ATO_MIN = 40 ms.
   * Default 200 ms (TCP_DELACK_MAX), so the timer is 40 ms unless delackMax is lower.
   */
  delackMaxNs: TimeNs;
  /** TCP's own pacing (Linux sk_pacing_rate, see pacing.ts). Default false. */
  pacing: boolean;
  /** Pacing rate in slow start, % of cwnd·mss/srtt: net.ipv4.tcp_pacing_ss_ratio, default 200. */
  pacingSsRatio: number;
  /** Pacing rate in congestion avoidance and recovery, %: tcp_pacing_ca_ratio, default 120. */
  pacingCaRatio: number;
  /**
   * TCP Small Queues: the most bytes of this connection that may sit in its host's qdisc and NIC
   * at once (Linux: about 1 ms at the pacing rate, capped by tcp_limit_output_bytes). Without it a
   * large window would overflow fq's flow_limit, which Linux hosts avoid. Default 128 KB.
   */
  tsqBytes: number;
}

/** Linux TCP_ATO_MIN (HZ/25): the delayed-ACK timeout a connection starts with. */
export const TCP_ATO_MIN_NS: TimeNs = 40_000_000;

export const TCP_DEFAULTS: TcpConfig = {
  variant: 'newreno',
  sack: false,
  mss: 1448,
  headerBytes: 52,
  initialWindow: 10,
  rtoMinNs: 200_000_000,
  rtoMaxNs: 120_000_000_000,
  rtoInitialNs: 1_000_000_000,
  rtoStyle: 'linux',
  clockGranularityNs: 1_000_000,
  delayedAck: false,
  delackMaxNs: 200_000_000,
  pacing: false,
  pacingSsRatio: 200,
  pacingCaRatio: 120,
  tsqBytes: 128 * 1024,
};

/** CheckConfig: fills defaults and rejects nonsense before the run starts. */
export function tcpConfig(partial: Partial<TcpConfig> = {}): TcpConfig {
  const c = { ...TCP_DEFAULTS, ...partial };
  const positive: Array<keyof TcpConfig> = ['mss', 'initialWindow', 'rtoMinNs', 'rtoMaxNs', 'rtoInitialNs', 'clockGranularityNs', 'delackMaxNs', 'pacingSsRatio', 'pacingCaRatio', 'tsqBytes'];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new RangeError(`tcp.${k} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isSafeInteger(c.headerBytes) || c.headerBytes < 0) throw new RangeError('tcp.headerBytes must be a non-negative integer');
  if (c.rtoMinNs > c.rtoMaxNs) throw new RangeError('tcp.rtoMinNs must not exceed tcp.rtoMaxNs');
  if (c.rtoStyle !== 'rfc6298' && c.rtoStyle !== 'linux') throw new RangeError(`tcp.rtoStyle must be rfc6298 or linux, got ${String(c.rtoStyle)}`);
  if (c.variant !== 'newreno' && c.variant !== 'cubic') throw new RangeError(`tcp.variant must be newreno or cubic, got ${String(c.variant)}`);
  for (const k of ['sack', 'delayedAck', 'pacing'] as const) {
    if (typeof c[k] !== 'boolean') throw new RangeError(`tcp.${k} must be true or false, got ${String(c[k])}`);
  }
  return c;
}
