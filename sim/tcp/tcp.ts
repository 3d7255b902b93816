/**
 * TCP NewReno (RFC 5681, RFC 6582) without SACK, after htsim's tcp.cpp: a sender and a receiver
 * joined by source routes. Sequence numbers are byte offsets from 0 and never wrap. Timestamps
 * (RFC 7323) are always on: an MSS of 1448 is 1500-byte IP datagrams with them, and they give an
 * RTT sample on every ACK of new data, retransmissions included.
 *
 * Not modelled: the handshake and FIN (connections exist from t = 0), receive-window limits, SACK,
 * CUBIC, TCP's own pacing, the Linux mdev_max decay (rttvar follows RFC 6298's EWMA in both RTO
 * styles; only the floor differs), delayed-ACK quick-ack mode.
 */
import { Timer, type EventList, type TimeNs } from '../engine/events.js';
import { Packet, type PacketSink } from '../net/packet.js';

export type RtoStyle = 'rfc6298' | 'linux';

export interface TcpConfig {
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
   * Timer clock granularity G. Timers fire on ticks of G (a jiffy: 1 ms at HZ=1000, 4 ms at
   * HZ=250), and the RTO is rounded up to whole ticks. Default 1 ms.
   */
  clockGranularityNs: TimeNs;
  /** ACK every second full segment, or after delAckNs (RFC 5681 §4.2). Default false: ACK every segment. */
  delayedAck: boolean;
  /** Delayed-ACK timeout (Linux TCP_DELACK_MIN 40 ms; pacer's delackMax sets it per class). */
  delAckNs: TimeNs;
  /**
   * TCP Small Queues: the most bytes of this connection that may sit in its host's qdisc and NIC
   * at once (Linux: about 1 ms at the pacing rate, capped by tcp_limit_output_bytes). Without it a
   * large window would overflow fq's flow_limit, which Linux hosts avoid. Default 128 KB.
   */
  tsqBytes: number;
}

export const TCP_DEFAULTS: TcpConfig = {
  mss: 1448,
  headerBytes: 52,
  initialWindow: 10,
  rtoMinNs: 200_000_000,
  rtoMaxNs: 120_000_000_000,
  rtoInitialNs: 1_000_000_000,
  rtoStyle: 'linux',
  clockGranularityNs: 1_000_000,
  delayedAck: false,
  delAckNs: 40_000_000,
  tsqBytes: 128 * 1024,
};

/** CheckConfig: fills defaults and rejects nonsense before the run starts. */
export function tcpConfig(partial: Partial<TcpConfig> = {}): TcpConfig {
  const c = { ...TCP_DEFAULTS, ...partial };
  const positive: Array<keyof TcpConfig> = ['mss', 'initialWindow', 'rtoMinNs', 'rtoMaxNs', 'rtoInitialNs', 'clockGranularityNs', 'delAckNs', 'tsqBytes'];
  for (const k of positive) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw new RangeError(`tcp.${k} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isSafeInteger(c.headerBytes) || c.headerBytes < 0) throw new RangeError('tcp.headerBytes must be a non-negative integer');
  if (c.rtoMinNs > c.rtoMaxNs) throw new RangeError('tcp.rtoMinNs must not exceed tcp.rtoMaxNs');
  if (c.rtoStyle !== 'rfc6298' && c.rtoStyle !== 'linux') throw new RangeError(`tcp.rtoStyle must be rfc6298 or linux, got ${String(c.rtoStyle)}`);
  return c;
}

export type TcpTrace = (e: { kind: 'rto' | 'fast_retransmit'; at: TimeNs; flow: number; cwnd: number; ssthresh: number; rto: TimeNs }) => void;

export class TcpSenderStats {
  segmentsSent = 0;
  retransmits = 0;
  timeouts = 0;
  fastRetransmits = 0;
}

export class TcpSender implements PacketSink {
  readonly stats = new TcpSenderStats();
  trace: TcpTrace | undefined;
  /** Called when every byte written so far is acknowledged. */
  onAllAcked: (() => void) | undefined;

  /** Bytes the application has written (the end of the stream so far). */
  private appEnd = 0;
  private sndUna = 0;
  private sndNxt = 0;
  private sndMax = 0;
  cwnd: number;
  ssthresh = Infinity;
  private dupAcks = 0;
  private inRecovery = false;
  private recover = -1;
  private partialAckSeen = false;
  srtt: TimeNs = 0;
  rttvar: TimeNs = 0;
  rto: TimeNs;
  private lastSend: TimeNs = 0;
  /** Timeouts since the last ACK of new data. */
  private backoffs = 0;
  private inHost = 0;
  private readonly rtoTimer: Timer;

  constructor(
    private readonly events: EventList,
    readonly cfg: TcpConfig,
    readonly flow: number,
    readonly cls: number,
    /** Path to the receiver, ending at it. */
    private readonly route: readonly PacketSink[],
  ) {
    this.cwnd = cfg.initialWindow * cfg.mss; // RFC 5681 §3.1, IW per RFC 6928
    this.rto = cfg.rtoInitialNs; // RFC 6298 §2.1
    this.rtoTimer = new Timer(events, () => this.onRto());
  }

  /**
   * The RTT measured on the SYN/SYN-ACK exchange (connections are not opened in the simulator).
   * It is the first sample of RFC 6298 §2.2, so the first data loss is not waited out with the
   * 1 s initial RTO of §2.1 (which a real connection has left behind by then).
   */
  handshake(rttNs: TimeNs): void {
    this.rttSample(rttNs);
  }

  /** The application appends `bytes` to the stream. */
  write(bytes: number): void {
    const now = this.events.now();
    // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial window.
    if (this.sndUna === this.sndMax && this.lastSend > 0 && now - this.lastSend > this.rto) {
      this.cwnd = Math.min(this.cwnd, this.cfg.initialWindow * this.cfg.mss);
    }
    this.appEnd += bytes;
    this.sendMore();
  }

  get acked(): number {
    return this.sndUna;
  }

  /** TSQ: the NIC finished sending one of our packets, or the host dropped it. */
  txDone(pkt: Packet): void {
    this.inHost -= pkt.size;
    this.sendMore();
  }

  receive(ack: Packet): void {
    const now = this.events.now();
    const a = ack.ack;
    if (a > this.sndUna) {
      const acked = a - this.sndUna;
      // RFC 7323 §4.1 / RFC 6298 §2.3: timestamps give a valid sample even for retransmissions
      // (Karn's problem does not arise); samples come only from ACKs of new data, as in Linux.
      if (ack.tsEcr >= 0) this.rttSample(now - ack.tsEcr);
      this.sndUna = a;
      this.backoffs = 0;
      if (this.sndNxt < a) this.sndNxt = a; // after go-back-N, an ACK may cover what we are resending
      if (this.inRecovery) {
        if (a > this.recover) {
          // RFC 6582 §3.2 step 3 (full acknowledgment): deflate the window.
          this.cwnd = Math.min(this.ssthresh, Math.max(this.sndMax - a, this.cfg.mss) + this.cfg.mss);
          this.inRecovery = false;
          this.dupAcks = 0;
        } else {
          // RFC 6582 §3.2 step 3 (partial acknowledgment): retransmit the next hole, deflate by
          // the amount acked, add back one MSS if at least one MSS was acked.
          this.sendSegment(this.sndUna, true);
          this.cwnd = Math.max(this.cwnd - acked + (acked >= this.cfg.mss ? this.cfg.mss : 0), this.cfg.mss);
          // "For the first partial ACK that arrives during fast recovery, also reset the retransmit timer."
          if (!this.partialAckSeen) this.armRto();
          this.partialAckSeen = true;
        }
      } else {
        this.dupAcks = 0;
        if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, this.cfg.mss); // RFC 5681 §3.1 (2), slow start
        else this.cwnd += Math.max(1, Math.floor((this.cfg.mss * this.cfg.mss) / this.cwnd)); // RFC 5681 §3.1 (3)
      }
      // RFC 6298 §5.2: all data acked → stop the timer; §5.3: new data acked → restart it.
      if (this.sndUna === this.sndMax) this.rtoTimer.cancel();
      else if (!this.inRecovery) this.armRto(); // (in recovery, only the first partial ACK restarts it)
      this.sendMore();
      if (this.sndUna === this.appEnd) this.onAllAcked?.();
      return;
    }
    // RFC 5681 §2: a duplicate ACK acknowledges nothing new while data is outstanding.
    if (a !== this.sndUna || this.sndUna === this.sndMax || ack.payload > 0) return;
    this.dupAcks++;
    if (this.inRecovery) {
      this.cwnd += this.cfg.mss; // RFC 6582 §3.2 step 4: inflate for each further duplicate
      this.sendMore();
    } else if (this.dupAcks === 3 && a > this.recover) {
      // RFC 6582 §3.2 steps 1–2 (the "recover" check stops a second fast retransmit for losses
      // from before the last one or a timeout), RFC 5681 §3.2 (4).
      this.ssthresh = Math.max(Math.floor(this.flight() / 2), 2 * this.cfg.mss);
      this.recover = this.sndMax;
      this.inRecovery = true;
      this.partialAckSeen = false;
      this.stats.fastRetransmits++;
      this.sendSegment(this.sndUna, true);
      this.cwnd = this.ssthresh + 3 * this.cfg.mss;
      this.trace?.({ kind: 'fast_retransmit', at: now, flow: this.flow, cwnd: this.cwnd, ssthresh: this.ssthresh, rto: this.rto });
      this.sendMore();
    }
  }

  private flight(): number {
    return this.sndNxt - this.sndUna;
  }

  /** Sends new (or go-back-N resent) data while the window and TSQ allow. */
  private sendMore(): void {
    while (this.sndNxt < this.appEnd && this.flight() < this.cwnd && this.inHost < this.cfg.tsqBytes) {
      const seq = this.sndNxt;
      const len = this.sendSegment(seq, seq < this.sndMax);
      this.sndNxt = seq + len;
      if (this.sndNxt > this.sndMax) this.sndMax = this.sndNxt;
    }
  }

  private sendSegment(seq: number, retransmit: boolean): number {
    const len = Math.min(this.cfg.mss, this.appEnd - seq);
    const p = new Packet('data', this.flow, this.cls, len + this.cfg.headerBytes);
    p.seq = seq;
    p.payload = len;
    p.tsVal = this.events.now();
    p.owner = this;
    this.inHost += p.size;
    this.stats.segmentsSent++;
    if (retransmit) this.stats.retransmits++;
    this.lastSend = this.events.now();
    // RFC 6298 §5.1: start the timer when sending data if it is not running.
    if (!this.rtoTimer.pending) this.armRto();
    p.send(this.route);
    return len;
  }

  /** RFC 6298 §2.2–2.4, or Linux's floor on rttvar. Integer ns throughout. */
  private rttSample(r: TimeNs): void {
    if (r <= 0) r = 1;
    if (this.srtt === 0) {
      this.srtt = r; // §2.2
      this.rttvar = Math.floor(r / 2);
    } else {
      this.rttvar = Math.floor((3 * this.rttvar + Math.abs(this.srtt - r)) / 4); // §2.3, β = 1/4, with the old SRTT
      this.srtt = Math.floor((7 * this.srtt + r) / 8); // α = 1/8
    }
    const c = this.cfg;
    const rto =
      c.rtoStyle === 'linux'
        ? this.srtt + Math.max(4 * this.rttvar, c.rtoMinNs)
        : Math.max(this.srtt + Math.max(c.clockGranularityNs, 4 * this.rttvar), c.rtoMinNs); // §2.3, §2.4
    this.rto = Math.min(rto, c.rtoMaxNs); // §2.5
  }

  /** Arms the RTO on the tick clock: expiry at jiffy (now/G + ceil(rto/G)), like a jiffies timer. */
  private armRto(): void {
    const g = this.cfg.clockGranularityNs;
    const now = this.events.now();
    this.rtoTimer.set((Math.floor(now / g) + Math.ceil(this.rto / g)) * g);
  }

  private onRto(): void {
    const c = this.cfg;
    this.stats.timeouts++;
    // RFC 5681 §3.1 (4): ssthresh from FlightSize, but not again for a segment already retransmitted by a timeout.
    if (this.backoffs++ === 0) this.ssthresh = Math.max(Math.floor(this.flight() / 2), 2 * c.mss);
    this.cwnd = c.mss; // RFC 5681 §3.1: loss window
    this.recover = this.sndMax; // RFC 6582 §3.2 step 1 / §4: no fast retransmit for what was sent before
    this.inRecovery = false;
    this.dupAcks = 0;
    this.sndNxt = this.sndUna; // go back N: everything outstanding is presumed lost
    this.rto = Math.min(this.rto * 2, c.rtoMaxNs); // RFC 6298 §5.5: back off
    this.trace?.({ kind: 'rto', at: this.events.now(), flow: this.flow, cwnd: this.cwnd, ssthresh: this.ssthresh, rto: this.rto });
    const len = this.sendSegment(this.sndUna, true); // §5.4: retransmit the earliest unacknowledged segment
    this.sndNxt = this.sndUna + len;
    this.armRto(); // §5.6
  }
}

/** Cumulative-ACK receiver with an out-of-order store; ACKs every segment or delays per RFC 5681 §4.2. */
export class TcpReceiver implements PacketSink {
  /** Next in-order byte expected; everything before it has been delivered. */
  rcvNxt = 0;
  /** Called with the in-order total whenever it grows. */
  onDelivered: ((total: number) => void) | undefined;
  private readonly ooo = new Map<number, number>();
  private tsRecent: TimeNs = -1;
  private unacked = 0;
  private readonly delAck: Timer;

  constructor(
    private readonly events: EventList,
    readonly cfg: TcpConfig,
    readonly flow: number,
    readonly cls: number,
    /** Path back to the sender, ending at it. */
    private readonly route: readonly PacketSink[],
  ) {
    this.delAck = new Timer(events, () => this.sendAck());
  }

  receive(p: Packet): void {
    const end = p.seq + p.payload;
    const before = this.rcvNxt;
    const hadHole = this.ooo.size > 0;
    if (p.seq <= this.rcvNxt) {
      // RFC 7323 §4.3: TS.Recent is taken from segments at the left window edge.
      this.tsRecent = p.tsVal;
      if (end > this.rcvNxt) this.rcvNxt = end;
      this.drainOoo();
    } else {
      const have = this.ooo.get(p.seq);
      if (have === undefined || have < end) this.ooo.set(p.seq, end);
    }
    if (this.rcvNxt > before) this.onDelivered?.(this.rcvNxt);
    // RFC 5681 §4.2: out-of-order segments, and segments that fill a hole, are ACKed at once;
    // otherwise ACK at least every second full segment, and within delAckNs.
    const inOrderNoHole = this.rcvNxt > before && !hadHole && this.ooo.size === 0;
    if (!this.cfg.delayedAck || !inOrderNoHole) return this.sendAck();
    if (++this.unacked >= 2) return this.sendAck();
    if (!this.delAck.pending) this.delAck.set(this.events.now() + this.cfg.delAckNs);
  }

  private drainOoo(): void {
    for (let moved = true; moved && this.ooo.size > 0; ) {
      moved = false;
      for (const [s, e] of this.ooo) {
        if (s > this.rcvNxt) continue;
        if (e > this.rcvNxt) this.rcvNxt = e;
        this.ooo.delete(s);
        moved = true;
      }
    }
  }

  private sendAck(): void {
    this.unacked = 0;
    this.delAck.cancel();
    const a = new Packet('ack', this.flow, this.cls, this.cfg.headerBytes);
    a.ack = this.rcvNxt;
    a.tsVal = this.events.now();
    a.tsEcr = this.tsRecent;
    a.send(this.route);
  }
}
