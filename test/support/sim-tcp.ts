/**
 * One TCP connection across the simulator's star (host a → switch → host b), for the TCP model
 * tests: a sink in front of the receiver may drop data segments, every ACK and every departure
 * from a's NIC can be observed, and the sender's trace events are collected.
 */
import { EventList, Timer, type TimeNs } from '../../sim/engine/events.js';
import type { Packet, PacketSink } from '../../sim/net/packet.js';
import { Star } from '../../sim/topology/star.js';
import type { EdtClassConfig } from '../../shaper-bpf/src/edt.js';
import { TcpReceiver, TcpSender, type TcpConfig, type TcpTraceEvent } from '../../sim/tcp/tcp.js';

export const US = 1_000;
export const MS = 1_000_000;
export const GBIT = 1_000_000_000;
/** Application bytes per second a 1 Gbit/s Ethernet link can carry: 1448 of every 1538 byte times. */
export const CEILING = (GBIT * 1448) / 1538;

export interface PairOptions {
  /** Link rate of both hosts (default 1 Gbit/s). */
  rateBps?: number;
  /** The sender's link rate, if different (a faster sender makes the switch port to b the bottleneck). */
  senderRateBps?: number;
  /** One-way delay of each link (default 25 us: a 100 us base RTT). */
  delayNs?: TimeNs;
  /** Buffer of each switch port (default 1 MB). */
  bufferBytes?: number;
  /** Drop this data segment (n counts data segments reaching the receiver's side, from 1). */
  dropIf?: (p: Packet, n: number) => boolean;
  /** Called as the sender hands a segment to its host (before the EDT shaper and fq). */
  onHandOff?: (p: Packet) => void;
  /** pacer classes installed on the sender's host, and the class of the connection's data. */
  classes?: ReadonlyMap<number, EdtClassConfig>;
  cls?: number;
}

export function tcpPair(tcp: TcpConfig, o: PairOptions = {}) {
  const ev = new EventList();
  const star = new Star(ev);
  const link = { rateBps: o.rateBps ?? GBIT, delayNs: o.delayNs ?? 25 * US };
  for (const name of ['a', 'b']) {
    const rateBps = name === 'a' ? (o.senderRateBps ?? link.rateBps) : link.rateBps;
    star.addHost({ name, link: { ...link, rateBps }, switchPort: { bufferBytes: o.bufferBytes ?? 1 << 20 }, ...(name === 'a' && o.classes && { classes: o.classes }) });
  }
  const fwd: PacketSink[] = [];
  const rev: PacketSink[] = [];
  const sender = new TcpSender(ev, tcp, 1, o.cls ?? 0, fwd);
  const receiver = new TcpReceiver(ev, tcp, 1, 0, rev);
  let n = 0;
  const dropIf = o.dropIf ?? (() => false);
  const dropped: Packet[] = [];
  const dropper: PacketSink = { receive: (p) => (dropIf(p, ++n) ? void dropped.push(p) : receiver.receive(p)) };
  const acks: Array<{ at: TimeNs; ack: Packet }> = [];
  const ackTap: PacketSink = {
    receive: (p) => {
      acks.push({ at: ev.now(), ack: p });
      sender.receive(p);
    },
  };
  const onHandOff = o.onHandOff;
  if (onHandOff) fwd.push({ receive: (p) => (onHandOff(p), p.forward()) });
  fwd.push(...star.route('a', 'b', dropper));
  rev.push(...star.route('b', 'a', ackTap));
  sender.handshake(star.baseRtt('a', 'b', tcp.headerBytes));
  const events: TcpTraceEvent[] = [];
  sender.trace = (e) => events.push(e);
  /** Data segments as they start serialization on a's NIC. */
  const departures: Array<{ at: TimeNs; seq: number; payload: number }> = [];
  star.host('a').egress.nic.onService = (p) => {
    if (p.kind === 'data') departures.push({ at: ev.now(), seq: p.seq, payload: p.payload });
  };
  return { ev, star, sender, receiver, events, acks, departures, dropped };
}

/** Calls `fn` every `periodNs` from `startNs` until `endNs` (for sampling cwnd and the like). */
export function every(ev: EventList, periodNs: TimeNs, endNs: TimeNs, fn: () => void, startNs = periodNs): void {
  const t = new Timer(ev, () => {
    fn();
    if (ev.now() + periodNs <= endNs) t.set(ev.now() + periodNs);
  });
  t.set(startNs);
}
