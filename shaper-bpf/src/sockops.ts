/**
 * The sock_ops object (shaper-bpf/obj/pacer_sockops.o): low-latency TCP tuning per class.
 *
 * A socket is classified when it connects (active), listens, or is accepted (passive), in the
 * tc program's order (shaper-bpf/bpf/classify_order.h): its mark (`marks`, SO_MARK), its own cgroup
 * v2 id (`cgroups`, keyed by cgroupId()), its peer's prefix (`dst4`/`dst6`; an IPv4-mapped peer
 * counts as IPv4; a listener has no peer). A paced socket is classified again once per 268 ms
 * window. Accepted sockets inherit their listener's tuning, so they are tuned from their first
 * RTT sample on. Its
 * class's `tuning` is applied with bpf_setsockopt, and what the kernel answered lands in `stats`.
 * Maps are pinned by name under `pinRoot` like the egress object's, so a restarted agent adopts
 * them; the program is attached through a bpf_link pinned on bpffs, so it outlives the agent.
 */
import { existsSync, readlinkSync, rmSync, statfsSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import koffi from 'koffi';
import { objectPath } from './egress.js';
import { join } from 'node:path';
import { attachCgroup, BpfMap, BpfObject, BpfProgram, errnoName, type CgroupAttachment, detachPinnedCgroupLink } from './libbpf/index.js';
// Not in the binding's public surface yet: reading a pinned link's info (see pinnedLinkInfo).
import { check, errnoText } from './libbpf/errors.js';
import { closeFd, objInfo } from './libbpf/info.js';
import { lib } from './libbpf/native.js';
import * as layout from './layout.js';
import { prefix, struct, TypedMap, u32, u64 } from './typed-map.js';

export type { TcpPacing, TcpStats, TcpTuning } from './layout.js';

export const SOCKOPS_PROGRAM = 'pacer_sockops';
export const TCP_BPF_DELACK_MAX = 1003;
export const TCP_BPF_RTO_MIN = 1004;
/** SOL_SOCKET option: the cap sock_ops sets on a policed class's sockets (asm-generic/socket.h). */
export const SO_MAX_PACING_RATE = 47;

const CGROUP2_SUPER_MAGIC = 0x63677270;
const BPF_LINK_TYPE_CGROUP = 3;
const BPF_CGROUP_SOCK_OPS = 3;

export interface TcpTuningLoadOptions {
  /** Directory in bpffs where the maps are pinned (and found again). */
  pinRoot: string;
  objectPath?: string;
}

/**
 * The id the kernel gives a cgroup v2 directory (kernfs node id: bpf_get_current_cgroup_id(),
 * and what pacer_sockops reads from sk->sk_cgrp_data). On 64-bit kernels it is the directory's
 * inode number on cgroup2fs. A cgroup v1 directory has an inode too, but no v2 id: refused.
 */
export function cgroupId(path: string): bigint {
  const type = statfsSync(path).type;
  if (type !== CGROUP2_SUPER_MAGIC) {
    throw new Error(`${path} is not on a cgroup v2 file system (f_type 0x${type.toString(16)}); mount one with \`mount -t cgroup2 none DIR\``);
  }
  return statSync(path, { bigint: true }).ino;
}

const TIMER_OPTIONS: Record<number, string> = { [TCP_BPF_RTO_MIN]: 'TCP_BPF_RTO_MIN', [TCP_BPF_DELACK_MAX]: 'TCP_BPF_DELACK_MAX' };
const OPTION_NAMES: Record<number, string> = { ...TIMER_OPTIONS, [SO_MAX_PACING_RATE]: 'SO_MAX_PACING_RATE' };

/**
 * What a tcp_stats entry's last_error/last_option mean, for people. `errno` may be given as the
 * program stores it (-22) or positive. The kernel converts microseconds to jiffies rounding up and
 * accepts 2 jiffies .. 200 ms for both options; HZ is not visible from user space, so the
 * message names jiffies and gives HZ=250 (where this was measured) only as an example.
 */
export function describeTcpError(errno: number, option: number): string {
  const e = Math.abs(errno);
  const name = OPTION_NAMES[option] ?? `TCP option ${option}`;
  let text = `the kernel refused ${name}: ${errnoText(e)} (${errnoName(e)})`;
  if (e === constants.errno.EINVAL && TIMER_OPTIONS[option]) {
    text += ': below 2 jiffies (8 ms at HZ=250; microseconds are rounded up to whole jiffies) or above 200 ms';
  }
  return text;
}

/** The head of struct bpf_link_info with its cgroup part (linux/bpf.h). */
const LinkInfoCgroup = koffi.struct('pacer_bpf_link_info_cgroup', {
  type: 'uint32_t',
  id: 'uint32_t',
  prog_id: 'uint32_t',
  pad: 'uint32_t', // the union is 8-byte aligned
  cgroup_id: 'uint64_t',
  attach_type: 'uint32_t',
  pad2: 'uint32_t',
});

export interface PinnedLinkInfo {
  type: number;
  id: number;
  progId: number;
  /** 0 once the link was detached (BPF_LINK_DETACH) or its cgroup removed: a defunct link. */
  cgroupId: bigint;
  attachType: number;
}

/**
 * BPF_OBJ_GET_INFO_BY_FD on a pinned link (the binding has no link-info call yet). Not through
 * info.ts's openPinnedFd: its fdKind() expects "anon_inode:bpf_link", but the kernel names link
 * fds "anon_inode:bpf-link", so it calls every link "other".
 */
export function pinnedLinkInfo(path: string): PinnedLinkInfo {
  const fd = check(lib.bpf_obj_get(path) as number, 'open pinned link', path);
  try {
    const kind = readlinkSync(`/proc/self/fd/${fd}`);
    if (kind !== 'anon_inode:bpf-link') throw new Error(`${path} pins ${kind}, not a BPF link`);
    const i = objInfo<{ type: number; id: number; prog_id: number; cgroup_id: number | bigint; attach_type: number }>(fd, LinkInfoCgroup, `link pinned at ${path}`);
    return { type: i.type, id: i.id, progId: i.prog_id, cgroupId: BigInt(i.cgroup_id), attachType: i.attach_type };
  } finally {
    closeFd(fd);
  }
}

/** The program's counting window: 2^28 ns of CLOCK_MONOTONIC (bpf_ktime_get_ns; FLOW_WINDOW_SHIFT). */
export const FLOW_WINDOW_SHIFT = 28n;

/**
 * How many of a class's capped sockets sock_ops counted as sending in the current or the previous
 * window (`now` in CLOCK_MONOTONIC ns, process.hrtime.bigint() on Linux); 0 for an entry older than that.
 */
export function busyPacedSockets(flows: layout.ClassFlows | undefined, now: bigint = process.hrtime.bigint()): number {
  if (flows === undefined) return 0;
  const window = now >> FLOW_WINDOW_SHIFT;
  const age = window - BigInt(flows.window);
  if (age === 0n) return Math.max(flows.cur, flows.prev);
  if (age === 1n) return flows.cur;
  return 0;
}

/**
 * class id → busy capped sockets, from the pinned tcp_class_flows under `pinRoot` (the agent's
 * `<pin base>/tcp`), without loading the program or creating pins; undefined when sock_ops' pins are
 * not there (not installed, or from a pacer that did not pin the map).
 */
export function readPacedSockets(pinRoot: string, now: bigint = process.hrtime.bigint()): Map<number, number> | undefined {
  const pin = join(pinRoot, 'tcp_class_flows');
  if (!existsSync(pin)) return undefined;
  const flows = new TypedMap(BpfMap.openPinned(pin), u32, struct(layout.classFlows));
  try {
    return new Map([...flows.entries()].map(([id, f]) => [id, busyPacedSockets(f, now)]));
  } finally {
    flows.map.close();
  }
}

export class TcpTuningObject {
  readonly program: BpfProgram;
  readonly marks: TypedMap<number, number>;
  readonly cgroups: TypedMap<bigint, number>;
  readonly dst4: TypedMap<string, number>;
  readonly dst6: TypedMap<string, number>;
  readonly tuning: TypedMap<number, layout.TcpTuning>;
  readonly pacing: TypedMap<number, layout.TcpPacing>;
  readonly stats: TypedMap<number, layout.TcpStats>;
  /** class id → its busy capped sockets per 2^28 ns window (see busyPacedSockets). */
  readonly flows: TypedMap<number, layout.ClassFlows>;
  // Links this process attached, by pin path. The binding can only drop a link's fd by unpinning
  // it, so the fd stays open until detach() or process exit; the pin keeps it attached either way.
  private readonly attached = new Map<string, CgroupAttachment>();

  private constructor(private readonly object: BpfObject) {
    this.program = object.program(SOCKOPS_PROGRAM);
    this.marks = new TypedMap(object.map('tcp_mark_class'), u32, u32);
    this.cgroups = new TypedMap(object.map('tcp_cgroup_class'), u64, u32);
    this.dst4 = new TypedMap(object.map('tcp_dst4_class'), prefix('ipv4'), u32);
    this.dst6 = new TypedMap(object.map('tcp_dst6_class'), prefix('ipv6'), u32);
    this.tuning = new TypedMap(object.map('tcp_tuning'), u32, struct(layout.tcpTuning));
    this.pacing = new TypedMap(object.map('tcp_pacing'), u32, struct(layout.tcpPacing));
    this.stats = new TypedMap(object.map('tcp_stats'), u32, struct(layout.tcpStats));
    this.flows = new TypedMap(object.map('tcp_class_flows'), u32, struct(layout.classFlows));
  }

  static load(options: TcpTuningLoadOptions): TcpTuningObject {
    const object = BpfObject.open(options.objectPath ?? objectPath('pacer_sockops'), { pinRoot: options.pinRoot });
    try {
      object.load();
      return new TcpTuningObject(object);
    } catch (err) {
      object.close();
      throw err;
    }
  }

  /**
   * Attaches pacer_sockops to the cgroup v2 directory `cgroupRoot` (it then sees every TCP socket
   * of that subtree) through a bpf_link pinned at `linkPin`, with the program pinned beside it
   * (`<linkPin>_prog`; bpffs refuses dots in names). If `linkPin` already holds a live sock_ops link on that cgroup (a previous
   * agent's), it is adopted instead of attaching twice, but only if it runs this build's program
   * (same kernel tag): an older build would not read maps this one added (tcp_pacing), a silent
   * half state. Then this build's program is attached first and the old link cut after, so for a
   * moment both run (the same settings twice) and no new socket goes untuned: 'replaced'.
   * A defunct pin (its link detached, or its cgroup removed) is replaced.
   */
  attach(cgroupRoot: string, linkPin: string): 'attached' | 'adopted' | 'replaced' {
    const id = cgroupId(cgroupRoot);
    const programPin = `${linkPin}_prog`;
    let outcome: 'attached' | 'replaced' = 'attached';
    if (existsSync(linkPin)) {
      const link = pinnedLinkInfo(linkPin);
      if (link.type !== BPF_LINK_TYPE_CGROUP || link.attachType !== BPF_CGROUP_SOCK_OPS) {
        throw new Error(`${linkPin} pins a BPF link of type ${link.type}/attach type ${link.attachType}, not a cgroup sock_ops link; refusing to replace it`);
      }
      if (link.cgroupId === id) {
        if (this.runsThisBuild(link.progId, programPin)) return 'adopted';
        outcome = 'replaced';
      } else if (link.cgroupId !== 0n) {
        throw new Error(`${linkPin} pins a sock_ops link on cgroup id ${link.cgroupId}, not ${cgroupRoot} (id ${id}); detach it first`);
      } else {
        detachPinnedCgroupLink(linkPin);
      }
    }
    const attachment = attachCgroup(this.program, cgroupRoot, { mode: 'link' });
    try {
      if (outcome === 'replaced') detachPinnedCgroupLink(linkPin);
      attachment.pin(linkPin);
      if (existsSync(programPin)) rmSync(programPin);
      this.program.pin(programPin);
    } catch (err) {
      attachment.detach();
      throw err;
    }
    this.attached.set(linkPin, attachment);
    return outcome;
  }

  /** The link's program is the one pinned beside it and has this build's tag. */
  private runsThisBuild(progId: number, programPin: string): boolean {
    if (!existsSync(programPin)) return false;
    const pinned = BpfProgram.openPinned(programPin);
    try {
      return pinned.id === progId && pinned.tag === this.program.tag;
    } finally {
      pinned.close();
    }
  }

  /** Detaches the link pinned at `linkPin` (by whichever process attached it) and removes the pin. */
  detach(linkPin: string): void {
    const mine = this.attached.get(linkPin);
    this.attached.delete(linkPin);
    // BPF_LINK_DETACH first: it cuts the link even if another process still holds an fd of it.
    if (existsSync(linkPin)) detachPinnedCgroupLink(linkPin);
    rmSync(`${linkPin}_prog`, { force: true });
    mine?.detach(); // its pin is gone by now; this just closes our fd
  }

  /** Closes the maps and program fds. Pinned maps and pinned links stay in the kernel. */
  close(): void {
    this.object.close();
  }
}
