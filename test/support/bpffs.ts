/** bpffs for kernel tests: mounted if missing (shaper-bpf's ensureBpffs), and a fresh pin directory per test suite. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { ensureBpffs } from '../../shaper-bpf/src/bpffs.js';

export { ensureBpffs };

/** A new directory under /sys/fs/bpf named pacer-test-*; remove it with `removePinDir`. */
export function makePinDir(): string {
  ensureBpffs();
  return mkdtempSync('/sys/fs/bpf/pacer-test-');
}

/** Removing a bpffs directory unpins everything in it. */
export function removePinDir(dir: string | undefined): void {
  if (dir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
