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
import { constants } from 'node:os';
import { EgressObject, EGRESS_PROGRAM } from './egress.js';
import { requireBpffs } from './bpffs.js';
import { Datapath, SETTINGS_POLICING } from './datapath.js';
import { BpfProgram, interfaceIndex, tcAttach, tcDetach, tcHookCreate, tcHookDestroy, tcQuery, type TcFilterRef } from './libbpf/index.js';
import { FqUnavailableError, fqPresence, readRootQdisc, restoreQdisc, setupFq, type QdiscTarget } from './qdisc.js';

const { ENODEV } = constants.errno;

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
  /** The interface's ifindex when the program was attached: a re-created interface has a new one. */
  ifindex: number;
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
    const ifindex = interfaceIndex(o.iface, o.netns);
    const mode = await setupQdisc(o, egress);
    const replacedProgramId = !adopted && attachedId !== undefined && attachedId !== programId ? attachedId : undefined;
    return { iface: o.iface, mode, modeDetail: modeDetailOf(mode), adopted, pinsFound: !fresh, replacedProgramId, programId, ifindex, egress, datapath: new Datapath(egress) };
  } catch (err) {
    egress.close();
    // A failed first install leaves nothing behind; a failed re-install keeps what was enforcing.
    if (fresh) rmSync(pinRoot, { recursive: true, force: true });
    throw err;
  }
}

const modeDetailOf = (mode: InterfaceMode) => (mode === 'policing' ? POLICING_DETAIL : 'shaping (fq)');

/**
 * fq as the root qdisc where sch_fq exists, else policing; the mode is recorded in the settings
 * map too, so `pacer dp status` tells operators without asking the agent.
 */
async function setupQdisc(o: InstallOptions, egress: EgressObject): Promise<InterfaceMode> {
  let mode: InterfaceMode = 'shaping';
  try {
    await setupFq({ iface: o.iface, netns: o.netns } satisfies QdiscTarget, { horizonNs: o.fq?.horizonNs ?? 10_000_000_000, flowLimit: o.fq?.flowLimit ?? 100 }, { saveTo: recordOf(o, 'qdisc.json') });
  } catch (err) {
    if (!(err instanceof FqUnavailableError)) throw err;
    mode = 'policing';
  }
  const settings = egress.settings.get(0)!; // an array entry: always there
  egress.settings.set(0, { ...settings, flags: mode === 'policing' ? settings.flags | SETTINGS_POLICING : settings.flags & ~SETTINGS_POLICING });
  return mode;
}

/** What ended pacer's enforcement on an interface while the agent ran (a lapse). */
export type LapseCause = 'filter deleted' | 'filter replaced' | 'clsact removed' | 'interface re-created';

export interface Reattached {
  cause: LapseCause;
  /** What happened, for logs and the host status: "pacer's tc filter on eth0 was deleted". */
  detail: string;
  programId: number;
  ifindex: number;
  /** Set when the interface was re-created: the qdisc was set up again, and this is the mode it gives. */
  mode?: InterfaceMode;
  modeDetail?: string;
}

/**
 * Is pacer's program still attached where installInterface put it? If not, attaches the SAME
 * program again (the agent's loaded object: same program id, same pinned maps, so every
 * schedule, t_last included, and every counter carries on) and says what had happened.
 * Undefined when it was attached. An interface deleted and re-created under the same name has a
 * new ifindex and none of pacer's qdiscs: it is installed again like a first install (clsact,
 * filter, fq where sch_fq exists, else policing), after dropping the records of the old
 * interface's qdiscs (they describe a device that is gone). Throws a BpfError (ENODEV) when no
 * interface of that name exists, and whatever the kernel refused otherwise.
 *
 * The kernel side (net/sched/cls_bpf.c): a filter holds a reference to its program
 * (cls_bpf_prog_from_efd takes it with bpf_prog_get_type_dev), and deleting the filter, the
 * clsact qdisc (sch_ingress.c clsact_destroy → tcf_block_put_ext) or the device (dev_shutdown)
 * drops only that reference (cls_bpf_free_parms → bpf_prog_put): the program lives on through
 * its pin and the agent's fd, so it can be attached again as it is.
 */
export async function reattachInterface(o: InstallOptions, installed: Pick<InstalledInterface, 'programId' | 'ifindex' | 'egress'>): Promise<Reattached | undefined> {
  const ifindex = interfaceIndex(o.iface, o.netns);
  const recreated = ifindex !== installed.ifindex;
  const attachedId = recreated ? undefined : tcQuery(filterOf(o));
  if (!recreated && attachedId === installed.programId) return undefined;
  if (recreated) {
    // The records describe the deleted device: restoring its old root onto the new one would be wrong.
    rmSync(recordOf(o, 'qdisc.json'), { force: true });
    rmSync(recordOf(o, 'clsact-created'), { force: true });
  }
  const clsactCreated = tcHookCreate({ iface: o.iface, netns: o.netns }, 'egress');
  if (clsactCreated) writeFileSync(recordOf(o, 'clsact-created'), '');
  const programId = attachSameProgram(o, installed);
  const on = `${o.iface}${o.netns ? ` (netns ${o.netns})` : ''}`;
  if (recreated) {
    const mode = await setupQdisc(o, installed.egress);
    return { cause: 'interface re-created', detail: `${on} was deleted and re-created (ifindex ${installed.ifindex} → ${ifindex})`, programId, ifindex, mode, modeDetail: modeDetailOf(mode) };
  }
  if (attachedId !== undefined) return { cause: 'filter replaced', detail: `pacer's tc filter on ${on} was replaced by program ${attachedId}`, programId, ifindex };
  if (clsactCreated) return { cause: 'clsact removed', detail: `the clsact qdisc of ${on} was removed (with pacer's tc filter)`, programId, ifindex };
  return { cause: 'filter deleted', detail: `pacer's tc filter on ${on} was deleted`, programId, ifindex };
}

/**
 * Pins again what was unpinned under the interface's pin root (files removed by hand, or the whole
 * directory): the maps and the attached program live on while pacer runs, so enforcement never
 * lapsed, but a restarted agent would not find them to adopt (it would start a fresh state) and
 * `pacer dp` would say "not installed". Returns what was pinned again (empty: nothing was missing).
 */
export function repinInterface(o: InstallOptions, installed: Pick<InstalledInterface, 'programId' | 'egress'>): string[] {
  const repinned = installed.egress.repinMaps();
  const programPin = join(pinRootOf(o), EGRESS_PROGRAM);
  if (!existsSync(programPin)) {
    const own = installed.egress.program.id === installed.programId;
    const program = own ? installed.egress.program : BpfProgram.openById(installed.programId);
    try {
      program.pin(programPin);
    } finally {
      if (!own) program.close();
    }
    repinned.push(EGRESS_PROGRAM);
  }
  return repinned;
}

/**
 * Attaches the program that was attached: the pinned one when the install adopted it (the agent's
 * own load of the object is another program with the same code and maps), else the agent's own.
 * Either way the id stays, and a dashboard or `bpftool` sees the same program again.
 */
function attachSameProgram(o: InstallOptions, installed: Pick<InstalledInterface, 'programId' | 'egress'>): number {
  const programPin = join(pinRootOf(o), EGRESS_PROGRAM);
  const pinned = existsSync(programPin) ? BpfProgram.openPinned(programPin) : undefined;
  try {
    const program = pinned?.id === installed.programId ? pinned : installed.egress.program;
    const progId = tcAttach({ ...filterOf(o), program, replace: true }).progId;
    if (program !== pinned) {
      // The pin must name what is attached, so that the next agent adopts it.
      if (pinned) rmSync(programPin);
      program.pin(programPin);
    }
    return progId;
  } finally {
    pinned?.close();
  }
}

function interfaceExists(o: Pick<InstallOptions, 'iface' | 'netns'>): boolean {
  try {
    interfaceIndex(o.iface, o.netns);
    return true;
  } catch (err) {
    if ((err as { errno?: number }).errno === ENODEV) return false;
    throw err;
  }
}

/**
 * Removes what pacer installed on the interface: its tc filter, the clsact hook if pacer created
 * it, its pins, and puts the previous root qdisc back — if pacer's fq is still there. When someone
 * replaced it since (the agent then polices and leaves their qdisc alone), their qdisc stays too:
 * there is no fq of pacer's left to undo, and restoring the old root would undo their change.
 * For an interface that no longer exists only the pins and records are removed.
 */
export async function uninstallInterface(o: InstallOptions): Promise<string[]> {
  const removed: string[] = [];
  const on = `${o.iface}${o.netns ? ` (netns ${o.netns})` : ''}`;
  const pinRoot = pinRootOf(o);
  const dropPins = () => {
    if (existsSync(pinRoot)) removed.push(`pins under ${pinRoot} (maps and program)`);
    rmSync(pinRoot, { recursive: true, force: true });
  };
  if (!interfaceExists(o)) {
    // The device took its qdiscs and filters with it (unregister_netdevice_many → dev_shutdown):
    // there is nothing to detach or restore, only pacer's records and pins to drop.
    for (const what of ['clsact-created', 'qdisc.json']) rmSync(recordOf(o, what), { force: true });
    removed.push(`nothing on ${on}: there is no such interface now (its records dropped)`);
    dropPins();
    return removed;
  }
  if (tcQuery(filterOf(o)) !== undefined) removed.push(`pacer's tc filter on ${on}`);
  tcDetach(filterOf(o));
  const clsact = recordOf(o, 'clsact-created');
  if (existsSync(clsact)) {
    tcHookDestroy({ iface: o.iface, netns: o.netns });
    rmSync(clsact);
    removed.push(`the clsact qdisc on ${on} (pacer had created it)`);
  }
  const record = recordOf(o, 'qdisc.json');
  if (existsSync(record)) {
    const target = { iface: o.iface, netns: o.netns };
    if (fqPresence(await readRootQdisc(target)).fq) {
      await restoreQdisc(target, { saveFrom: record });
      const root = await readRootQdisc(target);
      removed.push(`pacer's fq on ${on}: the root qdisc is ${root ? root.kind : 'the kernel default'} again, as before pacer`);
    } else {
      rmSync(record);
      removed.push(`nothing of the root qdisc on ${on}: pacer's fq had been replaced since, the replacement stays`);
    }
  }
  dropPins();
  return removed;
}
