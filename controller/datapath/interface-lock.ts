/**
 * One agent per interface. Two agents on one interface each rewrite the maps to their own view at
 * every resync (with different labels, one empties what the other fills), and the class is not
 * enforced (issue 17 measured ~50 of 50 Mbit/s through a 30 Mbit/s class). So an agent takes a lock
 * per interface before it touches anything, and a second one is refused with the first one's PID.
 *
 * The lock is a named lock (../named-lock.ts: an abstract Unix socket the kernel frees when its
 * process dies), named by the target network namespace (its device and inode, so two `--netns`
 * paths that name the same namespace meet) and the interface name; the owner answers with its PID.
 * It does not depend on the state directory or the pin base, which two agents may set differently. (Abstract names are per network namespace of the *agent* process: agents run
 * in the host's namespace and reach others with --netns, so they meet here.)
 */
import { statSync } from 'node:fs';
import { takeNamedLock, type NamedLock } from '../named-lock.js';

export interface LockOwner {
  pid: number;
  iface: string;
  netns: string;
  lockedAt: string;
}

export class InterfaceLockedError extends Error {
  constructor(readonly owner: LockOwner | undefined, iface: string) {
    const who = owner ? `another pacer agent (PID ${owner.pid}, since ${owner.lockedAt})` : 'another pacer agent (it did not say its PID)';
    const stop = owner ? `kill ${owner.pid}` : `ss -xlp | grep pacer-agent`;
    super(
      `${who} already enforces on ${iface}: two agents on one interface overwrite each other's maps. ` +
        `Stop that agent first (${stop}), or run this one for another interface`,
    );
    this.name = 'InterfaceLockedError';
  }
}

export type InterfaceLock = NamedLock;

/** The lock's name for `iface` in `netns` (a path such as /run/netns/X; none = this process's namespace). */
export function lockName(iface: string, netns: string | undefined): string {
  const ns = statSync(netns ?? '/proc/self/ns/net');
  return `pacer-agent/netns-${ns.dev}-${ns.ino}/${iface}`;
}

/** Takes the interface's lock for this process, or throws InterfaceLockedError naming its owner. */
export async function lockInterface(o: { iface: string; netns?: string }): Promise<InterfaceLock> {
  const name = lockName(o.iface, o.netns);
  const me: LockOwner = { pid: process.pid, iface: o.iface, netns: o.netns ?? 'self', lockedAt: new Date().toISOString() };
  const result = await takeNamedLock(name, me);
  if ('owner' in result) throw new InterfaceLockedError(result.owner, o.iface);
  return result.lock;
}
