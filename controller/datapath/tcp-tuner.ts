/**
 * TCP tuning (and, for classes policed without fq, TCP's own pacing) on this host: pacer_sockops
 * attached at a cgroup v2 directory through a bpf_link
 * pinned on bpffs (so it outlives the agent, and a restarted agent adopts it), and the
 * TcpDatapath that keeps its maps equal to the desired `tcp` state. Host-wide: one per agent,
 * not one per interface. Attached at --cgroup-root, by default at the root of the cgroup v2
 * hierarchy (cgroup-root.ts, mounted by the agent if needed); nothing with `--cgroup-root off`.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PIN_BASE } from '../../shaper-bpf/src/interface.js';
import { detachPinnedCgroupLink } from '../../shaper-bpf/src/libbpf/index.js';
import { readPacedSockets, TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { TcpDatapath } from '../../shaper-bpf/src/tcp-datapath.js';
import { resolveCgroupRoot, unmountPacerCgroup2, type CgroupRoot } from './cgroup-root.js';

export const TCP_TUNER = Symbol('TcpTuner');

/** The directory under the pin base where the sock_ops maps and link live. */
export const TCP_PIN_DIR = 'tcp';
export const SOCKOPS_LINK_PIN = 'pacer_sockops_link';

/** `--cgroup-root off`: no sock_ops. */
export const CGROUP_ROOT_OFF = 'off';

export interface InstalledTcp {
  cgroupRoot: string;
  /** How the root was chosen: the flag, an existing cgroup2 mount, or one the agent mounted. */
  cgroupRootSource: CgroupRoot['source'];
  /** 'adopted': a previous agent's link was still attached there; 'replaced': it ran an older build's program. */
  attach: 'attached' | 'adopted' | 'replaced';
  datapath: TcpDatapath;
  /** class id → busy capped sockets in the current or previous window (sockops.ts busyPacedSockets). */
  pacedSockets(): Map<number, number>;
  close(): void;
}

export interface TcpTuner {
  /** undefined: TCP tuning is turned off on this host (--cgroup-root off). */
  install(): InstalledTcp | undefined;
}

export class KernelTcpTuner implements TcpTuner {
  constructor(private readonly o: { cgroupRoot?: string; pinBase?: string; stateDir: string }) {}

  install(): InstalledTcp | undefined {
    if (this.o.cgroupRoot === CGROUP_ROOT_OFF) return undefined;
    const root = resolveCgroupRoot(this.o.cgroupRoot, this.o.stateDir);
    const cgroupRoot = root.path;
    const pinRoot = join(this.o.pinBase ?? PIN_BASE, TCP_PIN_DIR);
    mkdirSync(pinRoot, { recursive: true });
    const tcp = TcpTuningObject.load({ pinRoot });
    try {
      const attach = tcp.attach(cgroupRoot, join(pinRoot, SOCKOPS_LINK_PIN));
      const pacedSockets = () => readPacedSockets(pinRoot) ?? new Map<number, number>();
      return { cgroupRoot, cgroupRootSource: root.source, attach, datapath: new TcpDatapath(tcp), pacedSockets, close: () => tcp.close() };
    } catch (err) {
      tcp.close();
      throw err;
    }
  }
}

/**
 * `pacer agent teardown`: detaches the pinned sock_ops link, removes the TCP pins, and unmounts the
 * cgroup2 mount the agent made (recorded in `stateDir`). What it removed.
 */
export function uninstallTcp(pinBase: string = PIN_BASE, stateDir?: string): { pins: boolean; unmounted?: string } {
  const pinRoot = join(pinBase, TCP_PIN_DIR);
  const pins = existsSync(pinRoot);
  if (pins) {
    const link = join(pinRoot, SOCKOPS_LINK_PIN);
    if (existsSync(link)) detachPinnedCgroupLink(link);
    rmSync(pinRoot, { recursive: true, force: true });
  }
  return { pins, unmounted: stateDir === undefined ? undefined : unmountPacerCgroup2(stateDir) };
}
