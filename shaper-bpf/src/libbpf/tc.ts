// Concern: tc clsact hooks and cls_bpf filters (direct-action) through libbpf's netlink
// helpers (bpf_tc_*). libbpf talks rtnetlink on a socket it opens in the CALLING THREAD's
// network namespace, so every function takes an optional `netns` path and runs inside it.
import { constants } from 'node:os';
import koffi from 'koffi';
import { BpfError, check } from './errors.js';
import { inNetns } from './netns.js';
import { lastErrno, lib, libcFns, TcHook, TcOpts } from './native.js';
import type { BpfProgram } from './program.js';

const { EEXIST, EINVAL, ENOENT, ENODEV } = constants.errno;

// enum bpf_tc_attach_point / bpf_tc_flags (libbpf.h)
const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;
// The kernel answers with EINVAL, not ENOENT, when the thing to look in is missing (measured on
// 6.18): deleting an absent clsact qdisc ("Cannot find specified qdisc"), and getting a filter
// at a priority that has no filters at all ("Cannot find specified filter chain"; a delete
// there says ENOENT). Our own arguments are validated first, so here EINVAL means "not there".
const EINVAL_NO_QDISC = constants.errno.EINVAL;
const EINVAL_NO_FILTER = constants.errno.EINVAL;

export type TcDirection = 'ingress' | 'egress';

export interface TcTarget {
  /** Interface name (resolved inside `netns`) or ifindex. */
  iface: string | number;
  /** Network namespace path, e.g. /run/netns/NAME; default: the caller's. */
  netns?: string;
}

export interface TcFilterRef extends TcTarget {
  direction: TcDirection;
  handle: number;
  priority: number;
}

export interface TcAttachOptions extends TcTarget {
  program: BpfProgram;
  direction: TcDirection;
  /** Filter handle; 0 lets the kernel choose. */
  handle?: number;
  /** Filter priority; 0 lets the kernel choose. */
  priority?: number;
  /** Replace a filter already at handle/priority (needs both set) instead of failing with EEXIST. */
  replace?: boolean;
}

export interface TcAttachment {
  ifindex: number;
  handle: number;
  priority: number;
  progId: number;
}

interface Resolved {
  ifindex: number;
  label: string;
}

/** Resolves an interface in the current thread's namespace; unknown names are a clear BpfError. */
function resolve(target: TcTarget, operation: string): Resolved {
  const where = target.netns ? ` in netns ${target.netns}` : '';
  if (typeof target.iface === 'number') return { ifindex: target.iface, label: `ifindex ${target.iface}${where}` };
  const ifindex = libcFns.if_nametoindex(target.iface) as number;
  if (ifindex === 0) {
    throw new BpfError({
      operation,
      target: `${target.iface}${where}`,
      errno: lastErrno() || ENODEV,
      detail: `there is no interface named "${target.iface}" in ${target.netns ? `network namespace ${target.netns}` : 'the current network namespace'}`,
    });
  }
  return { ifindex, label: `${target.iface} (ifindex ${ifindex})${where}` };
}

function hook(ifindex: number, attachPoint: number): Record<string, number> {
  return { sz: koffi.sizeof(TcHook), ifindex, attach_point: attachPoint, parent: 0 };
}

function point(direction: TcDirection): number {
  return direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

/** Creates the clsact qdisc on the interface. Returns false if it was already there (EEXIST). */
export function tcHookCreate(target: TcTarget, direction: TcDirection = 'egress'): boolean {
  return inNetns(target.netns, () => {
    const op = `create tc clsact hook (${direction})`;
    const { ifindex, label } = resolve(target, op);
    const ret = lib.bpf_tc_hook_create(hook(ifindex, point(direction))) as number;
    if (ret === -EEXIST) return false;
    check(ret, op, label);
    return true;
  });
}

/**
 * Without `direction` removes the clsact qdisc with all its filters (libbpf needs
 * INGRESS|EGRESS for that); with one direction, removes only that direction's filters and
 * leaves the qdisc. Returns false if there was nothing to remove.
 */
export function tcHookDestroy(target: TcTarget, direction?: TcDirection): boolean {
  return inNetns(target.netns, () => {
    const op = direction ? `remove tc ${direction} filters` : 'remove tc clsact qdisc';
    const { ifindex, label } = resolve(target, op);
    const ret = lib.bpf_tc_hook_destroy(hook(ifindex, direction ? point(direction) : BPF_TC_INGRESS | BPF_TC_EGRESS)) as number;
    if (ret === -ENOENT || ret === -EINVAL_NO_QDISC) return false;
    check(ret, op, label);
    return true;
  });
}

/** Attaches `program` as a direct-action cls_bpf filter. The clsact hook must exist (tcHookCreate). */
export function tcAttach(options: TcAttachOptions): TcAttachment {
  return inNetns(options.netns, () => {
    const op = `attach tc ${options.direction} program "${options.program.name}"`;
    const { ifindex, label } = resolve(options, op);
    const opts = {
      sz: koffi.sizeof(TcOpts),
      prog_fd: options.program.fd,
      flags: options.replace ? BPF_TC_F_REPLACE : 0,
      prog_id: 0,
      handle: options.handle ?? 0,
      priority: options.priority ?? 0,
    };
    const ret = lib.bpf_tc_attach(hook(ifindex, point(options.direction)), opts) as number;
    check(ret, op, label, () =>
      ret === -EINVAL ? `the kernel refused the filter; the usual cause is a missing clsact qdisc (call tcHookCreate first)` : '',
    );
    // libbpf reads back the filter (NLM_F_ECHO) and fills handle, priority and prog_id.
    return { ifindex, handle: opts.handle, priority: opts.priority, progId: opts.prog_id };
  });
}

function assertFilterRef(ref: TcFilterRef): void {
  // libbpf would answer EINVAL too, which tcQuery could not tell apart from "no filter chain".
  if (!(ref.handle > 0 && ref.priority > 0 && ref.priority <= 0xffff)) {
    throw new RangeError(`tc filter handle must be > 0 and priority 1..65535, got ${ref.handle}/${ref.priority}`);
  }
}

/** The id of the program in the filter at handle/priority, or undefined if there is none. */
export function tcQuery(ref: TcFilterRef): number | undefined {
  assertFilterRef(ref);
  return inNetns(ref.netns, () => {
    const op = `query tc ${ref.direction} filter ${ref.handle}/${ref.priority}`;
    const { ifindex, label } = resolve(ref, op);
    // libbpf rejects query/detach unless prog_fd, prog_id and flags are all 0 (EINVAL).
    const opts = { sz: koffi.sizeof(TcOpts), prog_fd: 0, flags: 0, prog_id: 0, handle: ref.handle, priority: ref.priority };
    const ret = lib.bpf_tc_query(hook(ifindex, point(ref.direction)), opts) as number;
    if (ret === -ENOENT || ret === -EINVAL_NO_FILTER) return undefined;
    check(ret, op, label);
    return opts.prog_id;
  });
}

/** Removes the filter at handle/priority. Returns false if there was none. */
export function tcDetach(ref: TcFilterRef): boolean {
  assertFilterRef(ref);
  return inNetns(ref.netns, () => {
    const op = `detach tc ${ref.direction} filter ${ref.handle}/${ref.priority}`;
    const { ifindex, label } = resolve(ref, op);
    const opts = { sz: koffi.sizeof(TcOpts), prog_fd: 0, flags: 0, prog_id: 0, handle: ref.handle, priority: ref.priority };
    const ret = lib.bpf_tc_detach(hook(ifindex, point(ref.direction)), opts) as number;
    if (ret === -ENOENT) return false;
    check(ret, op, label);
    return true;
  });
}

/** if_nametoindex inside `netns`; throws a BpfError (ENODEV) for an unknown name. */
export function interfaceIndex(iface: string, netns?: string): number {
  return inNetns(netns, () => resolve({ iface, netns }, 'resolve interface').ifindex);
}
