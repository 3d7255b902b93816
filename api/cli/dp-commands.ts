/**
 * `pacer dp status|classes|stats`: what this host's data plane enforces, read from the pinned
 * maps under /sys/fs/bpf/pacer/<iface>/, without the API or the agent. Needs root.
 *
 * (The `pacer` command is the composition root of every part, so this file may use shaper-bpf.)
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { formatRate } from '../contract/units.js';
import { EgressObject, PinsMissingError } from '../../shaper-bpf/src/egress.js';
import { Datapath, delayQuantile, SETTINGS_POLICING, type DelayHistogram, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { PIN_BASE, POLICING_DETAIL } from '../../shaper-bpf/src/interface.js';
import { requireBpffs } from '../../shaper-bpf/src/bpffs.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import { readPacedSockets } from '../../shaper-bpf/src/sockops.js';
import { TCP_PIN_DIR } from '../../controller/datapath/tcp-tuner.js';
import { DEFAULT_STATE_DIR, readSnapshotNames } from '../../controller/reconciler/snapshot-names.js';
import { CliError } from './client.js';
import { NONE, humanDuration, out, printJson, run, table } from './output.js';

interface DpOptions {
  iface?: string;
  json?: boolean;
  pinBase: string;
  stateDir: string;
}

interface InterfaceView {
  iface: string;
  mode: string;
  state: ShaperState;
  stats: ReturnType<Datapath['stats']>;
  /** class id → its queueing-delay histogram. */
  delays: Map<number, DelayHistogram>;
  /** class id → TCP sockets sock_ops caps that are sending now; undefined when sock_ops is not installed. */
  pacedSockets?: Map<number, number>;
  /** class id → name, from the agent's snapshot (the maps hold ids only); undefined without a readable snapshot. */
  names?: ReadonlyMap<number, string>;
  /** Why some or all names are unknown, for one line on stderr. */
  namesNote?: string;
}

/** Interfaces with pacer's pins. Reading never creates pins: a directory without them is skipped. */
function interfaces(o: DpOptions): string[] {
  requireBpffs();
  if (!existsSync(o.pinBase)) return [];
  const all = readdirSync(o.pinBase).filter((d) => existsSync(join(o.pinBase, d, 'class_config')));
  if (o.iface === undefined) return all.sort();
  if (!all.includes(o.iface)) throw new CliError(`pacer is not installed on ${o.iface}: no pinned maps in ${join(o.pinBase, o.iface)}`);
  return [o.iface];
}

function read(o: DpOptions): InterfaceView[] {
  const pacedSockets = readPacedSockets(join(o.pinBase, TCP_PIN_DIR));
  return interfaces(o).map((iface) => {
    let egress: EgressObject;
    try {
      // Reading never creates pins: maps pinned by an older pacer are an error that says how to upgrade.
      egress = EgressObject.load({ pinRoot: join(o.pinBase, iface), requirePinned: true });
    } catch (err) {
      if (err instanceof PinsMissingError) throw new CliError(`${iface}: ${err.message}`);
      throw err;
    }
    try {
      const dp = new Datapath(egress);
      const state = dp.read();
      const mode = state.settings.flags & SETTINGS_POLICING ? POLICING_DETAIL : 'shaping';
      const { names, note } = readSnapshotNames(o.stateDir, iface);
      return { iface, mode, state, stats: dp.stats(), delays: dp.delayHistograms(), pacedSockets, names, namesNote: note };
    } finally {
      egress.close();
    }
  });
}

function selectorsOf(state: ShaperState, id: number): string {
  const list = [
    ...[...state.marks].filter(([, c]) => c === id).map(([m]) => `mark ${m}`),
    ...[...state.cgroups].filter(([, c]) => c === id).map(([g]) => `cgroup#${g}`),
    ...[...state.dst4, ...state.dst6].filter(([, c]) => c === id).map(([p]) => p),
    ...(state.settings.default_class === id ? ['default'] : []),
  ];
  return list.length === 0 ? NONE : list.length > 3 ? `${list.slice(0, 3).join(', ')} +${list.length - 3} more` : list.join(', ');
}

const meanDelay = (s: ClassStats) => (s.delayed === 0 ? NONE : humanDuration(s.delay_ns / s.delayed));

/**
 * A delay quantile as the bound of its histogram bucket (delay-hist.ts), rounded up so that a bound
 * never prints below itself: "<230µs" means the quantile is below 230 µs and within 19.1% of it;
 * "<1.03µs" includes packets not delayed; ">=17.2s" is the overflow bucket.
 */
export function formatQuantile(h: DelayHistogram | undefined, q: number): string {
  const bound = h && delayQuantile(h, q);
  if (bound === undefined) return NONE;
  return bound === Infinity ? `>=${humanDuration(h!.buckets[h!.buckets.length - 1]!.lowerNs, 'up')}` : `<${humanDuration(bound, 'up')}`;
}

/** The NAME cell: only when some interface's names are known (else the table shows ids only). */
const nameColumn = (views: InterfaceView[]) => views.some((v) => v.names !== undefined);
const nameOf = (v: InterfaceView, id: number) => v.names?.get(id) ?? NONE;

/** Names as JSON: id → name, or null without a readable snapshot. */
const namesJson = (v: InterfaceView) => (v.names === undefined ? null : Object.fromEntries(v.names));

/** One line per interface whose class names are not all known, saying where they come from. */
function noteUnknownNames(views: InterfaceView[]): void {
  for (const v of views) {
    if (v.namesNote === undefined || v.state.classes.size === 0) continue;
    const hint = v.names === undefined ? "; names come from the agent's snapshots: pass its --state-dir as --state-dir" : '';
    process.stderr.write(`${v.iface}: class names unknown: ${v.namesNote}${hint}\n`);
  }
}

/** A table of one row per class of each interface: IFACE, CLASS-ID, NAME (when known), then `rest`. */
function classTable(views: InterfaceView[], head: string[], ids: (v: InterfaceView) => Iterable<number>, rest: (v: InterfaceView, id: number) => Array<string | number>): string {
  const named = nameColumn(views);
  return table(
    ['IFACE', 'CLASS-ID', ...(named ? ['NAME'] : []), ...head],
    views.flatMap((v) => [...ids(v)].map((id) => [v.iface, id, ...(named ? [nameOf(v, id)] : []), ...rest(v, id)])),
  );
}

/** JSON of a histogram: total, p50/p99 as bucket upper bounds in ns (null: overflow), and the non-empty buckets. */
const delaysJson = (h: DelayHistogram) => {
  const ns = (v: number | undefined) => (v === undefined || v === Infinity ? null : v);
  return {
    total: h.total,
    p50Ns: ns(delayQuantile(h, 0.5)),
    p99Ns: ns(delayQuantile(h, 0.99)),
    buckets: h.buckets.filter((b) => b.count > 0).map((b) => ({ lowerNs: b.lowerNs, upperNs: ns(b.upperNs), count: b.count })),
  };
};

function withGlobal(cmd: Command): Command {
  return cmd
    .option('--iface <name>', 'only this interface')
    .option('--json', 'print JSON')
    .option('--pin-base <dir>', 'where pacer pins its maps', PIN_BASE)
    .addOption(new Option('--state-dir <dir>', "the agent's --state-dir: class names come from its snapshots (the maps hold ids only)").env('PACER_STATE_DIR').default(DEFAULT_STATE_DIR));
}

const jsonReady = (v: InterfaceView) => ({
  iface: v.iface,
  mode: v.mode,
  classes: Object.fromEntries(v.state.classes),
  classNames: namesJson(v),
  marks: Object.fromEntries(v.state.marks),
  cgroups: Object.fromEntries([...v.state.cgroups].map(([k, c]) => [String(k), c])),
  dst4: Object.fromEntries(v.state.dst4),
  dst6: Object.fromEntries(v.state.dst6),
  settings: v.state.settings,
  stats: Object.fromEntries(v.stats.classes),
  unclassified: v.stats.unclassified,
  pacedSockets: v.pacedSockets === undefined ? null : Object.fromEntries(v.pacedSockets),
  unpacedTcp: unpacedNotes(v).map((n) => n.classId),
});

/**
 * Classes policed without a socket cap (controller/datapath/unpaced-tcp.ts has the agent's rule, over
 * one check interval): on a policing interface, the policer has dropped packets of the class and no
 * TCP socket of it is paced now. From one read, so the drops may be old: the agent's status and log
 * say whether it is happening now.
 */
function unpacedNotes(v: InterfaceView): Array<{ classId: number; text: string }> {
  if (!(v.state.settings.flags & SETTINGS_POLICING)) return [];
  return [...v.stats.classes]
    .filter(([id, s]) => s.horizon_drops > 0 && (v.pacedSockets?.get(id) ?? 0) === 0)
    .map(([id, s]) => ({
      classId: id,
      text:
        `${v.iface} class ${id}: policed without a socket cap: ${s.horizon_drops} horizon drops in total and no TCP socket of the class is paced now` +
        (v.pacedSockets === undefined ? ' (sock_ops is not installed)' : '') +
        `. A local TCP sender that sock_ops does not see gets far less than the rate. Fix: run the agent without --cgroup-root (sock_ops then covers every local socket) or the senders below its --cgroup-root, or install sch_fq. UDP above the rate is dropped as configured and also counts here.`,
    }));
}

/** "3" busy capped sockets, "0", or "off" without sock_ops; "-" on a shaping interface (fq paces). */
function pacedColumn(v: InterfaceView, id: number): string | number {
  if (!(v.state.settings.flags & SETTINGS_POLICING)) return NONE;
  return v.pacedSockets === undefined ? 'off' : (v.pacedSockets.get(id) ?? 0);
}

export function dpCommand(): Command {
  const dp = new Command('dp').description("read this host's data plane from its pinned BPF maps (root; no API needed)");

  withGlobal(dp.command('status').description('per interface: mode, classes, selectors, unclassified traffic')).action(
    run(async (o: DpOptions) => {
      const views = read(o);
      if (o.json) return printJson(views.map(jsonReady));
      if (views.length === 0) return void process.stderr.write(`pacer is not installed on any interface (no pins under ${o.pinBase})\n`);
      out(
        table(
          ['IFACE', 'MODE', 'CLASSES', 'SELECTORS', 'UNCLASSIFIED-PACKETS'],
          views.map((v) => [v.iface, v.mode, v.state.classes.size, v.state.marks.size + v.state.cgroups.size + v.state.dst4.size + v.state.dst6.size, v.stats.unclassified.unclassified_packets]),
        ),
      );
    }),
  );

  withGlobal(dp.command('classes').description('the classes each interface enforces, as the kernel holds them')).action(
    run(async (o: DpOptions) => {
      const views = read(o);
      if (o.json) return printJson(views.map(jsonReady));
      out(
        classTable(
          views,
          ['RATE', 'BURST', 'HORIZON', 'ECN', 'PARENT', 'SELECTORS', 'TCP-PACED'],
          (v) => v.state.classes.keys(),
          (v, id) => {
            const c = v.state.classes.get(id)!;
            return [
              formatRate(c.rate_bps),
              humanDuration(c.burst_ns),
              humanDuration(c.horizon_ns),
              c.ecn_ns === 0 ? NONE : humanDuration(c.ecn_ns),
              c.parent_id === 0 ? NONE : c.parent_id,
              selectorsOf(v.state, id),
              pacedColumn(v, id),
            ];
          },
        ),
      );
      noteUnknownNames(views);
      for (const v of views) for (const n of unpacedNotes(v)) process.stderr.write(`warning: ${n.text}\n`);
    }),
  );

  withGlobal(dp.command('stats').description('per-class counters, summed over CPUs, and queueing-delay percentiles (p50/p99: the upper bound of the histogram bucket)')).action(
    run(async (o: DpOptions) => {
      const views = read(o);
      if (o.json) {
        return printJson(
          views.map((v) => ({
            iface: v.iface,
            mode: v.mode,
            classNames: namesJson(v),
            stats: Object.fromEntries(v.stats.classes),
            delays: Object.fromEntries([...v.delays].map(([id, h]) => [id, delaysJson(h)])),
            unclassified: v.stats.unclassified,
          })),
        );
      }
      out(
        classTable(
          views,
          ['PACKETS', 'BYTES', 'DELAYED', 'MEAN-DELAY', 'P50-DELAY', 'P99-DELAY', 'HORIZON-DROPS', 'CE-MARKS'],
          (v) => v.stats.classes.keys(),
          (v, id) => {
            const s = v.stats.classes.get(id)!;
            return [s.packets, s.bytes, s.delayed, meanDelay(s), formatQuantile(v.delays.get(id), 0.5), formatQuantile(v.delays.get(id), 0.99), s.horizon_drops, s.ce_marks];
          },
        ),
      );
      noteUnknownNames(views);
    }),
  );
  return dp;
}
