/**
 * Runs the API: opens the store, makes sure an admin can get in, listens, and shuts down
 * gracefully: stop accepting, end the watch streams, finish in-flight requests, close the store.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { SqliteStore } from './store/sqlite.js';
import { ApiMetrics } from './http/metrics.js';
import { createApp, type AppOptions } from './app.js';

export interface ServeOptions extends Omit<AppOptions, 'store' | 'logger' | 'version' | 'metrics'> {
  host: string;
  port: number;
  dbFile: string;
  historyLimit?: number;
  /** Limits on connections; see DEFAULT_LIMITS and docs/budgets-api.md (Hardening). */
  limits?: Partial<ConnectionLimits>;
  /** PACER_ADMIN_TOKEN, for automation. */
  adminToken?: string;
  logger?: Logger;
  version?: string;
}

export interface ConnectionLimits {
  /** A client must send a request's headers within this long, or it gets 408 and is closed. */
  headersTimeoutMs: number;
  /**
   * A client must send a whole request (headers and body) within this long, or it gets 408 and
   * is closed. Node stops this clock once the request is received, so the response may take as
   * long as it likes: a watch stream is not cut by it.
   */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** Connections beyond this many at once are closed as they arrive. Each agent holds one (its watch). */
  maxConnections: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 1_000,
};

/**
 * The HTTP server with the limits applied. Node checks the header and request timeouts on a
 * timer (connectionsCheckingInterval, 30 s by default), which is set here to a quarter of the
 * shorter timeout so a timeout fires close to its value.
 */
function createLimitedServer(app: RequestListener, limits: ConnectionLimits): Server {
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs, maxConnections } = limits;
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer; got ${value}`);
  }
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new Error(`the headers timeout (${headersTimeoutMs} ms) must not exceed the request timeout (${requestTimeoutMs} ms): headers are part of the request`);
  }
  const server = createServer(
    { headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, keepAliveTimeout: keepAliveTimeoutMs, connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(headersTimeoutMs / 4))) },
    app,
  );
  server.maxConnections = maxConnections;
  return server;
}

export interface RunningApi {
  url: string;
  server: Server;
  /** The admin secret, when this start created one (first start without PACER_ADMIN_TOKEN). */
  newAdminToken?: string;
  close(): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<RunningApi> {
  const logger = options.logger ?? pino({ name: 'pacer-api' });
  const metrics = new ApiMetrics();
  const store = SqliteStore.open(options.dbFile, { historyLimit: options.historyLimit, onTiming: metrics.observeStore });
  let server: Server | undefined;
  try {
    const { app, watch, tokens } = createApp({ ...options, store, logger, metrics, version: options.version ?? '0.1.0' });
    const admin = await tokens.bootstrap(options.adminToken);
    server = createLimitedServer(app, { ...DEFAULT_LIMITS, ...options.limits });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(options.port, options.host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const running = server;
    let closing: Promise<void> | undefined;
    return {
      url: `http://${host}:${address.port}`,
      server: running,
      newAdminToken: admin.secret,
      close: () =>
        (closing ??= (async () => {
          const closed = new Promise<void>((resolve) => running.close(() => resolve()));
          watch.closeAll();
          running.closeIdleConnections();
          await closed;
          await store.close();
        })()),
    };
  } catch (err) {
    server?.close();
    await store.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new Error(`cannot listen on ${options.host}:${options.port}: the address is in use`);
    if (e.code === 'EACCES') throw new Error(`cannot listen on ${options.host}:${options.port}: permission denied`);
    throw err;
  }
}
