/**
 * A UDP socket that sets its own departure time on every datagram (SO_TXTIME + SCM_TXTIME, on
 * CLOCK_MONOTONIC): the kernel copies it into skb->tstamp (net/ipv4/ip_output.c,
 * __ip_make_skb: skb->tstamp = cork->transmit_time), so the tc program sees a socket that paces
 * itself, as TCP's EDT does under fq. Only inside namespaces the test made.
 */
import ipaddr from 'ipaddr.js';
import koffi from 'koffi';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import { inNetns } from '../../shaper-bpf/src/libbpf/index.js';

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)');
const iovec = koffi.struct('pacer_iovec', { iov_base: 'void *', iov_len: 'size_t' });
const msghdr = koffi.struct('pacer_msghdr', {
  msg_name: 'void *',
  msg_namelen: 'uint32_t',
  msg_iov: koffi.pointer(iovec),
  msg_iovlen: 'size_t',
  msg_control: 'void *',
  msg_controllen: 'size_t',
  msg_flags: 'int',
});
const sendmsg = libc.func('long sendmsg(int fd, const pacer_msghdr *msg, int flags)');
const closeFd = libc.func('int close(int fd)');

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_TXTIME = 61; // also SCM_TXTIME
const CLOCK_MONOTONIC = 1;

/** Sends `count` IPv4 datagrams of `size` bytes from a fresh socket in `netns`, each stamped to leave at `txtime(i)` (CLOCK_MONOTONIC ns). */
export function sendUdpAt(netns: string, opts: { to: string; port: number; size: number; count: number; txtime: (i: number) => bigint }): void {
  const fd = inNetns(netnsPath(netns), () => socket(AF_INET, SOCK_DGRAM, 0) as number);
  if (fd < 0) throw new Error(`socket(): errno ${koffi.errno()}`);
  try {
    const cfg = Buffer.alloc(8); // struct sock_txtime { clockid_t clockid; __u32 flags; }
    cfg.writeInt32LE(CLOCK_MONOTONIC, 0);
    if ((setsockopt(fd, SOL_SOCKET, SO_TXTIME, cfg, 8) as number) !== 0) throw new Error(`setsockopt(SO_TXTIME): errno ${koffi.errno()}`);
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(opts.port, 2);
    sa.set(ipaddr.parse(opts.to).toByteArray(), 4);
    const payload = Buffer.alloc(opts.size, 0x5a);
    // One control message: struct cmsghdr { size_t len; int level; int type; } + the u64 time.
    const control = Buffer.alloc(24);
    control.writeBigUInt64LE(24n, 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SO_TXTIME, 12);
    for (let i = 0; i < opts.count; i++) {
      control.writeBigUInt64LE(opts.txtime(i), 16);
      const msg = { msg_name: sa, msg_namelen: sa.length, msg_iov: [{ iov_base: payload, iov_len: payload.length }], msg_iovlen: 1, msg_control: control, msg_controllen: control.length, msg_flags: 0 };
      const n = sendmsg(fd, msg, 0) as number;
      if (n !== opts.size) throw new Error(`sendmsg(${opts.to}) returned ${n}, errno ${koffi.errno()}`);
    }
  } finally {
    closeFd(fd);
  }
}
