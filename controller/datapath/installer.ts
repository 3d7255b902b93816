/**
 * How the agent gets a Datapath for an interface. Two implementations behind one Symbol: the
 * kernel (shaper-bpf's installInterface, which adopts what a previous agent left pinned) and an
 * in-memory one for tests and benchmarks.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { Datapath, memoryTables } from '../../shaper-bpf/src/datapath.js';
import { installInterface, reattachInterface, repinInterface, uninstallInterface, PIN_BASE, POLICING_DETAIL, type InterfaceMode, type Reattached } from '../../shaper-bpf/src/interface.js';
import { fqPresence, readRootQdisc, type FqPresence, type RootQdisc } from '../../shaper-bpf/src/qdisc.js';
import { BPFFS, ensureBpffs } from '../../shaper-bpf/src/bpffs.js';
import type { Logger } from '../config/module.js';
import { SHAPING_DETAIL } from './fq-watch.js';
import { lockInterface } from './interface-lock.js';

export const INTERFACE_INSTALLER = Symbol('InterfaceInstaller');

export interface InstalledDatapath {
  iface: string;
  mode: InterfaceMode;
  modeDetail: string;
  adopted: boolean;
  /** The interface's maps were pinned already: the kernel holds a state newer than (or equal to) any snapshot. */
  pinsFound: boolean;
  datapath: Datapath;
  /** Is fq the interface's root qdisc now (with mq: on every tx queue)? Read from the kernel each call. */
  checkQdisc(): Promise<FqPresence>;
  /**
   * Is pacer's program still attached (filter, clsact, the same interface)? If not, attaches the
   * same program on the same maps again (a re-created interface is installed again, qdisc
   * included) and says what had happened; undefined when it was attached. Throws when it cannot
   * (e.g. no interface of that name now).
   */
  ensureAttached(): Promise<Reattached | undefined>;
  /** Pins again the maps and program whose pins were removed; returns their names (empty: none). */
  ensurePinned(): string[];
  close(): void;
}

export interface InterfaceInstaller {
  install(iface: string): Promise<InstalledDatapath>;
  /** Removes what the agent installed on the interface and its state files; returns what was removed, in words. */
  uninstall(iface: string): Promise<string[]>;
}

export class KernelInstaller implements InterfaceInstaller {
  constructor(private readonly o: { stateDir: string; netns?: string; pinBase?: string; log?: Logger }) {}

  private options(iface: string) {
    return { iface, netns: this.o.netns, stateDir: this.o.stateDir, pinRoot: join(this.o.pinBase ?? PIN_BASE, iface) };
  }

  async install(iface: string): Promise<InstalledDatapath> {
    // Before anything is touched: a second agent on this interface is refused (InterfaceLockedError).
    const lock = await lockInterface({ iface, netns: this.o.netns });
    let i: Awaited<ReturnType<typeof installInterface>>;
    const options = this.options(iface);
    try {
      // A freshly booted host has no bpffs: mount it rather than refuse (a failed mount throws, saying why).
      if (ensureBpffs()) this.o.log?.warn({ path: BPFFS }, 'bpffs was not mounted: pacer mounted it (mount -t bpf bpf /sys/fs/bpf) to pin its maps');
      i = await installInterface(options);
    } catch (err) {
      await lock.release();
      const elsewhere = (err as { errno?: number }).errno === constants.errno.ENODEV ? namespacesWith(iface, this.o.netns) : [];
      if (elsewhere.length > 0) {
        const hint = elsewhere.map((ns) => (ns === 'host' ? 'leave out --netns (it is in the host\'s namespace)' : `pass --netns /run/netns/${ns}`)).join(', or ');
        throw new Error(`${(err as Error).message}; an interface named ${iface} exists elsewhere: ${hint}`, { cause: err });
      }
      throw err;
    }
    const target = { iface, netns: this.o.netns };
    const attached = { programId: i.programId, ifindex: i.ifindex, egress: i.egress };
    return {
      iface,
      mode: i.mode,
      modeDetail: i.modeDetail,
      adopted: i.adopted,
      pinsFound: i.pinsFound,
      datapath: i.datapath,
      checkQdisc: async () => fqPresence(await readRootQdisc(target)),
      ensureAttached: async () => {
        const r = await reattachInterface(options, attached);
        if (r) Object.assign(attached, { programId: r.programId, ifindex: r.ifindex });
        return r;
      },
      ensurePinned: () => repinInterface(options, attached),
      close: () => {
        i.egress.close();
        void lock.release();
      },
    };
  }

  /** Refused while an agent enforces on the interface (it would re-install what this removes). */
  async uninstall(iface: string): Promise<string[]> {
    const lock = await lockInterface({ iface, netns: this.o.netns });
    try {
      const removed = await uninstallInterface(this.options(iface));
      // The agent's own files for this interface: its last-known-good snapshot (and a set-aside unreadable one).
      for (const name of existsSync(this.o.stateDir) ? readdirSync(this.o.stateDir, { withFileTypes: true }) : []) {
        if (!name.isFile() || !name.name.startsWith(`${iface}.last-known-good.json`)) continue;
        rmSync(join(this.o.stateDir, name.name));
        removed.push(`state file ${join(this.o.stateDir, name.name)}`);
      }
      return removed;
    } finally {
      await lock.release();
    }
  }
}

/**
 * Maps in memory; `fq: false` reports policing like a kernel without sch_fq. The root qdisc is a
 * value tests change with setRootQdisc, as an operator would with `tc qdisc replace`.
 */
export class MemoryInstaller implements InterfaceInstaller {
  readonly tables = new Map<string, ReturnType<typeof memoryTables>>();
  private readonly roots = new Map<string, RootQdisc | null>();
  /** What the next attachment check of an interface finds (setLapse); none: attached. */
  private readonly lapses = new Map<string, Reattached | Error>();
  constructor(private readonly fq = true) {}

  /** What `tc qdisc show` would print as the root of iface from now on. */
  setRootQdisc(iface: string, kind: string | null): void {
    this.roots.set(iface, kind === null ? null : { kind, handle: '1:', options: {}, children: [] });
  }

  /**
   * The next attachment checks of iface find its program detached: re-attached with this result,
   * or failing with this error until setLapse(iface, undefined) (the interface is back).
   */
  setLapse(iface: string, lapse: Reattached | Error | undefined): void {
    if (lapse === undefined) this.lapses.delete(iface);
    else this.lapses.set(iface, lapse);
  }

  async install(iface: string): Promise<InstalledDatapath> {
    const pinsFound = this.tables.has(iface);
    const t = this.tables.get(iface) ?? memoryTables();
    this.tables.set(iface, t);
    const mode = this.fq ? 'shaping' : 'policing';
    if (!this.roots.has(iface)) this.setRootQdisc(iface, this.fq ? 'fq' : 'pfifo_fast');
    return {
      iface,
      mode,
      modeDetail: this.fq ? SHAPING_DETAIL : POLICING_DETAIL,
      adopted: false,
      pinsFound,
      datapath: new Datapath(t),
      checkQdisc: async () => fqPresence(this.roots.get(iface) ?? null),
      ensureAttached: async () => {
        const lapse = this.lapses.get(iface);
        if (lapse instanceof Error) throw lapse;
        this.lapses.delete(iface); // re-attached: the next check finds it attached
        return lapse;
      },
      ensurePinned: () => [],
      close: () => {},
    };
  }

  async uninstall(iface: string): Promise<string[]> {
    return this.tables.delete(iface) ? [`the in-memory maps of ${iface}`] : [];
  }
}

/** The named network namespaces (and 'host', when not `netns`) that have an interface `iface`: where the user may have meant. */
function namespacesWith(iface: string, netns: string | undefined): string[] {
  const found: string[] = [];
  const has = (args: string[]) => spawnSync('ip', [...args, 'link', 'show', 'dev', iface], { stdio: 'ignore' }).status === 0;
  if (netns !== undefined && has([])) found.push('host');
  const named = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
  for (const ns of named) if (`/run/netns/${ns}` !== netns && ns !== netns && has(['-n', ns])) found.push(ns);
  return found;
}
