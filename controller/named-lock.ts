/**
 * A lock held by a process for as long as it lives: a listening Unix socket in the abstract
 * namespace (Linux: a name, no file). Only one socket can hold a name, and the kernel frees it
 * when its process dies however it dies, so there is no stale lock to detect and no window in which
 * two processes can both take over a dead one's. A second process connects to the name and the
 * owner answers with what it said about itself (its PID, …). Abstract names are per network
 * namespace of the process: lockers must run in the same one to meet.
 *
 * Used for one agent per interface (datapath/interface-lock.ts) and one `pacer demo` per host.
 */
import { createConnection, createServer, type Server } from 'node:net';

export interface NamedLock {
  /** The abstract socket name, without its leading NUL (`ss -xlp` shows it with '@'). */
  readonly name: string;
  release(): Promise<void>;
}

/** Held: the lock. Refused: what its owner says about itself (undefined when it did not answer). */
export type LockResult<Owner> = { lock: NamedLock } | { owner: Owner | undefined };

/** What the owner of `name` says about itself; undefined when it does not answer within `timeoutMs`. */
function askOwner<Owner>(name: string, timeoutMs = 2_000): Promise<Owner | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const sock = createConnection({ path: `\0${name}` });
    const done = (owner: Owner | undefined) => {
      sock.destroy();
      resolve(owner);
    };
    sock.setTimeout(timeoutMs, () => done(undefined));
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('error', () => done(undefined));
    sock.on('end', () => {
      try {
        done(JSON.parse(text) as Owner);
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

/** Takes the lock `name` for this process, answering `me` to whoever asks; or says who holds it. */
export async function takeNamedLock<Owner>(name: string, me: Owner): Promise<LockResult<Owner>> {
  const server = createServer((sock) => sock.end(JSON.stringify(me)));
  if (!(await listen(server, name))) {
    const owner = await askOwner<Owner>(name);
    // The owner may have exited between the two steps: then the name is free now.
    if (owner !== undefined || !(await listen(server, name))) return { owner };
  }
  server.unref(); // the lock never keeps the process alive
  return { lock: { name, release: () => new Promise((resolve) => server.close(() => resolve())) } };
}
