/**
 * A real InfluxDB 1.x server for tests: `influxd` (Debian package `influxdb`) on free 127.0.0.1
 * ports, with its meta, data and WAL in a fresh temp dir, nothing reported home.
 *
 *   const influxd = await startInfluxd();      // throws, naming the package, without influxd
 *   try { … `${influxd.url}/mydb` … } finally { await influxd.stop(); }   // process and dir gone
 *
 * halt() and resume() stop and restart the process on the same ports and data (for tests of a
 * client while InfluxDB is down); stop() ends it for good and removes the temp dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './agent-processes.js';

export interface RunningInfluxd {
  /** http://127.0.0.1:PORT (append /DATABASE for the `influx` client or pacer's --influx). */
  readonly url: string;
  /** The temp dir with the config, the data and the log. */
  readonly dir: string;
  /** Stops the process (SIGTERM, SIGKILL after 5 s) and removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Stops the process only; the data and ports stay for resume(). */
  halt(): Promise<void>;
  /** Starts it again on the same ports and data; resolves once /ping answers. */
  resume(): Promise<void>;
  /** What influxd wrote to stderr (its log), for failure messages. */
  log(): string;
}

const START_TIMEOUT_MS = 20_000;

/** Throws a clear error, naming the Debian package, when influxd is not installed. */
export function requireInfluxd(): void {
  const found = spawnSync('influxd', ['version'], { encoding: 'utf8' });
  if (found.error) {
    throw new Error(`influxd not found (${found.error.message}): install the Debian package "influxdb" (apt-get install -y influxdb), which provides /usr/bin/influxd (InfluxDB 1.x)`);
  }
}

function writeConfig(dir: string, httpPort: number, rpcPort: number): string {
  const file = join(dir, 'influxdb.conf');
  writeFileSync(
    file,
    [
      'reporting-disabled = true',
      `bind-address = "127.0.0.1:${rpcPort}"`,
      '[meta]',
      `  dir = "${join(dir, 'meta')}"`,
      '[data]',
      `  dir = "${join(dir, 'data')}"`,
      `  wal-dir = "${join(dir, 'wal')}"`,
      '  query-log-enabled = false',
      '[http]',
      '  enabled = true',
      `  bind-address = "127.0.0.1:${httpPort}"`,
      '  log-enabled = false',
      '[monitor]',
      '  store-enabled = false',
      '[continuous_queries]',
      '  enabled = false',
      '[subscriber]',
      '  enabled = false',
      '',
    ].join('\n'),
  );
  return file;
}

/** Starts influxd on free loopback ports with a fresh temp dir; resolves once /ping answers. */
export async function startInfluxd(): Promise<RunningInfluxd> {
  requireInfluxd();
  const dir = mkdtempSync(join(tmpdir(), 'pacer-influxd-'));
  let proc: ChildProcess | undefined;
  let log = '';
  let url = '';
  let configFile = '';

  const halt = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const force = setTimeout(() => p.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(force);
  };

  const resume = async () => {
    if (proc) return;
    const p = spawn('influxd', ['run', '-config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    p.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    const end = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (p.exitCode !== null || p.signalCode !== null) throw new Error(`influxd exited (${p.exitCode ?? p.signalCode}):\n${log.slice(-2000)}`);
      try {
        if ((await fetch(`${url}/ping`)).status === 204) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) throw new Error(`influxd did not answer /ping within ${START_TIMEOUT_MS / 1000} s:\n${log.slice(-2000)}`);
      await sleep(100);
    }
  };

  const stop = async () => {
    try {
      await halt();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    const httpPort = await freePort();
    const rpcPort = await freePort();
    url = `http://127.0.0.1:${httpPort}`;
    configFile = writeConfig(dir, httpPort, rpcPort);
    await resume();
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, dir, stop, halt, resume, log: () => log };
}
