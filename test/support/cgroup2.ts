/**
 * A private cgroup v2 mount for kernel tests. This machine mounts cgroup v1 at /sys/fs/cgroup
 * (notes/machine.md); `mount -t cgroup2` elsewhere shows the one v2 hierarchy (the same as
 * /sys/fs/cgroup/unified), so the test works in its own directory `pacer-test-<pid>-<random>`
 * under that mount and removes it again.
 *
 *   const cg = await PrivateCgroup2.create();
 *   const tuned = cg.child('tuned');     // <mount>/pacer-test-…/tuned
 *   ...
 *   await cg.cleanup();                  // moves leftover processes out, rmdirs, umounts
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../shaper-bpf/src/exec.js';

export class PrivateCgroup2 {
  /** The cgroup for this test run: every child is below it. */
  readonly base: string;
  private readonly children: string[] = [];

  private constructor(readonly mountPoint: string) {
    this.base = join(mountPoint, `pacer-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  static async create(): Promise<PrivateCgroup2> {
    const mnt = mkdtempSync(join(tmpdir(), 'pacer-cg2-'));
    const result = await run('mount', ['-t', 'cgroup2', 'none', mnt]);
    if (result.code !== 0) {
      rmdirSync(mnt);
      throw new Error(`mount -t cgroup2 none ${mnt} exited ${result.code}: ${result.stderr.trim()}`);
    }
    const cg = new PrivateCgroup2(mnt);
    mkdirSync(cg.base);
    return cg;
  }

  /** Creates the cgroup base/name (one level). */
  child(name: string): string {
    if (name.includes('/')) throw new Error(`one level only: ${name}`);
    const dir = join(this.base, name);
    mkdirSync(dir);
    this.children.push(dir);
    return dir;
  }

  /** The pids in a cgroup (its cgroup.procs). */
  static pids(dir: string): number[] {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /**
   * Removes the directories (deepest first) and the mount. A cgroup with processes cannot be
   * removed, so any left (callers kill theirs first) are moved to the root cgroup. Safe to call twice.
   */
  async cleanup(): Promise<void> {
    const failures: string[] = [];
    const dirs = [...this.children.reverse(), this.base];
    this.children.length = 0;
    for (const dir of dirs) {
      try {
        for (const pid of PrivateCgroup2.pids(dir)) writeFileSync(join(this.mountPoint, 'cgroup.procs'), `${pid}\n`);
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.push(`${dir}: ${(err as Error).message}`);
      }
    }
    const umount = await run('umount', [this.mountPoint]);
    if (umount.code !== 0 && !/not mounted/.test(umount.stderr)) failures.push(`umount ${this.mountPoint}: ${umount.stderr.trim()}`);
    try {
      rmdirSync(this.mountPoint);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.push(`${this.mountPoint}: ${(err as Error).message}`);
    }
    if (failures.length > 0) throw new Error(`could not remove the test cgroups: ${failures.join('; ')}`);
  }
}
