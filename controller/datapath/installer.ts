/**
 * How the agent gets a Datapath for an interface. Two implementations behind one Symbol: the
 * kernel (shaper-bpf's installInterface, which adopts what a previous agent left pinned) and an
 * in-memory one for tests and benchmarks.
 */
import { join } from 'node:path';
import { Datapath, memoryTables } from '../../shaper-bpf/src/datapath.js';
import { installInterface, uninstallInterface, PIN_BASE, POLICING_DETAIL, type InterfaceMode } from '../../shaper-bpf/src/interface.js';

export const INTERFACE_INSTALLER = Symbol('InterfaceInstaller');

export interface InstalledDatapath {
  iface: string;
  mode: InterfaceMode;
  modeDetail: string;
  adopted: boolean;
  datapath: Datapath;
  close(): void;
}

export interface InterfaceInstaller {
  install(iface: string): Promise<InstalledDatapath>;
  uninstall(iface: string): Promise<void>;
}

export class KernelInstaller implements InterfaceInstaller {
  constructor(private readonly o: { stateDir: string; netns?: string; pinBase?: string }) {}

  private options(iface: string) {
    return { iface, netns: this.o.netns, stateDir: this.o.stateDir, pinRoot: join(this.o.pinBase ?? PIN_BASE, iface) };
  }

  async install(iface: string): Promise<InstalledDatapath> {
    const i = await installInterface(this.options(iface));
    return { iface, mode: i.mode, modeDetail: i.modeDetail, adopted: i.adopted, datapath: i.datapath, close: () => i.egress.close() };
  }

  uninstall(iface: string): Promise<void> {
    return uninstallInterface(this.options(iface));
  }
}

/** Maps in memory; `fq: false` reports policing like a kernel without sch_fq. */
export class MemoryInstaller implements InterfaceInstaller {
  readonly tables = new Map<string, ReturnType<typeof memoryTables>>();
  constructor(private readonly fq = true) {}

  async install(iface: string): Promise<InstalledDatapath> {
    const t = this.tables.get(iface) ?? memoryTables();
    this.tables.set(iface, t);
    const mode = this.fq ? 'shaping' : 'policing';
    return { iface, mode, modeDetail: this.fq ? 'shaping (fq)' : POLICING_DETAIL, adopted: false, datapath: new Datapath(t), close: () => {} };
  }

  async uninstall(iface: string): Promise<void> {
    this.tables.delete(iface);
  }
}
