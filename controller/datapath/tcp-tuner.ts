/**
 * TCP tuning (and, for classes policed without fq, TCP's own pacing) on this host: pacer_sockops
 * attached at a cgroup v2 directory through a bpf_link
 * pinned on bpffs (so it outlives the agent, and a restarted agent adopts it), and the
 * TcpDatapath that keeps its maps equal to the desired `tcp` state. Host-wide: one per agent,
 * not one per interface. Installs nothing unless the agent is given --cgroup-root.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PIN_BASE } from '../../shaper-bpf/src/interface.js';
import { detachPinnedCgroupLink } from '../../shaper-bpf/src/libbpf/index.js';
import { TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { TcpDatapath } from '../../shaper-bpf/src/tcp-datapath.js';

export const TCP_TUNER = Symbol('TcpTuner');

/** The directory under the pin base where the sock_ops maps and link live. */
export const TCP_PIN_DIR = 'tcp';
export const SOCKOPS_LINK_PIN = 'pacer_sockops_link';

export interface InstalledTcp {
  cgroupRoot: string;
  /** 'adopted': a previous agent's link was still attached there; 'replaced': it ran an older build's program. */
  attach: 'attached' | 'adopted' | 'replaced';
  datapath: TcpDatapath;
  close(): void;
}

export interface TcpTuner {
  /** undefined: TCP tuning is not configured on this host. */
  install(): InstalledTcp | undefined;
}

export class KernelTcpTuner implements TcpTuner {
  constructor(private readonly o: { cgroupRoot?: string; pinBase?: string }) {}

  install(): InstalledTcp | undefined {
    if (this.o.cgroupRoot === undefined) return undefined;
    const cgroupRoot = this.o.cgroupRoot;
    const pinRoot = join(this.o.pinBase ?? PIN_BASE, TCP_PIN_DIR);
    mkdirSync(pinRoot, { recursive: true });
    const tcp = TcpTuningObject.load({ pinRoot });
    try {
      const attach = tcp.attach(cgroupRoot, join(pinRoot, SOCKOPS_LINK_PIN));
      return { cgroupRoot, attach, datapath: new TcpDatapath(tcp), close: () => tcp.close() };
    } catch (err) {
      tcp.close();
      throw err;
    }
  }
}

/** `pacer agent teardown`: detaches the pinned sock_ops link and removes the TCP pins; false when there were none. */
export function uninstallTcp(pinBase: string = PIN_BASE): boolean {
  const pinRoot = join(pinBase, TCP_PIN_DIR);
  if (!existsSync(pinRoot)) return false;
  const link = join(pinRoot, SOCKOPS_LINK_PIN);
  if (existsSync(link)) detachPinnedCgroupLink(link);
  rmSync(pinRoot, { recursive: true, force: true });
  return true;
}
