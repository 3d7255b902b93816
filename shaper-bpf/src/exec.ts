/**
 * A small promisified execFile for the rare set-up commands (tc, ip, nsenter).
 * It never throws on a non-zero exit: callers decide what an exit code means,
 * because "Cannot find device" and "Specified qdisc kind is unknown" are answers, not crashes.
 */
import { execFile } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Resolves with the exit code and output; rejects only if the program could not run at all. */
export function run(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error === null) return resolve({ code: 0, stdout, stderr });
      // A numeric code is an exit status; a string code (ENOENT, EACCES) means it never ran.
      if (typeof error.code === 'number') return resolve({ code: error.code, stdout, stderr });
      if (error.signal) {
        const why = error.killed ? `killed after ${timeoutMs} ms` : `killed by ${error.signal}`;
        return resolve({ code: -1, stdout, stderr: `${stderr}${why}` });
      }
      reject(new Error(`cannot run ${cmd}: ${error.message}`));
    });
  });
}

/** A netns given as a name lives under /run/netns (where `ip netns add` puts it); a path is used as is. */
export function netnsPath(netns: string): string {
  return netns.includes('/') ? netns : `/run/netns/${netns}`;
}

/**
 * Runs cmd inside a network namespace with nsenter, entering only the network namespace:
 * `ip netns exec` also remounts /sys, which hides the pins in /sys/fs/bpf (notes/machine.md).
 */
export function runIn(netns: string | undefined, cmd: string, args: readonly string[]): Promise<ExecResult> {
  if (netns === undefined) return run(cmd, args);
  return run('nsenter', [`--net=${netnsPath(netns)}`, cmd, ...args]);
}
