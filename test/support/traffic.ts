/**
 * Real traffic for kernel tests, only inside namespaces the test made: UDP from a libc socket
 * created in the sender's namespace (Node's dgram cannot set SO_MARK, and iptables/nft are not
 * installed, so this is how a marked socket is had), iperf3 for TCP, and interface counters.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline';
import ipaddr from 'ipaddr.js';
import koffi from 'koffi';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import { inNetns } from '../../shaper-bpf/src/libbpf/index.js';
import { execIn } from './netns.js';

const libc = koffi.load('libc.so.6');
const socket = libc.func('int socket(int domain, int type, int protocol)');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)');
const sendto = libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)');
const closeFd = libc.func('int close(int fd)');

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_MARK = 36;

function sockaddr(address: string, port: number): Buffer {
  const ip = ipaddr.parse(address);
  const v6 = ip.kind() === 'ipv6';
  const sa = Buffer.alloc(v6 ? 28 : 16);
  sa.writeUInt16LE(v6 ? AF_INET6 : AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  sa.set(ip.toByteArray(), v6 ? 8 : 4); // sin6_flowinfo sits before the IPv6 address
  return sa;
}

/** A UDP socket that lives in `netns` (a socket keeps the namespace it was created in). */
export class UdpSender {
  private constructor(private fd: number) {}

  static open(netns: string, family: 4 | 6, mark?: number): UdpSender {
    const fd = inNetns(netnsPath(netns), () => socket(family === 6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0) as number);
    if (fd < 0) throw new Error(`socket(): errno ${koffi.errno()}`);
    const sender = new UdpSender(fd);
    if (mark !== undefined) {
      const v = Buffer.alloc(4);
      v.writeUInt32LE(mark);
      if ((setsockopt(fd, SOL_SOCKET, SO_MARK, v, 4) as number) !== 0) {
        sender.close();
        throw new Error(`setsockopt(SO_MARK): errno ${koffi.errno()}`);
      }
    }
    return sender;
  }

  /**
   * Sends `count` datagrams of `size` payload bytes. A datagram the tc program drops still
   * counts as sent: the kernel reports that drop to UDP as success (no IP_RECVERR).
   */
  send(address: string, port: number, size: number, count: number): void {
    const sa = sockaddr(address, port);
    const payload = Buffer.alloc(size, 0x5a);
    for (let i = 0; i < count; i++) {
      const n = sendto(this.fd, payload, size, 0, sa, sa.length) as number;
      if (n !== size) throw new Error(`sendto(${address}) returned ${n}, errno ${koffi.errno()}`);
    }
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }
}

/** Sends `count` datagrams from a fresh socket in `netns` and closes it. */
export function sendUdp(netns: string, opts: { to: string; port: number; size: number; count: number; mark?: number }): void {
  const sender = UdpSender.open(netns, ipaddr.parse(opts.to).kind() === 'ipv6' ? 6 : 4, opts.mark);
  try {
    sender.send(opts.to, opts.port, opts.size, opts.count);
  } finally {
    sender.close();
  }
}

/**
 * A steady UDP load: `batches` bursts of `perBatch` datagrams, at least `gapMs` apart (setTimeout
 * never fires early by a whole millisecond). Returns what was offered and the wall time it took.
 */
export async function udpLoad(netns: string, opts: { to: string; port: number; size: number; perBatch: number; batches: number; gapMs: number }) {
  const sender = UdpSender.open(netns, ipaddr.parse(opts.to).kind() === 'ipv6' ? 6 : 4);
  const start = process.hrtime.bigint();
  try {
    for (let b = 0; b < opts.batches; b++) {
      if (b > 0) await sleep(opts.gapMs);
      sender.send(opts.to, opts.port, opts.size, opts.perBatch);
    }
  } finally {
    sender.close();
  }
  return { datagrams: opts.batches * opts.perBatch, elapsedNs: Number(process.hrtime.bigint() - start) };
}

/** rx counters of an interface, as the kernel keeps them. */
export async function rxCounters(netns: string, iface: string): Promise<{ packets: number; bytes: number }> {
  const [link] = JSON.parse(await execIn(netns, 'ip', ['-s', '-j', 'link', 'show', iface])) as Array<{ stats64: { rx: { packets: number; bytes: number } } }>;
  if (!link) throw new Error(`no interface ${iface} in ${netns}`);
  return { packets: link.stats64.rx.packets, bytes: link.stats64.rx.bytes };
}

/** An iperf3 server in `netns`, resolved once it listens. Kill it with child.kill(). */
export async function iperf3Server(netns: string, port: number): Promise<ChildProcess> {
  // nsenter execs iperf3, so the child's pid is the server's.
  const child = spawn('nsenter', [`--net=${netnsPath(netns)}`, 'iperf3', '-s', '-p', String(port)], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`iperf3 -s exited with ${child.exitCode}`);
    if ((await execIn(netns, 'ss', ['-Hltn', `sport = :${port}`])).trim()) return child;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('iperf3 -s did not listen within 5 s');
}

/** Runs an iperf3 client in `netns` and returns its JSON report. */
export async function iperf3Client(netns: string, args: readonly string[]): Promise<{ end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } }> {
  return JSON.parse(await execIn(netns, 'iperf3', ['-J', '--connect-timeout', '3000', ...args]));
}

/** Lines from a child's stdout, one per next(); rejects if the child exits first. */
export function lineReader(child: ChildProcess): () => Promise<string> {
  const queue: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  // Queue every line as it comes: a line printed before anyone waits must not be lost.
  createInterface({ input: child.stdout! }).on('line', (line) => (waiting.length ? waiting.shift()!(line) : queue.push(line)));
  const exited = new Promise<never>((_, reject) => child.once('exit', (code, signal) => reject(new Error(`child exited (${code ?? signal})`))));
  exited.catch(() => {});
  return () => Promise.race([queue.length ? Promise.resolve(queue.shift()!) : new Promise<string>((resolve) => waiting.push(resolve)), exited]);
}
