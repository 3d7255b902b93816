/**
 * The API child of bench:agent: bench/api-server.ts (the real `serve()` on a SQLite file, silent
 * logger) in its own Node process, with the test helpers' admin token so test/support's
 * request() and tokenFor() talk to it.
 *
 * Why not `pacer api`: its slow-down of failed authentications counts requests per client address
 * until they finish, and an open SSE watch never finishes; with more than 10 agents watching from
 * one address (here every agent is on 127.0.0.1) every request from that address is then delayed
 * by up to 5 s. api-server.ts sets the threshold out of reach, as bench:api does.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ADMIN_TOKEN, tokenFor } from '../test/support/api-server.js';
import { CLI, killed, type ApiChild } from '../test/support/agent-processes.js';
import { onCleanup } from './cleanup.js';
import { benchNetnsWithVeth } from './netns.js';
import { makeBenchPinDir } from './pins.js';

/** What a bench part needs to run a `pacer agent` child on the kernel datapath against an API child. */
export interface AgentBenchRig {
  dir: string;
  stateDir: string;
  netnsPath: string;
  pinBase: string;
  api: ApiChild;
  /** An agent token bound to the host. */
  token: string;
}

/**
 * A temporary directory, a bench namespace with a veth (iface, peer), a pin directory, the API
 * child and an agent token for `host`; all removed at cleanup, after `pacer agent teardown` of
 * iface (register the agent child's stop after this: cleanups run last-registered first).
 */
export async function agentBenchRig(name: string, iface: string, peer: string, host: string): Promise<AgentBenchRig> {
  const dir = mkdtempSync(join(os.tmpdir(), `pacer-bench-${name}-`));
  onCleanup(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  const netnsPath = `/run/netns/${await benchNetnsWithVeth(iface, peer)}`;
  const pinBase = makeBenchPinDir();
  const api = await startBenchApi(join(dir, 'pacer.db'));
  const token = await tokenFor(api.url, 'agent', host);
  onCleanup('pacer agent teardown', async () => {
    await promisify(execFile)(process.execPath, [CLI, 'agent', 'teardown', '--iface', iface, '--state-dir', stateDir, '--netns', netnsPath, '--pin-base', pinBase]);
  });
  return { dir, stateDir, netnsPath, pinBase, api, token };
}

export async function startBenchApi(dbFile: string): Promise<ApiChild> {
  // stdin is a pipe: the child stops when it closes, which also happens if this process is SIGKILLed.
  const child = spawn(process.execPath, [fileURLToPath(new URL('./api-server.js', import.meta.url))], {
    env: { ...process.env, PACER_BENCH_DB: dbFile, PACER_ADMIN_TOKEN: ADMIN_TOKEN },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  onCleanup('stop the API child', () => killed(child, 'SIGTERM'));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the API child did not print its URL within 30 s')), 30_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('http://'));
      if (line) {
        clearTimeout(timer);
        resolve(line.trim());
      }
    });
    child.once('exit', (code) => reject(new Error(`the API child exited (${code}) before listening`)));
  });
  return { child, url };
}
