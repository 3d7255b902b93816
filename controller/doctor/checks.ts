/**
 * `pacer doctor`: can pacer's agent shape here? Each check says what it found and, when something
 * is missing, the exact fix. The verdict is `ready to shape` only when the agent can pace with fq
 * (not just police); the command exits 0 only then (issue 11).
 *
 * Every check that needs a library (libbpf through koffi) or a privilege imports or probes it
 * inside the check, so a missing piece is a failed line, never a crash of the doctor itself.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { BPFFS, isBpffsMounted } from '../../shaper-bpf/src/bpffs.js';
import { probeClsact, probeFq } from '../../shaper-bpf/src/qdisc.js';
import { cgroup2Mounts, PACER_CGROUP2_MOUNT, WELL_KNOWN_CGROUP2 } from '../datapath/cgroup-root.js';
import { escapeControl } from '../../api/contract/control-chars.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  found: string;
  /** What to do about it (warn and fail only). */
  fix?: string;
}

export type Verdict = 'ready to shape' | 'policing only: no sch_fq' | 'cannot enforce';

export interface DoctorReport {
  kernel: string;
  verdict: Verdict;
  /** Why, in a sentence. */
  summary: string;
  checks: Check[];
}

export interface DoctorOptions {
  /** The API to check (reachable, token valid); none: not checked. */
  api?: string;
  token?: string;
  pinBase: string;
}

const ok = (name: string, found: string): Check => ({ name, status: 'ok', found });
const warn = (name: string, found: string, fix: string): Check => ({ name, status: 'warn', found, fix });
const fail = (name: string, found: string, fix: string): Check => ({ name, status: 'fail', found, fix });

function rootCheck(): Check {
  const uid = process.getuid?.();
  return uid === 0 ? ok('root privileges', 'running as root') : fail('root privileges', `running as uid ${uid}`, 'run the agent (and this check) as root: sudo pacer doctor');
}

async function libbpfCheck(): Promise<Check> {
  try {
    const { lib } = await import('../../shaper-bpf/src/libbpf/native.js');
    return ok('libbpf.so.1', `libbpf ${lib.libbpf_major_version()}.${lib.libbpf_minor_version()}`);
  } catch (err) {
    return fail('libbpf.so.1', `cannot load it: ${(err as Error).message}`, 'apt-get install -y libbpf1 (Debian 12: libbpf 1.1)');
  }
}

/** The kernel's BPF features pacer's objects use (shaper-bpf/src/kernel-features.ts), one line each. */
async function kernelFeatureChecks(): Promise<Check[]> {
  let features: typeof import('../../shaper-bpf/src/kernel-features.js')['KERNEL_FEATURES'];
  try {
    features = (await import('../../shaper-bpf/src/kernel-features.js')).KERNEL_FEATURES;
  } catch (err) {
    return [fail('kernel BPF features', `not probed: ${(err as Error).message}`, 'fix libbpf.so.1 above first')];
  }
  return features.map((f) => {
    let present = false;
    try {
      present = f.present();
    } catch {
      // a probe that cannot run proves nothing is there
    }
    const name = `${f.name} (Linux ${f.since}+)`;
    if (present) return ok(name, `present (${f.neededBy})`);
    const upgrade = `run pacer on Linux ${f.since} or later (docs/data-plane.md, "Supported kernels")`;
    return f.fallback ? warn(name, `missing: ${f.fallback}`, upgrade) : fail(name, `missing: ${f.neededBy} cannot load, pacer cannot enforce`, upgrade);
  });
}

function btfCheck(): Check {
  const path = '/sys/kernel/btf/vmlinux';
  return existsSync(path)
    ? ok('kernel BTF', path)
    : warn('kernel BTF', `${path} is missing`, 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian\'s is): sock_ops reads socket fields through CO-RE');
}

function bpffsCheck(): Check {
  return isBpffsMounted()
    ? ok('bpffs', `mounted at ${BPFFS}`)
    : warn('bpffs', `not mounted at ${BPFFS}`, `the agent mounts it at start; to mount it for good: add "bpffs ${BPFFS} bpf defaults 0 0" to /etc/fstab`);
}

function cgroupCheck(): Check {
  const mounts = cgroup2Mounts();
  const root = WELL_KNOWN_CGROUP2.find((p) => mounts.includes(p));
  return root
    ? ok('cgroup v2', `mounted at ${root} (sock_ops attaches at its root)`)
    : warn('cgroup v2', 'no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified (cgroup v1 only)', `the agent mounts the v2 hierarchy at ${PACER_CGROUP2_MOUNT} at start; to have one from boot, boot with systemd.unified_cgroup_hierarchy=1`);
}

/** A probe's answer, or why it could not run (not root, no iproute2). */
async function probed(probe: () => Promise<boolean>): Promise<{ available: boolean; error?: string }> {
  try {
    return { available: await probe() };
  } catch (err) {
    return { available: false, error: (err as Error).message };
  }
}

async function fqCheck(): Promise<Check> {
  const { available, error } = await probed(probeFq);
  if (available) return ok('sch_fq (EDT pacing)', 'available: packets wait in fq until the departure pacer stamps');
  if (error) return fail('sch_fq (EDT pacing)', `could not probe: ${error}`, 'run as root with iproute2 installed (apt-get install -y iproute2)');
  return fail('sch_fq (EDT pacing)', 'missing: the kernel has no fq qdisc, so pacer can only police (drop what runs ahead of the budget)', 'modprobe sch_fq; if there is no such module, use a kernel with CONFIG_NET_SCH_FQ (Debian\'s linux-image-amd64 has it)');
}

async function clsactCheck(): Promise<Check> {
  const { available, error } = await probed(probeClsact);
  if (available) return ok('clsact (tc BPF hook)', 'available');
  return fail('clsact (tc BPF hook)', error ? `could not probe: ${error}` : 'missing', 'use a kernel with CONFIG_NET_SCH_INGRESS (clsact) and CONFIG_NET_CLS_BPF');
}

function iperf3Check(): Check {
  try {
    const v = execFileSync('iperf3', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]!.trim();
    return ok('iperf3 (for pacer demo)', v);
  } catch {
    return warn('iperf3 (for pacer demo)', 'not installed', 'apt-get install -y iperf3');
  }
}

async function apiCheck(url: string, token: string | undefined): Promise<Check> {
  const name = `API at ${url}`;
  try {
    const health = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(5_000) });
    if (!health.ok) return fail(name, `/healthz answered ${health.status}`, 'check the API\'s log (pacer api)');
    if (!token) return warn(name, 'reachable; no token given, so not checked', 'set PACER_TOKEN or --token-file');
    const r = await fetch(new URL('/v1/classes?limit=1', url), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
    if (r.status === 401) {
      // The API's own words say whether the token is unknown, revoked or expired (and when).
      const detail = ((await r.json().catch(() => ({}))) as { detail?: unknown }).detail;
      const why = typeof detail === 'string' ? escapeControl(detail) : 'not valid';
      return fail(name, `reachable, but the token is refused (401): ${why}`, 'create a token with `pacer token create` (admin) and pass it in PACER_TOKEN');
    }
    if (!r.ok) return fail(name, `reachable, but GET /v1/classes answered ${r.status}`, 'check the API\'s log (pacer api)');
    return ok(name, 'reachable, token valid');
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return fail(name, `unreachable: ${cause?.code ?? cause?.message ?? (err as Error).message}`, `start the API (pacer api) or correct --api (now ${url})`);
  }
}

/** What an agent installed here: the interfaces with pins under the pin base, and whether their program is pinned. */
function agentCheck(pinBase: string): Check {
  const name = `pacer's pins under ${pinBase}`;
  if (!existsSync(pinBase)) return ok(name, 'none: no agent has installed on this host (or it tore down)');
  const ifaces = readdirSync(pinBase).filter((d) => d !== 'tcp' && existsSync(join(pinBase, d, 'class_config')));
  if (ifaces.length === 0) return ok(name, 'none: no agent has installed on this host (or it tore down)');
  const unattached = ifaces.filter((i) => !existsSync(join(pinBase, i, 'pacer_egress')));
  const list = ifaces.join(', ');
  return unattached.length === 0
    ? ok(name, `installed on ${list} (pacer dp status shows what each enforces)`)
    : warn(name, `maps pinned for ${list}, but no program pin for ${unattached.join(', ')}`, 'restart the agent on those interfaces; it pins its program again');
}

/** The verdict from the checks: every fail blocks enforcement except a missing fq, which leaves policing. */
function verdictOf(checks: readonly Check[]): { verdict: Verdict; summary: string } {
  const fails = checks.filter((c) => c.status === 'fail' && !c.name.startsWith('API at'));
  const fq = fails.find((c) => c.name.startsWith('sch_fq'));
  const blocking = fails.filter((c) => c !== fq);
  if (blocking.length > 0) return { verdict: 'cannot enforce', summary: `the agent cannot enforce here: ${blocking.map((c) => c.name).join(', ')}` };
  if (fq) return { verdict: 'policing only: no sch_fq', summary: 'the agent can only police here (no sch_fq): budgets hold on average, but TCP not capped by sock_ops sees drops instead of pacing' };
  return { verdict: 'ready to shape', summary: 'the agent can shape here: fq paces every class to its budget' };
}

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const checks: Check[] = [rootCheck(), await libbpfCheck(), ...(await kernelFeatureChecks()), btfCheck(), bpffsCheck(), cgroupCheck()];
  checks.push(await fqCheck(), await clsactCheck(), iperf3Check());
  if (o.api) checks.push(await apiCheck(o.api, o.token));
  checks.push(agentCheck(o.pinBase));
  return { kernel: release(), ...verdictOf(checks), checks };
}
