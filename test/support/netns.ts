/**
 * Network namespaces for kernel tests: create them, wire veth pairs between them, run commands
 * inside, and always delete them again.
 *
 *   const nets = useTestNetns();            // inside describe(): cleanup runs in after()
 *   const a = await nets.createTestNetns();
 *   await nets.vethPair({ a: { ns: a, name: 'va', addr: '10.9.0.1/24' }, b: { ... } });
 *   await execIn(a, 'tc', ['-j', 'qdisc', 'show']);
 *
 * Names are `pacer-t-<pid>-<random>`: the pid lets sweepStaleTestNetns() delete what crashed runs
 * left behind without touching the namespaces of a run that is still going on this machine.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { run, runIn } from '../../shaper-bpf/src/exec.js';

export const TEST_NETNS_PREFIX = 'pacer-t-';
/** Also swept: the throwaway namespaces of shaper-bpf's probeFq(). */
const SWEPT_PREFIXES = [TEST_NETNS_PREFIX, 'pacer-probe-'];

/**
 * Runs cmd inside the namespace with `nsenter --net`, not `ip netns exec`: the latter remounts
 * /sys, which hides /sys/fs/bpf pins (notes/machine.md). Returns stdout; throws with stderr.
 */
export async function execIn(ns: string, cmd: string, args: readonly string[]): Promise<string> {
  const result = await runIn(ns, cmd, args);
  if (result.code !== 0) throw new Error(`in netns ${ns}: \`${cmd} ${args.join(' ')}\` exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

async function mustRun(cmd: string, args: readonly string[]): Promise<string> {
  const result = await run(cmd, args);
  if (result.code !== 0) throw new Error(`\`${cmd} ${args.join(' ')}\` exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

export interface VethEnd {
  ns: string;
  name: string;
  /** With prefix, from 10.0.0.0/8 or fd00::/8 only: test traffic never leaves the test's namespaces. */
  addr?: string;
}

export interface VethSpec {
  a: VethEnd;
  b: VethEnd;
  /** numtxqueues and numrxqueues of both ends (default 1); > 1 gives multi-queue devices for mq. */
  txQueues?: number;
}

/** Refuses any address outside the private test ranges, so a typo cannot route to a real host. */
export function checkTestAddress(addr: string): void {
  const [ip = '', prefix] = addr.split('/');
  const family = isIP(ip);
  const ok =
    prefix !== undefined &&
    /^\d+$/.test(prefix) &&
    ((family === 4 && ip.split('.')[0] === '10') || (family === 6 && /^fd[0-9a-f]{2}:/i.test(ip)));
  if (!ok) throw new Error(`test address ${addr} must be ADDR/PREFIX inside 10.0.0.0/8 or fd00::/8`);
}

/** The namespaces one test suite made; cleanup() deletes exactly those. */
export class TestNetns {
  private readonly names = new Set<string>();

  get created(): readonly string[] {
    return [...this.names];
  }

  /** A new namespace with lo up; returns its name (also usable as /run/netns/NAME). */
  async createTestNetns(): Promise<string> {
    const name = `${TEST_NETNS_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
    await mustRun('ip', ['netns', 'add', name]);
    this.names.add(name);
    await execIn(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair from a.ns to b.ns (they may be the same namespace), addressed and up. */
  async vethPair({ a, b, txQueues = 1 }: VethSpec): Promise<void> {
    for (const end of [a, b]) if (end.addr !== undefined) checkTestAddress(end.addr);
    if (!Number.isInteger(txQueues) || txQueues < 1) throw new RangeError(`txQueues must be a positive integer, got ${txQueues}`);
    const queues = ['numtxqueues', String(txQueues), 'numrxqueues', String(txQueues)];
    // `peer … netns NAME` resolves NAME under /run/netns; nsenter --net keeps our mount namespace.
    await execIn(a.ns, 'ip', ['link', 'add', a.name, ...queues, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.ns, ...queues]);
    for (const end of [a, b]) {
      if (end.addr !== undefined) {
        // nodad: an IPv6 address is usable at once instead of after duplicate detection.
        const nodad = isIP(end.addr.split('/')[0] ?? '') === 6 ? ['nodad'] : [];
        await execIn(end.ns, 'ip', ['addr', 'add', end.addr, 'dev', end.name, ...nodad]);
      }
      await execIn(end.ns, 'ip', ['link', 'set', end.name, 'up']);
    }
  }

  /**
   * Deletes every namespace this object created; safe to call twice. Processes still running
   * inside keep their namespace alive until they exit, so tests stop their servers first.
   */
  async cleanup(): Promise<void> {
    const failures: string[] = [];
    for (const name of this.names) {
      const result = await run('ip', ['netns', 'del', name]);
      if (result.code === 0 || !(await netnsExists(name))) this.names.delete(name);
      else failures.push(`${name}: ${result.stderr.trim()}`);
    }
    if (failures.length > 0) throw new Error(`could not delete test namespaces: ${failures.join('; ')}`);
  }
}

/**
 * Mocha helper: call inside describe(). The namespaces are deleted in after() (or afterEach()),
 * which mocha runs even when tests or before hooks fail.
 */
export function useTestNetns(hook: 'after' | 'afterEach' = 'after'): TestNetns {
  const nets = new TestNetns();
  (hook === 'after' ? after : afterEach)('delete the test network namespaces', () => nets.cleanup());
  return nets;
}

/** The names in /run/netns (what `ip netns list` shows). */
export async function listNetns(): Promise<string[]> {
  try {
    return await readdir('/run/netns');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function netnsExists(name: string): Promise<boolean> {
  return (await listNetns()).includes(name);
}

/** Is the process that made a namespace still running? (kill 0 only checks.) */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes pacer-t-* (and pacer-probe-*) namespaces whose creating process is gone; returns their names. */
export async function sweepStaleTestNetns(): Promise<string[]> {
  const stale = (await listNetns()).filter((name) => {
    const prefix = SWEPT_PREFIXES.find((p) => name.startsWith(p));
    if (prefix === undefined) return false;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    return !(Number.isInteger(pid) && pid > 0 && alive(pid)); // no pid in the name: an old format, stale
  });
  for (const name of stale) await run('ip', ['netns', 'del', name]);
  return stale;
}
