/**
 * One agent per interface. Two agents on one interface each rewrite the maps to their own view at
 * every resync (with different labels, one empties what the other fills), and the class is not
 * enforced (issue 17 measured ~50 of 50 Mbit/s through a 30 Mbit/s class). So an agent takes a lock
 * per interface before it touches anything, and a second one is refused with the first one's PID.
 *
 * The lock is a listening Unix socket in the abstract namespace (Linux: a name, no file), named by
 * the target network namespace (its device and inode, so two `--netns` paths that name the same
 * namespace meet) and the interface name. Only one socket can hold a name, and the kernel frees it
 * when its process dies however it dies, so there is no stale lock to detect and no window in which
 * two agents can both take over a dead one's. A second agent connects to the name and the owner
 * answers with its PID. It does not depend on the state directory or the pin base, which two agents
 * may set differently. (Abstract names are per network namespace of the *agent* process: agents run
 * in the host's namespace and reach others with --netns, so they meet here.)
 */
import { createConnection, createServer, type Server } from 'node:net';
import { statSync } from 'node:fs';

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

export interface InterfaceLock {
  /** The abstract socket name, without its leading NUL (`ss -xlp` shows it with '@'). */
  readonly name: string;
  release(): Promise<void>;
}

/** The lock's name for `iface` in `netns` (a path such as /run/netns/X; none = this process's namespace). */
export function lockName(iface: string, netns: string | undefined): string {
  const ns = statSync(netns ?? '/proc/self/ns/net');
  return `pacer-agent/netns-${ns.dev}-${ns.ino}/${iface}`;
}

/** What the owner of `name` says about itself; undefined when it does not answer within `timeoutMs`. */
function askOwner(name: string, timeoutMs = 2_000): Promise<LockOwner | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const sock = createConnection({ path: `\0${name}` });
    const done = (owner: LockOwner | undefined) => {
      sock.destroy();
      resolve(owner);
    };
    sock.setTimeout(timeoutMs, () => done(undefined));
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('error', () => done(undefined));
    sock.on('end', () => {
      try {
        done(JSON.parse(text) as LockOwner);
      } catch {
        done(undefined);
      }
    });
  });
}

function listen(server: Server, name: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err));
    server.once('error', onError);
    server.listen({ path: `\0${name}` }, () => {
      server.off('error', onError);
      resolve(true);
    });
  });
}

/** Takes the interface's lock for this process, or throws InterfaceLockedError naming its owner. */
export async function lockInterface(o: { iface: string; netns?: string }): Promise<InterfaceLock> {
  const name = lockName(o.iface, o.netns);
  const me: LockOwner = { pid: process.pid, iface: o.iface, netns: o.netns ?? 'self', lockedAt: new Date().toISOString() };
  const server = createServer((sock) => sock.end(JSON.stringify(me)));
  if (!(await listen(server, name))) {
    const owner = await askOwner(name);
    // The owner may have exited between the two steps: then the name is free now.
    if (owner !== undefined || !(await listen(server, name))) throw new InterfaceLockedError(owner, o.iface);
  }
  server.unref(); // the lock never keeps the agent alive
  return { name, release: () => new Promise((resolve) => server.close(() => resolve())) };
}
