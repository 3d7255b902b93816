/** Long-lived bulk flows: each sender always has data to send. */
import type { EventList, TimeNs } from '../engine/events.js';
import type { Star } from '../topology/star.js';
import type { TcpConfig, TcpReceiver, TcpSender } from '../tcp/tcp.js';

export interface BulkFlowResult {
  flow: number;
  from: string;
  to: string;
  /** Bytes delivered in order to the receiving application. */
  bytes: number;
  goodputBps: number;
  retransmits: number;
  timeouts: number;
}

/** An application that never runs dry: it writes more whenever the unsent backlog falls low. */
const CHUNK = 1 << 30;

export function startBulk(star: Star, from: string, to: string, tcp: TcpConfig, cls = 0): { sender: TcpSender; receiver: TcpReceiver; flow: number } {
  const c = star.connect(from, to, tcp, cls);
  c.sender.write(CHUNK);
  c.sender.onAllAcked = () => c.sender.write(CHUNK);
  return c;
}

export function bulkResult(c: { sender: TcpSender; receiver: TcpReceiver; flow: number }, from: string, to: string, durationNs: TimeNs): BulkFlowResult {
  return {
    flow: c.flow,
    from,
    to,
    bytes: c.receiver.rcvNxt,
    goodputBps: Math.round((c.receiver.rcvNxt * 8 * 1e9) / durationNs),
    retransmits: c.sender.stats.retransmits,
    timeouts: c.sender.stats.timeouts,
  };
}

/** Jain's fairness index: (Σx)² / (n·Σx²); 1 = perfectly fair. */
export function jain(xs: readonly number[]): number {
  const s = xs.reduce((a, b) => a + b, 0);
  const s2 = xs.reduce((a, b) => a + b * b, 0);
  return s2 === 0 ? 1 : (s * s) / (xs.length * s2);
}

export interface DumbbellSetup {
  flows: number;
  /** The bottleneck: the link to the receiver. */
  linkRateBps: number;
  /**
   * Sender links. Faster than the bottleneck (the usual dumbbell), so the queue builds at the
   * switch: with equal rates it builds in the senders' hosts instead, and a flow that finds the
   * switch queue full on arrival can be locked out for good (drop-tail lock-out).
   */
  accessRateBps: number;
  linkDelayNs: TimeNs;
  /** Bottleneck buffer (switch port toward the receiver), packets. */
  bufferPackets: number;
  durationNs: TimeNs;
  tcp: TcpConfig;
}

/** N senders → switch → one receiver; the switch port toward the receiver is the bottleneck. */
export function runDumbbell(events: EventList, s: DumbbellSetup, star: Star): { flows: BulkFlowResult[]; jain: number; totalGoodputBps: number; drops: number } {
  star.addHost({ name: 'receiver', link: { rateBps: s.linkRateBps, delayNs: s.linkDelayNs }, switchPort: { bufferPackets: s.bufferPackets } });
  const conns = Array.from({ length: s.flows }, (_, i) => {
    const name = `sender${i + 1}`;
    star.addHost({ name, link: { rateBps: s.accessRateBps, delayNs: s.linkDelayNs }, switchPort: { bufferPackets: s.bufferPackets } });
    return { name, c: startBulk(star, name, 'receiver', s.tcp) };
  });
  events.run(s.durationNs);
  const flows = conns.map(({ name, c }) => bulkResult(c, name, 'receiver', s.durationNs));
  const g = flows.map((f) => f.goodputBps);
  return { flows, jain: jain(g), totalGoodputBps: g.reduce((a, b) => a + b, 0), drops: star.host('receiver').port.stats.dropped };
}
