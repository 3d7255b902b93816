/**
 * Load for the watch stream, shared by its tests and `npm run bench:watch`: history written
 * straight into a store file, clients that connect and never read, the API's RSS, and a /healthz
 * prober that records each answer's latency.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { classCreateSchema, toSpec } from '../../api/contract/class.js';
import { SqliteStore } from '../../api/store/sqlite.js';

/** A class body whose watch event is about `bytes` long (the description pads it). */
export function classBody(name: string, bytes = 600): { name: string; rate: string; description: string } {
  return { name, rate: '1mbit', description: 'x'.repeat(Math.max(0, Math.min(1024, bytes - 500))) };
}

/**
 * The n-th of a run of bulky classes: a full description and 64 destination prefixes of its own,
 * so its watch event is about 3 KB and a stalled client's socket buffers fill in fewer changes.
 */
export function bulkyClass(n: number): { name: string; rate: string; description: string; match: { dst: string[] } } {
  const dst = Array.from({ length: 64 }, (_, k) => `fd00:${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}::${k.toString(16)}/128`);
  return { name: `bulky-${n}`, rate: '1mbit', description: 'x'.repeat(1024), match: { dst } };
}

/** Writes `count` class creations into a store file (one group commit), before an API opens it. */
export async function seedHistory(dbFile: string, count: number, eventBytes = 600): Promise<void> {
  const store = SqliteStore.open(dbFile);
  try {
    await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const body = classBody(`seed-${i}`, eventBytes);
        return store.writeClass(body.name, 'seed', () => toSpec(body.name, classCreateSchema.parse(body)));
      }),
    );
  } finally {
    await store.close();
  }
}

/** A raw connection that asks for the watch and never reads what comes back. */
export function stalledWatcher(url: string, token: string, query = ''): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.pause();
      socket.write(`GET /v1/watch${query} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`);
      resolve(socket);
    });
    socket.on('error', () => {}); // the server cuts it: that is the point
    socket.once('error', reject);
  });
}

/** Resident set size of a process, in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Probes GET /healthz one request at a time, every `everyMs`, until stopped; keeps each latency (ms). */
export function healthProber(url: string, everyMs = 50): { latencies: number[]; failures: string[]; stop(): Promise<void> } {
  const latencies: number[] = [];
  const failures: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = performance.now();
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(30_000) });
        await res.text();
        if (res.status !== 200) failures.push(`status ${res.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      latencies.push(performance.now() - start);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    latencies,
    failures,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Polls `check` until it returns true, or fails after `timeoutMs` with `what()`'s description. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
