/**
 * Installing pacer on one interface, and removing it: bpffs pins, the clsact hook with the egress
 * program, and the fq root qdisc. Installing again adopts what is there (same program, same
 * maps, schedules untouched), so an agent restart or upgrade never lets enforcement lapse.
 *
 * Without fq the same program still runs, and the interface is in **policing** mode: packets
 * stamped for later leave at once, so the caller must configure short horizons, which turn the
 * horizon drop into a policer. The mode says so; nothing pretends to shape.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EgressObject, EGRESS_PROGRAM } from './egress.js';
import { requireBpffs } from './bpffs.js';
import { Datapath, SETTINGS_POLICING } from './datapath.js';
import { BpfProgram, tcAttach, tcDetach, tcHookCreate, tcHookDestroy, tcQuery, type TcFilterRef } from './libbpf/index.js';
import { FqUnavailableError, fqPresence, readRootQdisc, restoreQdisc, setupFq, type QdiscTarget } from './qdisc.js';

export const PIN_BASE = '/sys/fs/bpf/pacer';
/** The tc filter pacer owns on each interface: fixed, so a restarted agent finds it. */
export const FILTER = { direction: 'egress' as const, handle: 0x7061, priority: 0x7061 }; // "pa"

export type InterfaceMode = 'shaping' | 'policing';
export const POLICING_DETAIL = 'policing (fq unavailable)';

export interface InstallOptions {
  iface: string;
  /** Network namespace path (/run/netns/NAME); default: the agent's own. */
  netns?: string;
  /** Where pins live; default /sys/fs/bpf/pacer/<iface>. */
  pinRoot?: string;
  /** Where the previous qdisc and what pacer created are recorded, to undo exactly that. */
  stateDir: string;
  fq?: { horizonNs: number; flowLimit: number };
}

export interface InstalledInterface {
  iface: string;
  mode: InterfaceMode;
  /** "shaping (fq)" or "policing (fq unavailable)". */
  modeDetail: string;
  /** The attached program was already there (agent restart): nothing was reloaded. */
  adopted: boolean;
  /** The maps were pinned already (a previous agent's): the kernel holds a state of its own. */
  pinsFound: boolean;
  /**
   * The program that was attached before and was replaced in place: one from another pacer build
   * (an upgrade, e.g. pins from before delay_hist). Maps, schedules and counters are kept.
   */
  replacedProgramId?: number;
  programId: number;
  egress: EgressObject;
  datapath: Datapath;
}

/** pacer's filter on an interface: what tcQuery/tcDetach take. */
export const filterOf = (o: Pick<InstallOptions, 'iface' | 'netns'>): TcFilterRef => ({ iface: o.iface, netns: o.netns, ...FILTER });

const pinRootOf = (o: Pick<InstallOptions, 'iface' | 'pinRoot'>) => o.pinRoot ?? join(PIN_BASE, o.iface);
const recordOf = (o: InstallOptions, what: string) => join(o.stateDir, `${o.iface}.${what}`);

export async function installInterface(o: InstallOptions): Promise<InstalledInterface> {
  requireBpffs();
  const pinRoot = pinRootOf(o);
  const fresh = !existsSync(join(pinRoot, 'class_config'));
  mkdirSync(pinRoot, { recursive: true });
  mkdirSync(o.stateDir, { recursive: true });
  // Pinned maps are reused by the load: schedules, configs and counters carry over.
  let egress: EgressObject;
  try {
    egress = EgressObject.load({ pinRoot });
  } catch (err) {
    if (fresh) rmSync(pinRoot, { recursive: true, force: true });
    throw err;
  }
  try {
    const programPin = join(pinRoot, EGRESS_PROGRAM);
    const attachedId = tcQuery(filterOf(o));
    const pinned = existsSync(programPin) ? BpfProgram.openPinned(programPin) : undefined;
    let adopted = false;
    let programId: number;
    // Adopt only this build's program (same tag): an older one would not feed maps this build
    // added (delay_hist), a silent half state. Replacing it is atomic and keeps every map.
    if (pinned && attachedId === pinned.id && pinned.tag === egress.program.tag) {
      adopted = true;
      programId = pinned.id;
    } else {
      if (tcHookCreate({ iface: o.iface, netns: o.netns }, 'egress')) writeFileSync(recordOf(o, 'clsact-created'), '');
      programId = tcAttach({ ...filterOf(o), program: egress.program, replace: true }).progId;
      if (pinned) rmSync(programPin);
      egress.program.pin(programPin);
    }
    pinned?.close();
    const target: QdiscTarget = { iface: o.iface, netns: o.netns };
    let mode: InterfaceMode = 'shaping';
    try {
      await setupFq(target, { horizonNs: o.fq?.horizonNs ?? 10_000_000_000, flowLimit: o.fq?.flowLimit ?? 100 }, { saveTo: recordOf(o, 'qdisc.json') });
    } catch (err) {
      if (!(err instanceof FqUnavailableError)) throw err;
      mode = 'policing';
    }
    // Recorded in the maps too, so `pacer dp status` tells operators without asking the agent.
    const settings = egress.settings.get(0)!; // an array entry: always there
    egress.settings.set(0, { ...settings, flags: mode === 'policing' ? settings.flags | SETTINGS_POLICING : settings.flags & ~SETTINGS_POLICING });
    const replacedProgramId = !adopted && attachedId !== undefined && attachedId !== programId ? attachedId : undefined;
    return { iface: o.iface, mode, modeDetail: mode === 'policing' ? POLICING_DETAIL : 'shaping (fq)', adopted, pinsFound: !fresh, replacedProgramId, programId, egress, datapath: new Datapath(egress) };
  } catch (err) {
    egress.close();
    // A failed first install leaves nothing behind; a failed re-install keeps what was enforcing.
    if (fresh) rmSync(pinRoot, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Removes what pacer installed on the interface: its tc filter, the clsact hook if pacer created
 * it, its pins, and puts the previous root qdisc back — if pacer's fq is still there. When someone
 * replaced it since (the agent then polices and leaves their qdisc alone), their qdisc stays too:
 * there is no fq of pacer's left to undo, and restoring the old root would undo their change.
 */
export async function uninstallInterface(o: InstallOptions): Promise<void> {
  tcDetach(filterOf(o));
  const clsact = recordOf(o, 'clsact-created');
  if (existsSync(clsact)) {
    tcHookDestroy({ iface: o.iface, netns: o.netns });
    rmSync(clsact);
  }
  const record = recordOf(o, 'qdisc.json');
  if (existsSync(record)) {
    const target = { iface: o.iface, netns: o.netns };
    if (fqPresence(await readRootQdisc(target)).fq) await restoreQdisc(target, { saveFrom: record });
    else rmSync(record);
  }
  rmSync(pinRootOf(o), { recursive: true, force: true });
}
