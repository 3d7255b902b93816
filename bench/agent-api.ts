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
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ADMIN_TOKEN } from '../test/support/api-server.js';
import { killed, type ApiChild } from '../test/support/agent-processes.js';
import { onCleanup } from './cleanup.js';

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
