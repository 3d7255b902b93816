/**
 * What each class's traffic delivered, as the receiver acknowledged it: the `bytes_acked` of the
 * sender's TCP sockets (`ss -tin` in the sender's namespace), by destination address (one per
 * class in the demo's plan), as wire bits per second.
 *
 * Why not the data plane's byte counter: the program counts a packet when it stamps it, and with
 * fq that is up to a horizon before it leaves, so a queue that grows makes a class look faster
 * than it sends (measured in the VM: +6% over the first phase). What the receiver acknowledged is
 * the rate a user gets. Payload bytes become wire bytes with (MSS + 66) / MSS per full segment:
 * Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12, the same model the enforcement tier checks
 * against fq's own byte counter (test/enforcement, "the wire overhead assumed for TCP payload").
 */
import { runIn } from '../shaper-bpf/src/exec.js';
import { DemoError } from './demo-error.js';

const TCP_FRAME_OVERHEAD = 14 + 20 + 20 + 12;

interface SocketReading {
  dst: string;
  bytesAcked: number;
  mss: number;
}

/** The established IPv4 TCP sockets of `ss -tinH` output, by "local peer" address pair. */
export function parseSs(text: string): Map<string, SocketReading> {
  const sockets = new Map<string, SocketReading>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    // A socket is a line of addresses, then an indented line of its TCP info.
    const addrs = /^\S*\s*\d+\s+\d+\s+(\d+\.\d+\.\d+\.\d+:\d+)\s+(\d+\.\d+\.\d+\.\d+):(\d+)/.exec(lines[i]!);
    const info = lines[i + 1] ?? '';
    if (!addrs || !/^\s/.test(info)) continue;
    const acked = /\bbytes_acked:(\d+)/.exec(info);
    const mss = /\bmss:(\d+)/.exec(info);
    sockets.set(`${addrs[1]} ${addrs[2]}:${addrs[3]}`, { dst: addrs[2]!, bytesAcked: acked ? Number(acked[1]) : 0, mss: mss ? Number(mss[1]) : 0 });
    i++;
  }
  return sockets;
}

export class DeliveredReader {
  private last = new Map<string, SocketReading>();
  private lastAt = 0;

  constructor(private readonly netns: string) {}

  /** The sockets, and when they were read: the middle of the `ss` run (under emulation it takes ~0.2 s). */
  private async read(): Promise<{ sockets: Map<string, SocketReading>; at: number }> {
    const before = performance.now();
    const r = await runIn(this.netns, 'ss', ['-tinH', 'state', 'established']);
    const at = (before + performance.now()) / 2;
    if (r.code !== 0) throw new Error(`ss -tin in ${this.netns} exited ${r.code}: ${r.stderr.trim()}`);
    const sockets = parseSs(r.stdout);
    // Without the kernel's socket diagnostics (tcp_diag), ss falls back to /proc/net/tcp: no TCP info.
    if (sockets.size > 0 && [...sockets.values()].every((s) => s.mss === 0)) {
      throw new DemoError('`ss -ti` shows no TCP info for the demo\'s sockets, so what they delivered cannot be read: load the kernel\'s socket diagnostics (modprobe tcp_diag)');
    }
    return { sockets, at };
  }

  /** Starts the deltas from now. */
  async reset(): Promise<void> {
    ({ sockets: this.last, at: this.lastAt } = await this.read());
  }

  /**
   * Wire bits per second delivered to each destination address since the previous call, and the
   * length of that interval (s): a rate over a longer run is the bits over the time, not the mean
   * of the seconds' rates, whose intervals differ.
   */
  async second(): Promise<{ bps: Map<string, number>; intervalS: number }> {
    const { sockets: now, at } = await this.read();
    const dt = (at - this.lastAt) / 1000;
    const bits = new Map<string, number>();
    for (const [key, s] of now) {
      const before = this.last.get(key)?.bytesAcked ?? 0;
      const wire = s.mss > 0 ? ((s.bytesAcked - before) * (s.mss + TCP_FRAME_OVERHEAD)) / s.mss : 0;
      bits.set(s.dst, (bits.get(s.dst) ?? 0) + wire * 8);
    }
    this.last = now;
    this.lastAt = at;
    return { bps: new Map([...bits].map(([dst, b]) => [dst, dt > 0 ? b / dt : 0])), intervalS: dt };
  }
}
