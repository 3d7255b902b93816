/**
 * Packets and the source routing that moves them (htsim style: a packet carries its route, a list
 * of sinks, and each element hands it to the next).
 *
 * Sizes: `size` is the IP datagram in bytes (a TCP segment with MSS 1448 and the timestamp option
 * is 1448 + 20 IP + 20 TCP + 12 options = 1500). What a host's tc program and fq see (skb->len) is
 * size + 14 (Ethernet header, see L2_HEADER); what a link serializes is size + the link's framing
 * overhead (38 bytes for Ethernet, see ETHERNET_OVERHEAD).
 */
import type { TimeNs } from '../engine/events.js';

/** Ethernet MAC header (dst, src, ethertype): part of skb->len on egress. */
export const L2_HEADER = 14;
/**
 * Bytes a link spends per IP datagram beyond its size on Ethernet: preamble + SFD 8, MAC header
 * 14, FCS 4, inter-frame gap 12. A 1500-byte datagram occupies 1538 byte times on the wire.
 */
export const ETHERNET_OVERHEAD = 38;
/** Ethernet pads a frame's payload to at least 46 bytes (64-byte minimum frame). */
export const ETHERNET_MIN_PAYLOAD = 46;

export type PacketKind = 'data' | 'ack' | 'request';

/** Why a packet was dropped. Every drop in the simulator carries one of these. */
/**
 * buffer: a switch port's own limit; shared_buffer: the switch's shared pool or its dynamic
 * threshold (shared-buffer.ts); edt_horizon: pacer's shaper; fq_*: the host's fq qdisc.
 */
export const DROP_REASONS = ['buffer', 'shared_buffer', 'edt_horizon', 'fq_horizon', 'fq_flow_limit', 'fq_limit'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface PacketSink {
  receive(pkt: Packet): void;
}

export class Packet {
  /** Sinks still to visit, in order; `hop` indexes the next one. */
  route: readonly PacketSink[] = [];
  hop = 0;
  /** EDT time to send set by the host shaper (skb->tstamp); 0 = now. */
  tstamp: TimeNs = 0;
  /** When it entered the current queue (for queueing delay statistics). */
  enqueuedAt: TimeNs = 0;
  /** ECN-capable transport; ce = congestion experienced. */
  ect = false;
  ce = false;
  /** TCP fields: sequence number of the first payload byte, cumulative ack, payload bytes. */
  seq = 0;
  ack = 0;
  payload = 0;
  /** RFC 7323 timestamps, in ns of simulated time; tsEcr -1 = nothing to echo yet. */
  tsVal: TimeNs = 0;
  tsEcr: TimeNs = -1;
  /** Free for the workload (e.g. the round a request belongs to). */
  tag = 0;
  /** Told when the packet leaves its host's NIC or is dropped there (TCP Small Queues). */
  owner: { txDone(p: Packet): void } | undefined = undefined;

  constructor(
    readonly kind: PacketKind,
    /** Flow (socket) id: the fq flow key and the TCP connection. */
    readonly flow: number,
    /** pacer class id (0 = unclassified). */
    readonly cls: number,
    /** IP datagram bytes. */
    readonly size: number,
  ) {}

  /** Hands the packet to the next sink on its route. */
  forward(): void {
    const next = this.route[this.hop++];
    if (!next) throw new Error(`packet of flow ${this.flow} ran off the end of its route`);
    next.receive(this);
  }

  /** Starts the packet on a route. */
  send(route: readonly PacketSink[]): void {
    this.route = route;
    this.hop = 0;
    this.forward();
  }
}

/** Byte times a datagram of `size` occupies on a link with `overhead` framing bytes. */
export function wireBytes(size: number, overhead: number): number {
  return Math.max(size, ETHERNET_MIN_PAYLOAD) + overhead;
}
