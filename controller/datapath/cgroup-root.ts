/**
 * Where the agent attaches sock_ops and resolves class cgroup paths: `--cgroup-root DIR`, or by
 * default the root of the cgroup v2 hierarchy, so that every local socket is covered. A local TCP
 * sender that sock_ops does not see is not paced, and under policing it gets a small part of its
 * class's rate (docs/agent.md, "TCP under policing"): covering the whole host is the default a
 * user expects; a narrower root is an explicit choice (`--cgroup-root DIR`), and `off` attaches
 * nothing.
 *
 * The hierarchy root is taken from an existing cgroup2 mount at one of the well-known places
 * (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one). A host with only
 * cgroup v1 mounted (like this development machine) still has the v2 hierarchy, every process in
 * its root: the agent mounts it at /run/pacer/cgroup2 and records that in its state directory, so
 * that `pacer agent teardown` unmounts what the agent mounted and nothing else. Other cgroup2
 * mounts (a test's private one under /tmp) are not used: they may go away while the agent runs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';

export const WELL_KNOWN_CGROUP2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'] as const;
/** Where the agent mounts the cgroup v2 hierarchy when nothing did. */
export const PACER_CGROUP2_MOUNT = '/run/pacer/cgroup2';
/** In the state directory: the mount point the agent created (teardown removes it). */
export const CGROUP2_MOUNT_RECORD = 'cgroup2-mounted-by-pacer';

export interface CgroupRoot {
  path: string;
  /** flag: --cgroup-root; found: an existing cgroup2 mount; mounted: the agent mounted it now. */
  source: 'flag' | 'found' | 'mounted';
}

/** Mount points of cgroup2 file systems, from /proc/self/mounts. */
export function cgroup2Mounts(mounts: string = readFileSync('/proc/self/mounts', 'utf8')): string[] {
  return mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup2')
    .map((f) => f[1]!.replace(/\\040/g, ' '));
}

/**
 * The directory to use. `flag` is --cgroup-root (undefined: the default; 'off' never reaches here).
 * Mounting needs root, like everything else the agent does.
 */
export function resolveCgroupRoot(flag: string | undefined, stateDir: string): CgroupRoot {
  if (flag !== undefined) return { path: flag, source: 'flag' };
  const mounted = cgroup2Mounts();
  const known = [...WELL_KNOWN_CGROUP2, PACER_CGROUP2_MOUNT].find((p) => mounted.includes(p));
  if (known !== undefined) return { path: known, source: 'found' };
  mkdirSync(PACER_CGROUP2_MOUNT, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'cgroup2', 'none', PACER_CGROUP2_MOUNT], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`no cgroup v2 mount on this host, and mounting one at ${PACER_CGROUP2_MOUNT} failed (${stderr || (err as Error).message}); mount it yourself (mount -t cgroup2 none DIR) and pass --cgroup-root DIR, or --cgroup-root off`);
  }
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(stateDir, CGROUP2_MOUNT_RECORD), `${PACER_CGROUP2_MOUNT}\n`);
  return { path: PACER_CGROUP2_MOUNT, source: 'mounted' };
}

/** `pacer agent teardown`: unmounts the cgroup2 mount the agent created, if it recorded one; its path, or undefined. */
export function unmountPacerCgroup2(stateDir: string): string | undefined {
  const record = join(stateDir, CGROUP2_MOUNT_RECORD);
  if (!existsSync(record)) return undefined;
  const path = readFileSync(record, 'utf8').trim();
  if (cgroup2Mounts().includes(path)) execFileSync('umount', [path]);
  if (existsSync(path)) rmdirSync(path);
  // /run/pacer, when the agent made it for this mount and nothing else is in it.
  const parent = dirname(path);
  if (path === PACER_CGROUP2_MOUNT && existsSync(parent) && readdirSync(parent).length === 0) rmdirSync(parent);
  rmSync(record, { force: true });
  return path;
}
