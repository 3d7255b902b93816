// Concern: facts about a raw BPF file descriptor — what kind of object it is, its kernel
// info (BPF_OBJ_GET_INFO_BY_FD), and opening/closing pins. Used by map.ts and program.ts.
import { readlinkSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import koffi, { type TypeObject } from 'koffi';
import { BpfError, check } from './errors.js';
import { lib, libcFns } from './native.js';

export type BpfFdKind = 'map' | 'prog' | 'link' | 'other';

/** The kernel names BPF fds "anon_inode:bpf-map", "anon_inode:bpf-prog", and links "anon_inode:bpf_link" or, on 6.18, "anon_inode:bpf-link". */
export function fdKind(fd: number): BpfFdKind {
  const target = readlinkSync(`/proc/self/fd/${fd}`);
  if (target === 'anon_inode:bpf-map') return 'map';
  if (target === 'anon_inode:bpf-prog') return 'prog';
  if (target === 'anon_inode:bpf_link' || target === 'anon_inode:bpf-link') return 'link';
  return 'other';
}

/** bpf_obj_get_info_by_fd into `type` (a koffi struct); the kernel fills at most sizeof(type). */
export function objInfo<T>(fd: number, type: TypeObject, what: string): T {
  const buf = Buffer.alloc(koffi.sizeof(type));
  const len = new Uint32Array([buf.length]);
  check(lib.bpf_obj_get_info_by_fd(fd, buf, len) as number, 'get info', what);
  return koffi.decode(buf, type) as T;
}

/** bpf_obj_get on a bpffs path, checking it pins the kind of object the caller expects. */
export function openPinnedFd(path: string, expect: BpfFdKind, what: string): number {
  const fd = check(lib.bpf_obj_get(path) as number, `open pinned ${what}`, path);
  const kind = fdKind(fd);
  if (kind !== expect) {
    closeFd(fd);
    throw new BpfError({
      operation: `open pinned ${what}`,
      target: path,
      errno: constants.errno.EINVAL,
      detail: `the pinned object is a BPF ${kind}, not a ${expect}`,
    });
  }
  return fd;
}

export function pinFd(fd: number, path: string, what: string): void {
  check(lib.bpf_obj_pin(fd, path) as number, `pin ${what}`, path);
}

/** Removes a pin (an unlink on bpffs); the object lives on while any fd or program uses it. */
export function unpinPath(path: string, what: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    const errno = -((err as NodeJS.ErrnoException).errno ?? -constants.errno.EINVAL);
    throw new BpfError({ operation: `unpin ${what}`, target: path, errno });
  }
}

export function closeFd(fd: number): void {
  if (fd >= 0) libcFns.close(fd);
}
