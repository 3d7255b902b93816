/**
 * The TCP sender, after htsim's tcp.cpp: byte sequence numbers from 0 that never wrap, a route
 * of sinks to the receiver (receiver.ts). Timestamps (RFC 7323) are always on: an MSS of 1448 is
 * 1500-byte IP datagrams with them, and they give an RTT sample on every ACK of new data,
 * retransmissions included. Parameters: config.ts.
 *
 * Modelled: slow start and congestion avoidance (RFC 5681) with NewReno or CUBIC (RFC 9438,
 * cubic.ts) growth; without SACK, fast retransmit and NewReno recovery (RFC 6582) and go-back-N
 * after a timeout; with SACK (sack.ts), RFC 6675 recovery driven by the scoreboard (IsLost,
 * SetPipe, NextSeg rules 1–3) with PRR (RFC 6937) sizing the sends, as in Linux, and after a
 * timeout retransmission of only the un-SACKed bytes (Linux tcp_enter_loss); the RTO per
 * RFC 6298 or Linux's form with backoff on a tick clock; TCP Small Queues (a fixed byte limit);
 * TCP's own pacing (pacing.ts, the socket holds segments until their departure time); delayed
 * ACKs with quick-ack (receiver.ts).
 *
 * Not modelled: the handshake and FIN (connections exist from t = 0, with the SYN's RTT sample),
 * receive-window limits, limited transmit (RFC 3042) without SACK, PRR without SACK (NewReno
 * recovery inflates cwnd per RFC 6582, as the incast papers' stacks did), RACK-TLP (RFC 8985)
 * (so a lost retransmission waits for the RTO), F-RTO and spurious-retransmission undo, D-SACK,
 * HyStart, ECN response, TSQ's limit following the pacing rate, the Linux mdev_max decay (rttvar
 * follows RFC 6298's EWMA in both RTO styles; only the floor differs), Linux's adaptive ATO and
 * ping-pong mode for delayed ACKs.
 */
import { Timer, type EventList, type TimeNs } from '../engine/events.js';
import { Packet, type PacketSink } from '../net/packet.js';
import type { TcpConfig } from './config.js';
import { congestionControl, type CcSender, type CongestionControl } from './congestion.js';
import { TcpPacing } from './pacing.js';
import { DUP_THRESH, Scoreboard, type AckSegment } from './sack.js';

export { TCP_DEFAULTS, tcpConfig, type RtoStyle, type TcpConfig, type TcpVariant } from './config.js';
export { TcpReceiver } from './receiver.js';

export type TcpTraceEvent = { kind: 'rto' | 'fast_retransmit' | 'recovery_end'; at: TimeNs; flow: number; cwnd: number; ssthresh: number; rto: TimeNs };
export type TcpTrace = (e: TcpTraceEvent) => void;

export class TcpSenderStats {
  segmentsSent = 0;
  retransmits = 0;
  timeouts = 0;
  fastRetransmits = 0;
}

export class TcpSender implements PacketSink, CcSender {
  readonly stats = new TcpSenderStats();
  trace: TcpTrace | undefined;
  /** Called when every byte written so far is acknowledged. */
  onAllAcked: (() => void) | undefined;
  readonly cc: CongestionControl;
  readonly pacing: TcpPacing | null;

  /** Bytes the application has written (the end of the stream so far). */
  private appEnd = 0;
  private sndUna = 0;
  private sndNxt = 0;
  /** Highest byte sent + 1 (RFC 6675 HighData). */
  private sndMax = 0;
  cwnd: number;
  ssthresh = Infinity;
  private dupAcks = 0;
  private inRecovery = false;
  /** RFC 6582 "recover" / RFC 6675 RecoveryPoint: sndMax when recovery (or a timeout) began. */
  private recover = -1;
  private partialAckSeen = false;
  /** SACK only: the scoreboard, HighRxt, and the state after a timeout. */
  private readonly sb: Scoreboard | null;
  private highRxt = 0;
  private lossMode = false;
  /** PRR (RFC 6937 §3.1) in SACK recovery: bytes delivered and sent since it began, FlightSize then. */
  private prrDelivered = 0;
  private prrOut = 0;
  private recoverFs = 0;
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
    this.cc = congestionControl(cfg);
    this.sb = cfg.sack ? new Scoreboard(cfg.mss) : null;
    this.pacing = cfg.pacing ? new TcpPacing(events, cfg.pacingSsRatio, cfg.pacingCaRatio, () => this.transmit()) : null;
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
    if (this.sndUna === this.sndMax && this.lastSend > 0) {
      this.cc.onIdle(now - this.lastSend, now);
      // RFC 5681 §4.1: after an idle period longer than the RTO, restart from the initial window.
      if (now - this.lastSend > this.rto) this.cwnd = Math.min(this.cwnd, this.cfg.initialWindow * this.cfg.mss);
    }
    this.appEnd += bytes;
    this.transmit();
  }

  get acked(): number {
    return this.sndUna;
  }

  /** In fast recovery, or (SACK) retransmitting after a timeout. */
  get recovering(): boolean {
    return this.inRecovery || this.lossMode;
  }

  /** RFC 5681 FlightSize: sent and not cumulatively acknowledged (after go-back-N, up to sndNxt). */
  flightSize(): number {
    return this.sndNxt - this.sndUna;
  }

  /** TSQ: the NIC finished sending one of our packets, or the host dropped it. */
  txDone(pkt: Packet): void {
    this.inHost -= pkt.size;
    this.transmit();
  }

  receive(ack: Packet): void {
    if (this.sb) return this.receiveWithSack(ack as AckSegment, this.sb);
    const now = this.events.now();
    const a = ack.ack;
    if (a > this.sndUna) {
      const acked = a - this.sndUna;
      this.newlyAcked(ack, a);
      if (this.sndNxt < a) this.sndNxt = a; // after go-back-N, an ACK may cover what we are resending
      if (this.inRecovery) {
        if (a >= this.recover) {
          // RFC 6582 §3.2 step 3 (full acknowledgment: "all of the data up to and including
          // recover", the highest byte sent, which is this.recover − 1): deflate the window.
          this.cwnd = Math.min(this.ssthresh, Math.max(this.sndMax - a, this.cfg.mss) + this.cfg.mss);
          this.inRecovery = false;
          this.dupAcks = 0;
          this.traceEvent('recovery_end');
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
        this.grow(acked, now);
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
    } else if (this.dupAcks === DUP_THRESH && a > this.recover) {
      // RFC 6582 §3.2 steps 1–2 (the "recover" check stops a second fast retransmit for losses
      // from before the last one or a timeout), RFC 5681 §3.2 (4).
      this.ssthresh = this.cc.ssthreshOnLoss(this, now);
      this.recover = this.sndMax;
      this.inRecovery = true;
      this.partialAckSeen = false;
      this.stats.fastRetransmits++;
      this.sendSegment(this.sndUna, true);
      this.cwnd = this.ssthresh + 3 * this.cfg.mss;
      this.traceEvent('fast_retransmit');
      this.sendMore();
    }
  }

  /** RFC 6675 §5: the ACK processing of a SACK sender. */
  private receiveWithSack(ack: AckSegment, sb: Scoreboard): void {
    const now = this.events.now();
    const a = ack.ack;
    const una0 = this.sndUna;
    const sacked0 = sb.sacked.bytes;
    const newlySacked = sb.update(ack.sack, Math.max(a, this.sndUna));
    const advanced = a > this.sndUna;
    if (advanced) {
      const acked = a - this.sndUna;
      this.newlyAcked(ack, a);
      this.dupAcks = 0; // RFC 6675 §5: a cumulative ACK resets DupAcks
      if (this.highRxt < a) this.highRxt = a;
      if (this.recovering && a >= this.recover) {
        // (A): a cumulative ACK covering RecoveryPoint ends recovery; the scoreboard is kept.
        // PRR hands over at ssthresh (Linux tcp_end_cwnd_reduction); after a timeout cwnd grew from 1 MSS.
        if (this.inRecovery) this.cwnd = this.ssthresh;
        this.inRecovery = false;
        this.lossMode = false;
        this.traceEvent('recovery_end');
      } else if (!this.inRecovery) this.grow(acked, now); // (after a timeout: slow start, RFC 5681 §3.1)
      // RFC 6298 §5.2, §5.3.
      if (this.sndUna === this.sndMax) this.rtoTimer.cancel();
      else this.armRto();
    } else if (a === this.sndUna && this.sndUna < this.sndMax && newlySacked > 0 && !this.recovering) {
      this.dupAcks++; // RFC 6675 §2: a duplicate ACK SACKs data not SACKed before
    }
    // RFC 6675 §5 steps (1), (2) and (4); §5.1: not again before HighACK reaches RecoveryPoint.
    if (!this.recovering && this.sndUna >= this.recover && this.sndUna < this.sndMax && (this.dupAcks >= DUP_THRESH || sb.isLost(this.sndUna))) {
      this.ssthresh = this.cc.ssthreshOnLoss(this, now); // (4.2)
      this.recover = this.sndMax; // (4.1)
      this.inRecovery = true;
      this.highRxt = this.sndUna;
      this.stats.fastRetransmits++;
      this.prrDelivered = 0; // RFC 6937 §3.1
      this.prrOut = 0;
      this.recoverFs = this.sndMax - this.sndUna;
      // (4.3): retransmit the first segment presumed dropped, whatever cwnd and pipe say.
      const len = this.sendSegment(this.sndUna, true, Math.min(sb.sacked.nextStart(this.sndUna), this.sndMax));
      this.highRxt = this.sndUna + len;
      this.prrOut += len;
      this.cwnd = this.ssthresh;
      this.traceEvent('fast_retransmit');
    }
    if (this.inRecovery) this.prrAck(sb, this.sndUna - una0 + (sb.sacked.bytes - sacked0));
    this.sackSend(sb); // (C)
    if (advanced && this.sndUna === this.appEnd) this.onAllAcked?.();
  }

  /**
   * PRR (RFC 6937 §3.1, PRR-SSRB), which Linux uses to size its sends in recovery instead of
   * RFC 6675's cwnd = ssthresh (4.2): while pipe > ssthresh, send ssthresh/RecoverFS of what is
   * delivered; below it, grow back to ssthresh by at most one MSS more than delivered.
   */
  private prrAck(sb: Scoreboard, delivered: number): void {
    this.prrDelivered += delivered;
    const pipe = sb.pipe(this.sndUna, this.sndMax, this.highRxt, sb.lostBelow());
    const sndcnt =
      pipe > this.ssthresh
        ? Math.ceil((this.prrDelivered * this.ssthresh) / this.recoverFs) - this.prrOut
        : Math.min(this.ssthresh - pipe, Math.max(this.prrDelivered - this.prrOut, delivered) + this.cfg.mss);
    this.cwnd = pipe + Math.max(sndcnt, 0);
  }

  /** An ACK of new data: RTT sample, snd_una, backoff. */
  private newlyAcked(ack: Packet, a: number): void {
    // RFC 7323 §4.1 / RFC 6298 §2.3: timestamps give a valid sample even for retransmissions
    // (Karn's problem does not arise); samples come only from ACKs of new data, as in Linux.
    if (ack.tsEcr >= 0) this.rttSample(this.events.now() - ack.tsEcr);
    this.sndUna = a;
    this.backoffs = 0;
  }

  /** RFC 5681 §3.1: slow start below ssthresh, else the congestion control's avoidance. */
  private grow(acked: number, now: TimeNs): void {
    if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, this.cfg.mss); // RFC 5681 §3.1 (2)
    else this.cwnd = this.cc.avoid(this, acked, now);
  }

  private transmit(): void {
    if (this.sb) this.sackSend(this.sb);
    else this.sendMore();
  }

  /** Without SACK: sends new (or go-back-N resent) data while the window, TSQ and pacing allow. */
  private sendMore(): void {
    while (this.sndNxt < this.appEnd && this.flightSize() < this.cwnd && this.inHost < this.cfg.tsqBytes && (!this.pacing || this.pacing.mayDepart())) {
      const seq = this.sndNxt;
      const len = this.sendSegment(seq, seq < this.sndMax);
      this.sndNxt = seq + len;
      if (this.sndNxt > this.sndMax) this.sndMax = this.sndNxt;
    }
  }

  /**
   * With SACK: RFC 6675 step (C) in recovery: while cwnd − pipe ≥ 1 SMSS, send what NextSeg
   * picks. Outside recovery, new data while the bytes in flight, less those SACKed (Linux's
   * packets_in_flight), are below cwnd.
   */
  private sackSend(sb: Scoreboard): void {
    const mss = this.cfg.mss;
    while (this.inHost < this.cfg.tsqBytes) {
      const recovering = this.recovering;
      // After a timeout every un-SACKed byte below RecoveryPoint counts as lost (Linux tcp_enter_loss).
      const lostBelow = this.lossMode ? Math.max(this.recover, sb.lostBelow()) : recovering ? sb.lostBelow() : 0;
      if (recovering) {
        if (this.cwnd - sb.pipe(this.sndUna, this.sndMax, this.highRxt, lostBelow) < mss) return;
      } else if (this.sndMax - this.sndUna - sb.sacked.bytes >= this.cwnd) return;
      // NextSeg() (RFC 6675 §4).
      let seq = -1;
      let end = 0;
      const hole = recovering ? sb.sacked.firstGap(Math.max(this.highRxt, this.sndUna)) : Infinity;
      if (hole < lostBelow && hole < this.sndMax) {
        seq = hole; // rule 1: the first lost, un-SACKed byte above HighRxt
        end = Math.min(sb.sacked.nextStart(hole), this.sndMax);
      } else if (this.sndMax < this.appEnd) {
        seq = this.sndMax; // rule 2: new data
        end = this.appEnd;
      } else if (hole < sb.sacked.highest) {
        seq = hole; // rule 3: an un-SACKed byte below the highest SACKed one, not yet deemed lost
        end = Math.min(sb.sacked.nextStart(hole), this.sndMax);
      } else return;
      if (this.pacing && !this.pacing.mayDepart()) return;
      const len = this.sendSegment(seq, seq < this.sndMax, end);
      if (this.inRecovery) this.prrOut += len;
      if (seq < this.sndMax) this.highRxt = seq + len; // (C.2)
      else this.sndMax = this.sndNxt = seq + len; // (C.3)
    }
  }

  private sendSegment(seq: number, retransmit: boolean, end = this.appEnd): number {
    const len = Math.min(this.cfg.mss, end - seq);
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
    if (this.pacing) this.pacing.sent(len, this.stats.segmentsSent, this.pacing.rate(this.cwnd, this.ssthresh, this.sndMax - this.sndUna, this.srtt));
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
    // RFC 5681 §3.1 (4) (RFC 9438 §4.8 with β_cubic): ssthresh from the loss, but not again for
    // a segment already retransmitted by a timeout.
    if (this.backoffs++ === 0) this.ssthresh = this.cc.ssthreshOnLoss(this, this.events.now());
    this.cc.onTimeout();
    this.cwnd = c.mss; // RFC 5681 §3.1: loss window
    this.recover = this.sndMax; // RFC 6582 §3.2 step 1 / §4, RFC 6675 §5.1: no new recovery for what was sent before
    this.inRecovery = false;
    this.dupAcks = 0;
    this.rto = Math.min(this.rto * 2, c.rtoMaxNs); // RFC 6298 §5.5: back off
    this.traceEvent('rto');
    if (this.sb) {
      // RFC 6675 §5.1: use the SACK information; retransmit the holes from the left.
      this.lossMode = true;
      this.highRxt = this.sndUna + this.sendSegment(this.sndUna, true, Math.min(this.sb.sacked.nextStart(this.sndUna), this.sndMax));
    } else {
      this.sndNxt = this.sndUna; // go back N: everything outstanding is presumed lost
      const len = this.sendSegment(this.sndUna, true); // §5.4: retransmit the earliest unacknowledged segment
      this.sndNxt = this.sndUna + len;
    }
    this.armRto(); // §5.6
  }

  private traceEvent(kind: TcpTraceEvent['kind']): void {
    this.trace?.({ kind, at: this.events.now(), flow: this.flow, cwnd: this.cwnd, ssthresh: this.ssthresh, rto: this.rto });
  }
}
