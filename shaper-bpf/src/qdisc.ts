/**
 * Qdisc set-up for EDT pacing: fq as root (mq + one fq per tx queue on multi-queue devices),
 * driven through iproute2's `tc -j`. These are rare operations (agent start and stop), never
 * per map update, so spawning tc is fine and keeps the kernel's own validation and messages.
 *
 * Planning is pure (planFq, planRestore); the functions that run tc read the device, plan,
 * apply, read again and verify. A failed set-up rolls the device back to what it was.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { run, runIn, type ExecResult } from './exec.js';

/** Where a device lives: netns is a name under /run/netns or a path; absent = our own netns. */
export interface QdiscTarget {
  iface: string;
  netns?: string;
}

/** One qdisc as `tc -j qdisc show` prints it (stats and refcnt left out: they are not config). */
export interface Qdisc {
  kind: string;
  handle: string;
  /** e.g. "1:3", or ":3" under a default mq whose handle is 0: */
  parent?: string;
  options: Record<string, unknown>;
}

/** The root qdisc and the qdiscs attached to its classes (for mq: one per tx queue, in queue order). */
export interface RootQdisc extends Omit<Qdisc, 'parent'> {
  children: Qdisc[];
}

/** An argument vector for tc, without the leading "tc". */
export type TcArgv = string[];

export interface FqOptions {
  /** Packets later than now + horizon are dropped by fq (horizon_drop). Rounded up to whole µs. */
  horizonNs: number;
  flowLimit: number;
  /**
   * The qdisc per queue. Always 'fq' in production. 'pfifo' exists only so that the kernel test
   * can exercise the mq plan on the development kernel, which has no sch_fq.
   */
  leafKind?: 'fq' | 'pfifo';
}

export interface FqPlanOptions extends FqOptions {
  iface: string;
  txQueues: number;
}

/** The device where this kernel has no sch_fq: pacer can police there, but not shape. */
export class FqUnavailableError extends Error {
  override name = 'FqUnavailableError';
  constructor(readonly iface: string, options?: ErrorOptions) {
    super(`fq qdisc is not available on this kernel (sch_fq missing): pacer can only police, not shape, on ${iface}`, options);
  }
}

export class NoSuchInterfaceError extends Error {
  override name = 'NoSuchInterfaceError';
  constructor(readonly target: QdiscTarget) {
    super(`no interface ${target.iface} in netns ${target.netns ?? '(the host network namespace)'}`);
  }
}

/** A tc (or ip) command that failed: which command, on which device, and what tc said. */
export class TcError extends Error {
  override name = 'TcError';
  constructor(readonly argv: readonly string[], readonly target: QdiscTarget, readonly result: ExecResult) {
    super(`\`${argv.join(' ')}\` failed on ${where(target)} (exit ${result.code}): ${result.stderr.trim() || '(no output)'}`);
  }
}

/** The root is something pacer could not put back after replacing it (htb with classes, for example). */
export class QdiscNotRestorableError extends Error {
  override name = 'QdiscNotRestorableError';
  constructor(readonly target: QdiscTarget, readonly root: RootQdisc) {
    super(
      `the root qdisc ${root.kind} ${root.handle} on ${where(target)} cannot be re-created by pacer once replaced; ` +
        'remove it yourself, or set up with force (restore then returns the device to the kernel default)',
    );
  }
}

function where(t: QdiscTarget): string {
  return t.netns === undefined ? t.iface : `${t.iface} in netns ${t.netns}`;
}

// ---------------------------------------------------------------- parsing (pure)

/** Parses `tc -j qdisc show dev X`. Null when the device has no qdisc at all (down, or lo). */
export function parseRootQdisc(json: string): RootQdisc | null {
  const list: unknown = JSON.parse(json.trim() === '' ? '[]' : json);
  if (!Array.isArray(list)) throw new Error(`tc -j qdisc show: expected an array, got ${json.slice(0, 80)}`);
  const all = list.map(toQdisc);
  const rootIndex = list.findIndex((q: { root?: unknown }) => q.root === true);
  const root = all[rootIndex];
  if (root === undefined) return null;
  // Children hang off the root's classes: parent "1:3" under root "1:", ":3" under a default
  // "0:" (tc omits a zero major). clsact/ingress ("ffff:fff1") never match.
  const major = handleMajor(root.handle);
  const children = all
    .filter((q, i) => i !== rootIndex && q.parent !== undefined && parentMajor(q.parent) === major)
    .sort((a, b) => parentMinor(a.parent!) - parentMinor(b.parent!));
  return { kind: root.kind, handle: root.handle, options: root.options, children };
}

function toQdisc(raw: unknown): Qdisc {
  const q = raw as Record<string, unknown>;
  if (typeof q.kind !== 'string' || typeof q.handle !== 'string') {
    throw new Error(`tc -j qdisc show: entry without kind/handle: ${JSON.stringify(raw)}`);
  }
  const options = typeof q.options === 'object' && q.options !== null ? (q.options as Record<string, unknown>) : {};
  return { kind: q.kind, handle: q.handle, ...(typeof q.parent === 'string' ? { parent: q.parent } : {}), options };
}

const handleMajor = (h: string): number => parseInt(h.split(':')[0] || '0', 16);
const parentMajor = handleMajor;
const parentMinor = (p: string): number => parseInt(p.split(':')[1] || '0', 16);

/** The kernel's own choice: every qdisc in the tree has handle 0: (noqueue, pfifo_fast, default mq). */
export function isKernelDefault(root: RootQdisc | null): boolean {
  return root === null || (root.handle === '0:' && root.children.every((c) => c.handle === '0:'));
}

/** Does a tree pace with fq? `found` says what is there instead, for people ("pfifo", "mq with pfifo on tx queue 2"). */
export type FqPresence = { fq: true } | { fq: false; found: string };

/**
 * fq at the root, or mq with fq on every tx queue. One queue without fq is enough to say no: its
 * packets leave unpaced, so long horizons would let that queue's share of a class through at
 * line rate. fq's options are not compared: any fq honours the departure times.
 */
export function fqPresence(root: RootQdisc | null): FqPresence {
  if (root === null) return { fq: false, found: 'no qdisc' };
  if (root.kind === 'fq') return { fq: true };
  if (root.kind !== 'mq') return { fq: false, found: root.kind };
  const others = root.children.filter((c) => c.kind !== 'fq');
  if (root.children.length > 0 && others.length === 0) return { fq: true };
  if (others.length === 0) return { fq: false, found: 'mq without per-queue qdiscs' };
  const queues = others.map((c) => parentMinor(c.parent ?? ':0'));
  const kinds = [...new Set(others.map((c) => c.kind))].join('/');
  return { fq: false, found: `mq with ${kinds} on tx queue${queues.length > 1 ? 's' : ''} ${queues.join(', ')}` };
}

// ---------------------------------------------------------------- planning (pure)

/** The tc commands that turn `current` into pacer's tree; [] when it already is exactly that. */
export function planFq(current: RootQdisc | null, o: FqPlanOptions): TcArgv[] {
  const leaf = leafSpec(o);
  const dev = ['qdisc', 'replace', 'dev', o.iface];
  if (o.txQueues <= 1) {
    // `replace root fq` changes an existing non-default fq in place (queued packets stay).
    return current !== null && leaf.matches(current) ? [] : [[...dev, 'root', ...leaf.argv]];
  }
  // mq's children can only be addressed under a non-zero handle ("parent :1" is not found),
  // so a default mq (0:) is replaced too.
  const mq = current !== null && current.kind === 'mq' && current.handle !== '0:' ? current : undefined;
  const handle = mq?.handle ?? freeHandle(current);
  const steps: TcArgv[] = mq === undefined ? [[...dev, 'root', 'handle', handle, 'mq']] : [];
  for (let q = 1; q <= o.txQueues; q++) {
    const parent = `${handle}${q.toString(16)}`; // tc reads and prints minors in hex
    const child = mq?.children.find((c) => c.parent === parent);
    if (child === undefined || !leaf.matches(child)) steps.push([...dev, 'parent', parent, ...leaf.argv]);
  }
  return steps;
}

/** The per-queue qdisc: its tc arguments, and whether an existing qdisc already is exactly that. */
function leafSpec(o: FqOptions): { argv: TcArgv; matches(q: Omit<Qdisc, 'parent'>): boolean } {
  if (!Number.isSafeInteger(o.flowLimit) || o.flowLimit < 1) throw new RangeError(`flowLimit must be a positive integer, got ${o.flowLimit}`);
  // Rounded up so fq never drops a packet the BPF program accepted within its own horizon.
  const horizonUs = Math.ceil(o.horizonNs / 1000);
  if (!(horizonUs >= 1 && horizonUs <= 0xffff_ffff)) throw new RangeError(`horizonNs out of range: ${o.horizonNs}`);
  if ((o.leafKind ?? 'fq') === 'pfifo') return { argv: ['pfifo'], matches: (q) => q.kind === 'pfifo' };
  return {
    argv: ['fq', 'horizon', `${horizonUs}us`, 'horizon_drop', 'flow_limit', String(o.flowLimit)],
    // tc -j prints horizon as a bare number of µs, and horizon_drop as a key whose value is null.
    // Options pacer does not set (limit, quantum, …) are the operator's and are not compared.
    matches: (q) =>
      q.kind === 'fq' && q.options.horizon === horizonUs && 'horizon_drop' in q.options && q.options.flow_limit === o.flowLimit,
  };
}

/** The lowest "N:" no qdisc in the tree uses: replacing onto a used handle changes that qdisc instead. */
function freeHandle(current: RootQdisc | null): string {
  const used = new Set([current?.handle, ...(current?.children ?? []).map((c) => c.handle)]);
  for (let major = 1; ; major++) if (!used.has(`${major.toString(16)}:`)) return `${major.toString(16)}:`;
}

/** tc arguments that re-create a qdisc's options, or undefined when pacer does not know how. */
function optionArgs(q: Omit<Qdisc, 'parent'>): TcArgv | undefined {
  const o = q.options;
  switch (q.kind) {
    case 'pfifo':
    case 'bfifo':
    case 'pfifo_head_drop':
      if (o.limit === undefined) return [];
      return typeof o.limit === 'number' ? ['limit', String(o.limit)] : undefined;
    case 'pfifo_fast': // priomap and bands are fixed
    case 'mq':
      return [];
    case 'fq':
      return fqOptionArgs(o);
    default:
      return undefined;
  }
}

// fq's JSON keys (iproute2 q_fq.c) and how to say them back to tc. Times are printed as bare
// numbers: horizon, refill_delay and ce_threshold in µs, timer_slack in ns.
const FQ_ARGS: Record<string, (v: unknown) => TcArgv> = {
  limit: (v) => ['limit', String(v)],
  flow_limit: (v) => ['flow_limit', String(v)],
  buckets: (v) => ['buckets', String(v)],
  orphan_mask: (v) => ['orphan_mask', String(v)],
  quantum: (v) => ['quantum', String(v)],
  initial_quantum: (v) => ['initial_quantum', String(v)],
  refill_delay: (v) => ['refill_delay', `${String(v)}us`],
  ce_threshold: (v) => ['ce_threshold', `${String(v)}us`],
  timer_slack: (v) => ['timer_slack', `${String(v)}ns`],
  horizon: (v) => ['horizon', `${String(v)}us`],
  horizon_drop: () => ['horizon_drop'],
  horizon_cap: () => ['horizon_cap'],
  pacing: (v) => (v === false ? ['nopacing'] : []),
};

function fqOptionArgs(o: Record<string, unknown>): TcArgv | undefined {
  const args: TcArgv = [];
  for (const [key, value] of Object.entries(o)) {
    const say = FQ_ARGS[key];
    if (say === undefined) return undefined; // maxrate, priomap, …: not worth guessing their units
    args.push(...say(value));
  }
  return args;
}

/** Could planRestore re-create this tree exactly? */
export function isRestorable(root: RootQdisc | null): boolean {
  if (isKernelDefault(root)) return true;
  if (root!.kind === 'noqueue' || optionArgs(root!) === undefined) return false;
  return root!.kind !== 'mq' ? true : root!.children.every((c) => c.handle === '0:' || optionArgs(c) !== undefined);
}

/**
 * Same configuration, handles included, option key order ignored. A default child (handle 0:)
 * counts only as "the kernel's choice": its kind follows net.core.default_qdisc, not pacer.
 */
export function sameTree(a: RootQdisc | null, b: RootQdisc | null): boolean {
  const essence = (r: RootQdisc | null) =>
    r && { ...r, children: r.children.map((c) => (c.handle === '0:' ? { handle: c.handle, parent: c.parent } : c)) };
  return canonical(essence(a)) === canonical(essence(b));
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}

/**
 * The tc commands that turn `current` back into `saved`. A default is reached by deleting the
 * root (the kernel then attaches its own). Anything else is deleted and added afresh with its
 * old handles: a brief window on the kernel default, but no handle collisions and no "replace"
 * turning into "change" on a qdisc that happens to hold the handle.
 */
export function planRestore(current: RootQdisc | null, saved: RootQdisc | null, iface: string): TcArgv[] {
  if (isKernelDefault(saved)) return isKernelDefault(current) ? [] : [['qdisc', 'del', 'dev', iface, 'root']];
  const target = saved!;
  if (sameTree(current, target)) return [];
  if (!isRestorable(target)) throw new Error(`cannot re-create ${target.kind} ${target.handle} on ${iface}`);
  const steps: TcArgv[] = isKernelDefault(current) ? [] : [['qdisc', 'del', 'dev', iface, 'root']];
  steps.push(['qdisc', 'add', 'dev', iface, 'root', 'handle', target.handle, target.kind, ...optionArgs(target)!]);
  if (target.kind === 'mq') {
    for (const c of target.children) {
      // A fresh mq already has default children; only non-default ones need re-creating.
      if (c.handle === '0:' || c.parent === undefined) continue;
      steps.push(['qdisc', 'replace', 'dev', iface, 'parent', c.parent, 'handle', c.handle, c.kind, ...optionArgs(c)!]);
    }
  }
  return steps;
}

// ---------------------------------------------------------------- running tc

async function tc(target: QdiscTarget, argv: readonly string[]): Promise<ExecResult> {
  const result = await runIn(target.netns, 'tc', argv);
  if (result.code === 0) return result;
  if (/Cannot find device/.test(result.stderr)) throw new NoSuchInterfaceError(target);
  throw new TcError(['tc', ...argv], target, result);
}

export async function readRootQdisc(target: QdiscTarget): Promise<RootQdisc | null> {
  return parseRootQdisc((await tc(target, ['-j', 'qdisc', 'show', 'dev', target.iface])).stdout);
}

/** num_tx_queues from `ip -d -j link show`: decides between a plain fq root and mq + fq. */
export async function readTxQueues(target: QdiscTarget): Promise<number> {
  const argv = ['-d', '-j', 'link', 'show', 'dev', target.iface];
  const result = await runIn(target.netns, 'ip', argv);
  if (result.code !== 0) {
    if (/Device ".*" does not exist|Cannot find device/.test(result.stderr)) throw new NoSuchInterfaceError(target);
    throw new TcError(['ip', ...argv], target, result);
  }
  const [link] = JSON.parse(result.stdout) as Array<{ num_tx_queues?: unknown }>;
  const n = link?.num_tx_queues;
  if (typeof n !== 'number' || n < 1) throw new Error(`ip -d -j link show dev ${target.iface}: no num_tx_queues`);
  return n;
}

/** Applies steps in order; on a failure, puts `before` back and rethrows (both errors if that fails too). */
async function applyOrRollBack(target: QdiscTarget, steps: TcArgv[], before: RootQdisc | null): Promise<void> {
  try {
    for (const step of steps) await tc(target, step);
  } catch (error) {
    try {
      for (const step of planRestore(await readRootQdisc(target), before, target.iface)) await tc(target, step);
    } catch (rollbackError) {
      throw new AggregateError([error, rollbackError], `${(error as Error).message}; rolling back also failed: ${(rollbackError as Error).message}`);
    }
    throw error;
  }
}

// ---------------------------------------------------------------- the record of the previous root

/** What setupFq found before it changed anything; restoreQdisc puts it back. */
export interface QdiscRecord {
  version: 1;
  iface: string;
  netns?: string;
  savedAt: string;
  /** False when set up with force over something pacer cannot re-create: restore goes to the default. */
  restorable: boolean;
  root: RootQdisc | null;
}

async function readRecord(path: string): Promise<QdiscRecord | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as QdiscRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Writes the record only if none exists: the first set-up saw the true original, and a later
 * one would only see pacer's own fq. Atomic and exclusive: the content goes to a temporary file
 * (fsynced), then link() publishes it under the final name and fails if that name exists.
 */
async function createRecordOnce(path: string, record: QdiscRecord): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const file = await open(tmp, 'wx', 0o600);
  try {
    await file.writeFile(`${JSON.stringify(record, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(tmp);
  }
}

async function removeRecord(path: string): Promise<void> {
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

function checkRecordTarget(record: QdiscRecord, target: QdiscTarget, path: string): void {
  if (record.iface !== target.iface || record.netns !== target.netns) {
    throw new Error(`${path} records the qdisc of ${where(record)}, not of ${where(target)}`);
  }
}

// ---------------------------------------------------------------- the operations

export interface SetupResult {
  /** The tc commands run; [] when the device already had pacer's tree. */
  applied: TcArgv[];
  /** True when this call wrote the record (it saw the original root). */
  recorded: boolean;
}

/**
 * Makes fq (or mq + fq per tx queue) the root of target. Records the previous root in saveTo
 * the first time. On any failure the device is rolled back to what it was before this call,
 * and a record this call wrote is removed again. Throws FqUnavailableError when sch_fq is missing.
 */
export async function setupFq(
  target: QdiscTarget,
  options: FqOptions,
  { saveTo, force = false }: { saveTo: string; force?: boolean },
): Promise<SetupResult> {
  const txQueues = await readTxQueues(target);
  const before = await readRootQdisc(target);
  const steps = planFq(before, { ...options, iface: target.iface, txQueues });

  const existing = await readRecord(saveTo);
  if (existing !== undefined) checkRecordTarget(existing, target, saveTo);
  let recorded = false;
  if (existing === undefined && steps.length > 0) {
    const restorable = isRestorable(before);
    if (!restorable && !force) throw new QdiscNotRestorableError(target, before!);
    const record: QdiscRecord = {
      version: 1,
      iface: target.iface,
      ...(target.netns !== undefined ? { netns: target.netns } : {}),
      savedAt: new Date().toISOString(),
      restorable,
      root: before,
    };
    recorded = await createRecordOnce(saveTo, record);
  }

  try {
    await applyOrRollBack(target, steps, before);
    // Trust the kernel's view, not tc's exit code: the tree must now be exactly pacer's.
    const after = await readRootQdisc(target);
    if (planFq(after, { ...options, iface: target.iface, txQueues }).length > 0) {
      await applyOrRollBack(target, planRestore(after, before, target.iface), before);
      throw new Error(`after set-up, ${where(target)} shows ${JSON.stringify(after)}, not pacer's qdiscs`);
    }
  } catch (error) {
    if (recorded) await removeRecord(saveTo);
    const unknownFq = error instanceof TcError && error.argv.includes('fq') && /Specified qdisc kind is unknown/.test(error.result.stderr);
    throw unknownFq ? new FqUnavailableError(target.iface, { cause: error }) : error;
  }
  return { applied: steps, recorded };
}

/**
 * Puts back the root recorded by setupFq, then deletes the record. Without a record there is
 * nothing of pacer's to undo, so it does nothing (idempotent).
 */
export async function restoreQdisc(target: QdiscTarget, { saveFrom }: { saveFrom: string }): Promise<{ applied: TcArgv[] }> {
  const record = await readRecord(saveFrom);
  if (record === undefined) return { applied: [] };
  checkRecordTarget(record, target, saveFrom);
  const goal = record.restorable ? record.root : null; // forced over an unrestorable root: the default
  const current = await readRootQdisc(target);
  const steps = planRestore(current, goal, target.iface);
  await applyOrRollBack(target, steps, current);
  const after = await readRootQdisc(target);
  if (!(isKernelDefault(goal) ? isKernelDefault(after) : sameTree(after, goal))) {
    throw new Error(`after restore, ${where(target)} shows ${JSON.stringify(after)}, not the recorded ${JSON.stringify(goal)}`);
  }
  await removeRecord(saveFrom);
  return { applied: steps };
}

let fqProbe: Promise<boolean> | undefined;

/**
 * Does this kernel have sch_fq? Tried on the loopback of a throwaway network namespace, so no
 * real interface is touched; the answer is cached for the process (a failed probe is not).
 */
export function probeFq(): Promise<boolean> {
  fqProbe ??= probeQdisc(['root', 'fq']).catch((error: unknown) => {
    fqProbe = undefined;
    throw error;
  });
  return fqProbe;
}

/** Can this kernel add the clsact qdisc (the tc BPF hook)? Tried the same way as probeFq. */
export function probeClsact(): Promise<boolean> {
  return probeQdisc(['clsact']);
}

/**
 * Adds a qdisc (`tc qdisc add dev lo ...kind`) on the loopback of a throwaway network namespace:
 * true if the kernel has it, false if tc says the kind is unknown; any other failure throws.
 */
async function probeQdisc(kind: readonly string[]): Promise<boolean> {
  // The pid lets a sweep tell a leftover from a probe that is still running.
  const name = `pacer-probe-${process.pid}-${randomBytes(4).toString('hex')}`;
  const target = { iface: 'lo', netns: name };
  const added = await run('ip', ['netns', 'add', name]);
  if (added.code !== 0) throw new TcError(['ip', 'netns', 'add', name], target, added);
  try {
    const argv = ['qdisc', 'add', 'dev', 'lo', ...kind];
    const result = await runIn(name, 'tc', argv);
    if (result.code === 0) return true;
    if (/Specified qdisc kind is unknown/.test(result.stderr)) return false;
    throw new TcError(['tc', ...argv], target, result);
  } finally {
    await run('ip', ['netns', 'del', name]);
  }
}
