/** bpffs for kernel tests: mounted if missing, and a fresh pin directory per test suite. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';

export function ensureBpffs(): void {
  mkdirSync('/sys/fs/bpf', { recursive: true });
  const mounted = execFileSync('findmnt', ['-n', '-t', 'bpf', '/sys/fs/bpf'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  if (!mounted) execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
}

/** A new directory under /sys/fs/bpf named pacer-test-*; remove it with `removePinDir`. */
export function makePinDir(): string {
  ensureBpffs();
  return mkdtempSync('/sys/fs/bpf/pacer-test-');
}

/** Removing a bpffs directory unpins everything in it. */
export function removePinDir(dir: string | undefined): void {
  if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
