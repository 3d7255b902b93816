/**
 * A real API on a real SQLite file in a fresh temporary directory, listening on loopback.
 * Tests talk to it over real HTTP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { serve, type RunningApi, type ServeOptions } from '../../api/server.js';

export const ADMIN_TOKEN = 'pacer-test-admin-token-0123456789';

export interface TestApi {
  url: string;
  dir: string;
  dbFile: string;
  api: RunningApi;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
  /** Stops the server but keeps the file, e.g. to reopen it. */
  stop(): Promise<void>;
}

export async function startTestApi(options: Partial<ServeOptions> & { dir?: string } = {}): Promise<TestApi> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'pacer-test-'));
  const dbFile = options.dbFile ?? join(dir, 'pacer.db');
  const api = await serve({
    host: '127.0.0.1',
    port: 0,
    dbFile,
    adminToken: ADMIN_TOKEN,
    logger: pino({ level: 'silent' }),
    authFailuresBeforeSlowdown: 1_000_000,
    authFailureBudget: { failures: 1_000_000 },
    ...options,
  });
  return {
    url: api.url,
    dir,
    dbFile,
    api,
    stop: () => api.close(),
    close: async () => {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** One HTTP request with a bearer token; parses JSON and problem+json bodies. */
export async function request<T = any>(
  base: string,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown; headers?: Record<string, string>; rawBody?: string } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, headers: res.headers, body: (type.includes('json') && text ? JSON.parse(text) : text) as T };
}

/** Creates a token with a role and returns its secret. */
export async function tokenFor(base: string, role: string, host?: string): Promise<string> {
  const r = await request(base, 'POST', '/v1/tokens', { body: { name: `test-${role}`, role, ...(host ? { host } : {}) } });
  if (r.status !== 201) throw new Error(`token create failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token as string;
}
