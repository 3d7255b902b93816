/**
 * bpffs pins and loaded objects of a benchmark run (bench:bpf, bench:agent): pins go to
 * /sys/fs/bpf/pacer-bench-<pid>-XXXXXX and are removed however the process ends (success, error,
 * Ctrl-C, SIGTERM, SIGHUP, or process.exit); pins of earlier runs whose process is gone (SIGKILL,
 * power loss) are removed by removeStalePinDirs() at start.
 *
 * Everything here is synchronous, so it also runs from the 'exit' event, the last resort.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBpffs } from '../test/support/bpffs.js';

export const BPFFS = '/sys/fs/bpf';
export const BENCH_PIN_PREFIX = 'pacer-bench-';

const pinDirs = new Set<string>();
const objects: Array<{ close(): void }> = [];

/** Closes the tracked objects (newest first), then removes the pin directories. Safe to call twice. */
export function removePins(): void {
  for (const o of objects.splice(0).reverse()) {
    try {
      o.close();
    } catch {
      /* closing is best effort; the fds die with the process anyway */
    }
  }
  for (const dir of pinDirs) {
    rmSync(dir, { recursive: true, force: true });
    pinDirs.delete(dir);
  }
}

process.on('exit', removePins);

/** Closed by removePins(), before the pins go. */
export function trackObject<T extends { close(): void }>(o: T): T {
  objects.push(o);
  return o;
}

/** A fresh /sys/fs/bpf/pacer-bench-<pid>-XXXXXX (bpffs mounted if needed). */
export function makeBenchPinDir(): string {
  ensureBpffs();
  const dir = mkdtempSync(`${BPFFS}/${BENCH_PIN_PREFIX}${process.pid}-`);
  pinDirs.add(dir);
  return dir;
}

/** Removes one directory now (a round's maps), instead of at exit. */
export function removeBenchPinDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  pinDirs.delete(dir);
}

/** Pin directories of earlier runs whose process is gone; returns their names. */
export function removeStalePinDirs(): string[] {
  if (!existsSync(BPFFS)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(BPFFS)) {
    const m = new RegExp(`^${BENCH_PIN_PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // that run is alive
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    rmSync(join(BPFFS, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
