/**
 * Network namespaces of a benchmark run: `pacer-b-<pid>-<hex>`, deleted by the run's cleanup, and
 * those of runs whose process is gone deleted at the start of the next (as bench/pins.ts does for
 * pins). Commands run inside with nsenter --net (not `ip netns exec`, which hides bpffs pins).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { run, runIn } from '../shaper-bpf/src/exec.js';
import { onCleanup } from './cleanup.js';

export const BENCH_NETNS_PREFIX = 'pacer-b-';

async function must(p: Promise<{ code: number; stderr: string }>, what: string): Promise<void> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim()}`);
}

/** A new namespace with lo up and a veth pair `a`–`b` inside it, both up; deleted by the run's cleanup. */
export async function benchNetnsWithVeth(a: string, b: string): Promise<string> {
  const name = `${BENCH_NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  await must(run('ip', ['netns', 'add', name]), `ip netns add ${name}`);
  onCleanup(`netns ${name}`, () => must(run('ip', ['netns', 'del', name]), `ip netns del ${name}`));
  await must(runIn(name, 'ip', ['link', 'set', 'lo', 'up']), 'ip link set lo up');
  await must(runIn(name, 'ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]), `ip link add ${a}`);
  for (const dev of [a, b]) await must(runIn(name, 'ip', ['link', 'set', dev, 'up']), `ip link set ${dev} up`);
  return name;
}

/** Deletes pacer-b-* namespaces whose bench process is gone; returns their names. */
export async function removeStaleBenchNetns(): Promise<string[]> {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  const stale = names.filter((n) => {
    const pid = Number(/^pacer-b-(\d+)-/.exec(n)?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  });
  for (const n of stale) await run('ip', ['netns', 'del', n]);
  return stale;
}
