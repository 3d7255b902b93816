/**
 * `pacer api` as a child process, for tests that kill or signal it: crash safety, shutdown, and
 * the agent's kernel tests (which bring it back on the same port and DB file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ADMIN_TOKEN } from './api-server.js';

export const CLI = join(process.cwd(), 'dist/api/cli/pacer.js');

export interface ApiChild {
  child: ChildProcess;
  url: string;
}

/**
 * Starts the API on `port` (0 = any free port) and resolves once it prints where it listens.
 * `args`: more `pacer api` options; `nodeArgs`: options for node itself.
 */
export async function startApiChild(dbFile: string, port = 0, args: string[] = [], nodeArgs: string[] = []): Promise<ApiChild> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'api', '--listen', `127.0.0.1:${port}`, '--db', dbFile, ...args], {
    env: { ...process.env, PACER_ADMIN_TOKEN: ADMIN_TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`api exited with ${code} before listening: ${out}`)));
  });
  return { child, url };
}

/** SIGKILL (or another signal) and wait for the exit; nothing to do when it has already exited. */
export function killed(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}
