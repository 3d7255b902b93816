// Concern: running a synchronous function inside another network namespace.
//
// setns(2) switches only the CALLING THREAD. That is exactly what we want here: Node runs
// JavaScript, and every koffi call made from it, synchronously on the main thread, so for the
// duration of fn() each libbpf/libc call (netlink sockets for tc, if_nametoindex) is made
// inside the target namespace, while libuv's worker threads — used by async fs/dns/crypto —
// stay where they were. Because fn is synchronous, no other JavaScript can run on this thread
// before we switch back. Do NOT pass an async function: everything after its first await would
// run outside the namespace, so inNetns throws a TypeError when fn returns a Promise.
import { closeSync, openSync } from 'node:fs';
import { BpfError } from './errors.js';
import { lastErrno, libcFns } from './native.js';

const CLONE_NEWNET = 0x40000000;

/**
 * Runs fn with the calling thread in the network namespace at nsPath (e.g. /run/netns/NAME,
 * /proc/PID/ns/net). With nsPath undefined, runs fn in the current namespace.
 */
export function inNetns<T>(nsPath: string | undefined, fn: () => T): T {
  if (nsPath === undefined) return fn();
  // thread-self, not self: /proc/self/ns/net is the thread-group leader's namespace.
  const original = openSync('/proc/thread-self/ns/net', 'r');
  let target: number | undefined;
  try {
    target = openNs(nsPath);
    enter(target, 'enter network namespace', nsPath);
    try {
      const result = fn();
      if (result instanceof Promise) {
        throw new TypeError('inNetns(fn): fn must be synchronous; an async fn would continue outside the namespace');
      }
      return result;
    } finally {
      // If this fails the thread is stuck in the wrong namespace: nothing sane to continue with.
      enter(original, 'return to the original network namespace', '/proc/thread-self/ns/net');
    }
  } finally {
    if (target !== undefined) closeSync(target);
    closeSync(original);
  }
}

function openNs(nsPath: string): number {
  try {
    return openSync(nsPath, 'r');
  } catch (err) {
    throw new BpfError({ operation: 'open network namespace', target: nsPath, errno: -((err as NodeJS.ErrnoException).errno ?? -2) });
  }
}

function enter(fd: number, operation: string, target: string): void {
  // nstype CLONE_NEWNET makes the kernel check that fd really is a network namespace (EINVAL otherwise).
  if ((libcFns.setns(fd, CLONE_NEWNET) as number) !== 0) {
    throw new BpfError({ operation, target, errno: lastErrno() });
  }
}
