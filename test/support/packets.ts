/** Ethernet frames for BPF_PROG_TEST_RUN: IPv4 or IPv6 with a UDP payload, optional VLAN tags. */
import ipaddr from 'ipaddr.js';

export interface FrameOptions {
  /** Total frame length in bytes (padded with UDP payload); at least the headers. */
  length?: number;
  /** IPv4 TOS / IPv6 traffic class; the low 2 bits are ECN (1 or 2 = ECT, 3 = CE). */
  tos?: number;
  /** 802.1Q/802.1ad tags, outermost first. */
  vlans?: Array<{ tpid: 0x8100 | 0x88a8; id: number }>;
  src?: string;
}

const ETH_HEADER = 14;

export function frame(dst: string, options: FrameOptions = {}): Buffer {
  const addr = ipaddr.parse(dst);
  const v4 = addr.kind() === 'ipv4';
  const vlans = options.vlans ?? [];
  const l3 = v4 ? 20 : 40;
  const headers = ETH_HEADER + 4 * vlans.length + l3 + 8;
  const length = Math.max(options.length ?? headers, headers);
  const buf = Buffer.alloc(length);
  buf.set([0x02, 0, 0, 0, 0, 2], 0); // dst MAC (locally administered)
  buf.set([0x02, 0, 0, 0, 0, 1], 6); // src MAC
  let off = 12;
  for (const tag of vlans) {
    buf.writeUInt16BE(tag.tpid, off);
    buf.writeUInt16BE(tag.id & 0x0fff, off + 2);
    off += 4;
  }
  buf.writeUInt16BE(v4 ? 0x0800 : 0x86dd, off);
  off += 2;
  const l4Length = length - off - l3;
  const tos = options.tos ?? 0;
  if (v4) {
    buf[off] = 0x45;
    buf[off + 1] = tos;
    buf.writeUInt16BE(length - off, off + 2);
    buf[off + 8] = 64; // TTL
    buf[off + 9] = 17; // UDP
    buf.set(ipaddr.parse(options.src ?? '10.0.0.1').toByteArray(), off + 12);
    buf.set(addr.toByteArray(), off + 16);
    buf.writeUInt16BE(ipv4Checksum(buf.subarray(off, off + 20)), off + 10);
  } else {
    buf.writeUInt32BE((6 << 28) | (tos << 20), off);
    buf.writeUInt16BE(l4Length, off + 4);
    buf[off + 6] = 17;
    buf[off + 7] = 64;
    buf.set(ipaddr.parse(options.src ?? 'fd00::1').toByteArray(), off + 8);
    buf.set(addr.toByteArray(), off + 24);
  }
  const udp = off + l3;
  buf.writeUInt16BE(40000, udp);
  buf.writeUInt16BE(5201, udp + 2);
  buf.writeUInt16BE(l4Length, udp + 4);
  return buf;
}

export function ipv4Checksum(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) if (i !== 10) sum += header.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The ECN bits of the frame's IP header (frames built by `frame`, without VLAN tags). */
export function ecnOf(buf: Buffer): number {
  const type = buf.readUInt16BE(12);
  return type === 0x0800 ? buf[ETH_HEADER + 1]! & 3 : (buf.readUInt32BE(ETH_HEADER) >>> 20) & 3;
}
