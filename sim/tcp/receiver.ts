/**
 * The receiving side: cumulative ACKs with RFC 7323 timestamps, an out-of-order queue, SACK
 * blocks (RFC 2018) when the connection uses SACK, and ACK timing:
 *   - every segment, or with delayed ACKs (RFC 5681 §4.2, RFC 1122 §4.2.3.2):
 *   - at once for an out-of-order segment and for one that fills (part of) a hole (RFC 5681 §4.2);
 *   - when more than one full segment is unacknowledged (Linux __tcp_ack_snd_check: rcv_nxt −
 *     rcv_wup > rcv_mss), which is RFC 5681's "at least every second full-sized segment";
 *   - at once for the first 16 data segments of the connection (Linux quick-ack mode: at the
 *     first data, tcp_incr_quickack(TCP_MAX_QUICKACKS); with a 64 KB window and MSS 1448 the
 *     quota is min(65535 / 2896, 16) = 16), so slow start is not slowed by delayed ACKs;
 *   - otherwise when the delayed-ACK timer fires: min(ATO, delackMax) on the timer tick, ATO
 *     staying at TCP_ATO_MIN (40 ms; Linux's ATO adaptation and ping-pong mode are not modelled).
 */
import { Timer, type EventList, type TimeNs } from '../engine/events.js';
import type { PacketSink, Packet } from '../net/packet.js';
import { TCP_ATO_MIN_NS, type TcpConfig } from './config.js';
import { IntervalSet } from './intervals.js';
import { AckSegment, SackBlocks, sackBlocksFit, sackOptionBytes } from './sack.js';

/** Linux TCP_MAX_QUICKACKS. */
export const QUICKACKS = 16;

export class TcpReceiverStats {
  acksSent = 0;
  /** ACKs sent because the delayed-ACK timer fired. */
  delayedAckTimeouts = 0;
}

export class TcpReceiver implements PacketSink {
  /** Next in-order byte expected; everything before it has been delivered. */
  rcvNxt = 0;
  readonly stats = new TcpReceiverStats();
  /** Called with the in-order total whenever it grows. */
  onDelivered: ((total: number) => void) | undefined;
  private readonly ooo = new IntervalSet();
  private readonly sack: SackBlocks | null;
  private tsRecent: TimeNs = -1;
  /** rcv_nxt when the last ACK was sent (Linux rcv_wup). */
  private rcvWup = 0;
  private quickAcks = -1;
  private readonly delAck: Timer;

  constructor(
    private readonly events: EventList,
    readonly cfg: TcpConfig,
    readonly flow: number,
    readonly cls: number,
    /** Path back to the sender, ending at it. */
    private readonly route: readonly PacketSink[],
  ) {
    this.delAck = new Timer(events, () => {
      this.stats.delayedAckTimeouts++;
      this.sendAck();
    });
    this.sack = cfg.sack ? new SackBlocks(sackBlocksFit(true)) : null;
  }

  /** The delayed-ACK timeout: min(ATO, delack_max) (tcp_send_delayed_ack). */
  get delayedAckNs(): TimeNs {
    return Math.min(TCP_ATO_MIN_NS, this.cfg.delackMaxNs);
  }

  receive(p: Packet): void {
    const end = p.seq + p.payload;
    const before = this.rcvNxt;
    const hadHole = this.ooo.count > 0;
    if (p.seq <= this.rcvNxt) {
      // RFC 7323 §4.3: TS.Recent is taken from segments at the left window edge.
      this.tsRecent = p.tsVal;
      if (end > this.rcvNxt) this.rcvNxt = end;
      if (hadHole) {
        this.rcvNxt = this.ooo.firstGap(this.rcvNxt);
        this.ooo.removeBelow(this.rcvNxt);
      }
    } else {
      this.ooo.add(p.seq, end);
      this.sack?.arrived(p.seq);
    }
    if (this.rcvNxt > before) this.onDelivered?.(this.rcvNxt);
    if (!this.cfg.delayedAck) return this.sendAck();
    // RFC 5681 §4.2: out-of-order segments, and segments that fill a hole, are ACKed at once.
    const inOrderNoHole = this.rcvNxt > before && !hadHole;
    if (!inOrderNoHole) return this.sendAck();
    if (this.quickAcks < 0) this.quickAcks = QUICKACKS; // the first data segment
    if (this.quickAcks > 0) {
      this.quickAcks--;
      return this.sendAck();
    }
    if (this.rcvNxt - this.rcvWup > this.cfg.mss) return this.sendAck();
    if (!this.delAck.pending) {
      // A jiffies timer, like the RTO: expiry on a tick of the clock granularity.
      const g = this.cfg.clockGranularityNs;
      this.delAck.set((Math.floor(this.events.now() / g) + Math.ceil(this.delayedAckNs / g)) * g);
    }
  }

  private sendAck(): void {
    this.delAck.cancel();
    this.rcvWup = this.rcvNxt;
    this.stats.acksSent++;
    const blocks = this.sack && this.ooo.count > 0 ? this.sack.blocks(this.ooo) : null;
    const a = new AckSegment('ack', this.flow, this.cls, this.cfg.headerBytes + (blocks ? sackOptionBytes(blocks.length / 2) : 0));
    if (blocks) a.sack = blocks;
    a.ack = this.rcvNxt;
    a.tsVal = this.events.now();
    a.tsEcr = this.tsRecent;
    a.send(this.route);
  }
}
