// Concern: attaching a program (sock_ops, cgroup_skb, ...) to a cgroup v2 directory and
// detaching it again. Prefers a bpf_link: it is detached automatically when its last
// reference goes away (process exit) unless pinned, and a pinned link can be found and
// detached later by path. The legacy BPF_PROG_ATTACH is only a fallback for kernels
// without cgroup links (< 5.7); programs attached that way outlive the process (machine.md).
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfError, check, checkPtr } from './errors.js';
import { lastErrno, lib, type Ptr } from './native.js';
import type { BpfProgram } from './program.js';

const { EINVAL, ENOENT, EOPNOTSUPP } = constants.errno;
const ENOTSUPP = 524;
// BPF_F_ALLOW_MULTI: coexist with programs others attached to the same cgroup and type.
const BPF_F_ALLOW_MULTI = 2;

export type CgroupAttachMode = 'auto' | 'link' | 'legacy';

export interface CgroupAttachOptions {
  /** 'auto' (default): bpf_link, falling back to legacy attach only if links are unsupported. */
  mode?: CgroupAttachMode;
}

function openCgroup(path: string, operation: string): number {
  try {
    return openSync(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  } catch (err) {
    throw new BpfError({ operation, target: `cgroup ${path}`, errno: -((err as NodeJS.ErrnoException).errno ?? -EINVAL) });
  }
}

export class CgroupAttachment {
  readonly mode: 'link' | 'legacy';
  readonly cgroupPath: string;
  readonly program: BpfProgram;
  /** enum bpf_attach_type from the program's section (e.g. SEC("sockops") → BPF_CGROUP_SOCK_OPS = 3). */
  readonly attachType: number;
  private link: Ptr | undefined;
  private pinnedPath: string | undefined;
  private attached = true;

  constructor(mode: 'link' | 'legacy', cgroupPath: string, program: BpfProgram, attachType: number, link: Ptr | undefined) {
    this.mode = mode;
    this.cgroupPath = cgroupPath;
    this.program = program;
    this.attachType = attachType;
    this.link = link;
  }

  /** Pins the link on bpffs so the attachment survives this process (link mode only). */
  pin(path: string): void {
    if (!this.link) throw new Error(`a ${this.mode} cgroup attachment has no link to pin`);
    check(lib.bpf_link__pin(this.link, path) as number, `pin cgroup link of program "${this.program.name}"`, path);
    this.pinnedPath = path;
  }

  /** Detaches; a pinned link is unpinned first (destroying a pinned link only closes our fd). */
  detach(): void {
    if (!this.attached) return;
    const op = `detach program "${this.program.name}"`;
    if (this.link) {
      if (this.pinnedPath) {
        const ret = lib.bpf_link__unpin(this.link) as number;
        // ENOENT: someone already removed the pin (e.g. detachPinnedCgroupLink); nothing to undo.
        if (ret !== -ENOENT) check(ret, `unpin cgroup link of program "${this.program.name}"`, this.pinnedPath);
      }
      // bpf_link__destroy closes the link fd; with no pin left that drops the last reference.
      lib.bpf_link__destroy(this.link);
      this.link = undefined;
    } else {
      const cg = openCgroup(this.cgroupPath, op);
      try {
        check(lib.bpf_prog_detach2(this.program.fd, cg, this.attachType) as number, op, `cgroup ${this.cgroupPath}`);
      } finally {
        closeSync(cg);
      }
    }
    this.attached = false;
  }
}

/** Attaches a program loaded from a BpfObject to the cgroup v2 directory at cgroupPath. */
export function attachCgroup(program: BpfProgram, cgroupPath: string, options: CgroupAttachOptions = {}): CgroupAttachment {
  if (program.handle === undefined) {
    throw new TypeError(`program "${program.name}" has no libbpf handle (opened from a pin?); the attach type comes from its ELF section`);
  }
  const mode = options.mode ?? 'auto';
  const op = `attach program "${program.name}"`;
  const target = `cgroup ${cgroupPath}`;
  const attachType = lib.bpf_program__expected_attach_type(program.handle) as number;
  const cg = openCgroup(cgroupPath, op);
  try {
    if (mode !== 'legacy') {
      const link = lib.bpf_program__attach_cgroup(program.handle, cg) as Ptr | null;
      if (link) return new CgroupAttachment('link', cgroupPath, program, attachType, link);
      const errno = lastErrno();
      // Kernels without BPF_LINK_CREATE for cgroups answer EINVAL; anything else is a real failure.
      const unsupported = errno === EINVAL || errno === EOPNOTSUPP || errno === ENOTSUPP;
      if (mode === 'link' || !unsupported) throw new BpfError({ operation: `${op} (bpf_link)`, target, errno });
    }
    check(lib.bpf_prog_attach(program.fd, cg, attachType, BPF_F_ALLOW_MULTI) as number, `${op} (legacy attach)`, target);
    return new CgroupAttachment('legacy', cgroupPath, program, attachType, undefined);
  } finally {
    // The attachment holds its own reference to the cgroup; our fd is no longer needed.
    closeSync(cg);
  }
}

/**
 * Detaches and unpins a cgroup link pinned at `path` (possibly by another process). The program
 * leaves the cgroup at once, even while some process still holds an fd of the link.
 */
export function detachPinnedCgroupLink(path: string): void {
  const link = checkPtr<Ptr>(lib.bpf_link__open(path) as Ptr | null, 'open pinned cgroup link', path);
  try {
    // BPF_LINK_DETACH cuts the link from the cgroup even while the pin still references it.
    check(lib.bpf_link__detach(link) as number, 'detach pinned cgroup link', path);
    // bpf_link__open recorded the path, so unpin removes that file.
    check(lib.bpf_link__unpin(link) as number, 'unpin cgroup link', path);
  } finally {
    lib.bpf_link__destroy(link);
  }
}
