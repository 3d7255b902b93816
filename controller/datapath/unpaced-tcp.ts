/**
 * Classes whose traffic is policed without a socket cap. Under policing (no fq) only local TCP
 * sockets that sock_ops caps at their class's rate get close to it; a TCP sender sock_ops does not
 * see (outside the agent's cgroup root, or with sock_ops off) sends its window at line rate into a
 * 2 ms policer and gets a small part of the rate (measured here: 5.21 of 20 Mbit/s, 162 drops).
 * That must not be silent.
 *
 * The rule, per class on a policing interface, at each check: the policer dropped packets of the
 * class since the previous check (horizon_drops grew) and sock_ops counted no busy capped socket
 * of the class in the current or the previous 268 ms window (tcp_class_flows). Paced sockets
 * cause no such drops, so what was dropped came from unpaced senders: local TCP outside sock_ops'
 * reach, or traffic that is not local TCP (UDP above the rate, forwarded packets), which the
 * message names too. A class with busy capped sockets and an unpaced sender besides is not
 * reported (the tc program cannot tell the two apart per packet).
 *
 * Pure: the agent reads the counters and passes them in (controller/agent.ts).
 */
import type { ClassError } from '../desired/desired-state.js';

export interface PolicedInterface {
  iface: string;
  policing: boolean;
  /** class id → horizon_drops now (the kernel's counter, summed over CPUs). */
  drops: ReadonlyMap<number, number>;
}

export interface UnpacedClass {
  iface: string;
  classId: number;
  /** Drops since the previous check. */
  drops: number;
}

export class UnpacedTcpWatch {
  /** `iface/class id` → horizon_drops at the previous check. */
  private previous = new Map<string, number>();

  /**
   * The classes policed without a cap since the previous check. `paced`: class id → busy capped
   * sockets (undefined when sock_ops is not installed: nothing is paced). A class's first check
   * only records its counter.
   */
  check(ifaces: readonly PolicedInterface[], paced: ReadonlyMap<number, number> | undefined): UnpacedClass[] {
    const next = new Map<string, number>();
    const found: UnpacedClass[] = [];
    for (const i of ifaces) {
      for (const [classId, drops] of i.drops) {
        const key = `${i.iface}/${classId}`;
        next.set(key, drops);
        const before = this.previous.get(key);
        // A class new since the last check (or a slot reused) starts from its counter now.
        if (before === undefined || drops < before) continue;
        const grew = drops - before;
        if (i.policing && grew > 0 && (paced?.get(classId) ?? 0) === 0) found.push({ iface: i.iface, classId, drops: grew });
      }
    }
    this.previous = next;
    return found;
  }
}

/** The class error the host status carries for an unpaced class, with the fix. */
export function unpacedTcpError(u: UnpacedClass, className: string, sockops: { cgroupRoot?: string; whole: boolean }): ClassError {
  const reach =
    sockops.cgroupRoot === undefined
      ? 'sock_ops is not attached (--cgroup-root off, or it failed: see lastError), so no local TCP socket is paced'
      : sockops.whole
        ? `no TCP socket of the class is paced by sock_ops (attached at the cgroup v2 root ${sockops.cgroupRoot}); sockets opened before the agent started are not paced`
        : `no TCP socket of the class is paced by sock_ops, which sees only sockets created below ${sockops.cgroupRoot}`;
  const fix =
    sockops.cgroupRoot !== undefined && !sockops.whole
      ? `run the TCP senders below ${sockops.cgroupRoot}, or start the agent without --cgroup-root (sock_ops then covers every local socket), or install sch_fq`
      : sockops.cgroupRoot === undefined
        ? 'start the agent without --cgroup-root off (sock_ops then covers every local socket), or install sch_fq'
        : 'restart long-lived TCP connections, or install sch_fq';
  return {
    class: className,
    error: `tcp: policed without a socket cap on ${u.iface}: the policer dropped ${u.drops} packets since the last check and ${reach}; local TCP senders get far less than the class's rate. Fix: ${fix}. (Traffic that is not local TCP, e.g. UDP above the rate, is dropped as configured and also counts here.)`,
  };
}
