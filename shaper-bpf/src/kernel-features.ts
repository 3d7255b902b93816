/**
 * What the running kernel can do, asked of the kernel itself (libbpf's probes, a probe program,
 * the kernel's BTF) rather than read off its version: distributions backport. The agent probes
 * at start: a missing feature the tc program needs is a refusal that names the kernel it takes
 * (instead of a verifier message nobody can act on); a missing feature with a fallback is used
 * without, and the host status says so (docs/data-plane.md, "Supported kernels").
 */
import { release } from 'node:os';
import koffi from 'koffi';
import { lib, libcFns, type Ptr } from './libbpf/native.js';

const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_PROG_TYPE_SOCK_OPS = 13;
const BPF_FUNC_skc_to_tcp_sock = 137;
const BPF_FUNC_sk_storage_get = 107;
const BTF_KIND_STRUCT = 4;

export interface KernelFeature {
  /** What is probed, in an operator's words. */
  name: string;
  /** Which program needs it: without a tc feature pacer cannot enforce; without a sock_ops one, TCP tuning is off. */
  program: 'tc' | 'sockops';
  /** The first mainline kernel that has it. */
  since: string;
  /** What in pacer needs it. */
  neededBy: string;
  /** What pacer does without it; undefined: pacer cannot run its data plane without it. */
  fallback?: string;
  present(): boolean;
}

/** A feature pacer found missing, as the agent reports it in the host status. */
export interface MissingFeature {
  feature: string;
  program: KernelFeature['program'];
  since: string;
  neededBy: string;
  fallback?: string;
}

export class KernelTooOldError extends Error {
  constructor(readonly missing: MissingFeature[]) {
    super(
      `this kernel (${release()}) lacks ${missing.map((m) => `${m.feature} (Linux ${m.since} or later; needed by ${m.neededBy})`).join(', ')}: ` +
        `pacer cannot enforce budgets here. Run pacer on Linux ${newest(missing.map((m) => m.since))} or later (docs/data-plane.md, "Supported kernels")`,
    );
  }
}

/** The highest of some "major.minor" versions. */
function newest(versions: string[]): string {
  const key = (v: string) => v.split('.').map(Number) as [number, number];
  return versions.reduce((a, b) => {
    const [am, an] = key(a);
    const [bm, bn] = key(b);
    return bm > am || (bm === am && bn > an) ? b : a;
  });
}

/**
 * Loads a three-instruction SCHED_CLS program that does a 64-bit atomic compare-and-exchange on
 * its stack: the instruction the tc program schedules with (BPF_ATOMIC | BPF_CMPXCHG, Linux 5.12,
 * commit 5ffa25502b5a "bpf: Add instructions for atomic_[cmp]xchg").
 */
function atomicsProbe(): boolean {
  const insn = (code: number, dst: number, src: number, off: number, imm: number) => {
    const b = Buffer.alloc(8);
    b.writeUInt8(code, 0);
    b.writeUInt8((src << 4) | dst, 1);
    b.writeInt16LE(off, 2);
    b.writeInt32LE(imm, 4);
    return b;
  };
  const program = Buffer.concat([
    insn(0x7a, 10, 0, -8, 0), // *(u64 *)(r10 - 8) = 0           BPF_ST | BPF_MEM | BPF_DW
    insn(0xb7, 0, 0, 0, 0), //   r0 = 0                           BPF_ALU64 | BPF_MOV | BPF_K
    insn(0xb7, 1, 0, 0, 1), //   r1 = 1
    insn(0xdb, 10, 1, -8, 0xf1), // r0 = cmpxchg(r10 - 8, r0, r1)  BPF_STX | BPF_ATOMIC | BPF_DW, BPF_CMPXCHG
    insn(0xb7, 0, 0, 0, 0), //   r0 = 0
    insn(0x95, 0, 0, 0, 0), //   exit
  ]);
  const fd = lib.bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, 'pacer_probe', 'GPL', program, program.length / 8, null) as number;
  if (fd < 0) return false;
  libcFns.close(fd);
  return true;
}

function helperProbe(progType: number, helper: number): () => boolean {
  return () => (lib.libbpf_probe_bpf_helper(progType, helper, null) as number) === 1;
}

/** Does the kernel's BTF give struct `struct` a member `member`? (What a CO-RE read relocates against.) */
export function btfHasMember(struct: string, member: string): boolean {
  const btf = lib.btf__load_vmlinux_btf() as Ptr | null;
  if (!btf) return false;
  try {
    const id = lib.btf__find_by_name_kind(btf, struct, BTF_KIND_STRUCT) as number;
    if (id < 0) return false;
    const type = lib.btf__type_by_id(btf, id) as Ptr;
    // struct btf_type { u32 name_off; u32 info; u32 size; } then vlen × struct btf_member { u32 name_off, type, offset; }
    const [, info] = koffi.decode(type, koffi.array('uint32_t', 3)) as number[];
    const vlen = info! & 0xffff;
    const words = koffi.decode(type, koffi.array('uint32_t', 3 + 3 * vlen)) as number[];
    for (let i = 0; i < vlen; i++) if ((lib.btf__name_by_offset(btf, words[3 + 3 * i]!) as string) === member) return true;
    return false;
  } finally {
    lib.btf__free(btf);
  }
}

/** Probes the kernel: what the agent runs at start (bound to KERNEL_PROBE in the kernel datapath module). */
export const KERNEL_PROBE = Symbol('KernelProbe');
export type KernelProbe = () => MissingFeature[];

/** Every feature pacer's objects use that a supported distribution kernel might lack. */
export const KERNEL_FEATURES: readonly KernelFeature[] = [
  { name: 'BPF atomic compare-and-exchange', program: 'tc', since: '5.12', neededBy: 'the tc egress program (the departure rule)', present: atomicsProbe },
  {
    name: 'bpf_skc_to_tcp_sock in sock_ops programs',
    program: 'sockops',
    since: '5.9',
    neededBy: 'TCP tuning and pacing (sock_ops)',
    fallback: 'no TCP tuning or TCP pacing: classes with rtoMin/delackMax are not tuned, and policed TCP is not paced',
    present: helperProbe(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_skc_to_tcp_sock),
  },
  {
    name: 'bpf_sk_storage_get in sock_ops programs',
    program: 'sockops',
    since: '5.10',
    neededBy: 'TCP pacing of policed classes (sock_ops)',
    fallback: 'no TCP tuning or TCP pacing: classes with rtoMin/delackMax are not tuned, and policed TCP is not paced',
    present: helperProbe(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get),
  },
  {
    name: 'the cgroup pointer in struct sock_cgroup_data (kernel BTF)',
    program: 'sockops',
    since: '5.15',
    neededBy: 'TCP tuning and pacing by cgroup (sock_ops reads a socket\'s cgroup through CO-RE)',
    fallback: 'no TCP tuning or TCP pacing: classes with rtoMin/delackMax are not tuned, and policed TCP is not paced',
    present: () => btfHasMember('sock_cgroup_data', 'cgroup'),
  },
];

/**
 * Probes each feature once. Throws KernelTooOldError naming every missing feature without a
 * fallback; returns the missing ones that have one (the caller reports them).
 */
export function checkKernelFeatures(features: readonly KernelFeature[] = KERNEL_FEATURES): MissingFeature[] {
  const missing: MissingFeature[] = features
    .filter((f) => {
      try {
        return !f.present();
      } catch {
        return true; // a probe that cannot run proves nothing is there
      }
    })
    .map((f) => ({ feature: f.name, program: f.program, since: f.since, neededBy: f.neededBy, ...(f.fallback ? { fallback: f.fallback } : {}) }));
  const fatal = missing.filter((m) => m.fallback === undefined);
  if (fatal.length > 0) throw new KernelTooOldError(fatal);
  return missing;
}
