/**
 * The BPF filesystem pacer pins its maps and links in. A freshly booted Debian 12 host does not
 * mount it (systemd mounts it only when something asks), so the agent mounts it itself when it
 * is missing, as Cilium's agent does (pkg/bpf/bpffs_linux.go, checkOrMountFS), and says so. When
 * the mount fails, the error says why and how to do it by hand.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';

export const BPFFS = '/sys/fs/bpf';

export class BpffsMissingError extends Error {
  constructor(path: string, why?: string) {
    super(
      `bpffs is not mounted at ${path}${why ? ` and pacer could not mount it (${why})` : ''}: pacer pins its maps there so enforcement survives an agent restart; mount it with "mount -t bpf bpf ${path}"`,
    );
  }
}

/** Is `path` itself a mount point of type bpf (in this process's mount namespace)? */
export function isBpffsMounted(path = BPFFS): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => {
      const [, mountPoint, type] = line.split(' ');
      return mountPoint === path && type === 'bpf';
    });
}

/** Fails clearly when `path` is not a bpf filesystem. */
export function requireBpffs(path = BPFFS): void {
  if (!isBpffsMounted(path)) throw new BpffsMissingError(path);
}

/**
 * Mounts bpffs at `path` unless it is there already. Returns true when it mounted it (callers
 * log that); throws BpffsMissingError with the reason when the mount fails.
 */
export function ensureBpffs(path = BPFFS): boolean {
  if (isBpffsMounted(path)) return false;
  try {
    mkdirSync(path, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', path], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().replace(/\s+/g, ' ').trim();
    throw new BpffsMissingError(path, stderr || (err as Error).message);
  }
  if (!isBpffsMounted(path)) throw new BpffsMissingError(path, 'mount reported success but no bpf mount is there');
  return true;
}
