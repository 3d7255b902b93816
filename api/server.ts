/**
 * Runs the API: opens the store, makes sure an admin can get in, listens, and shuts down
 * gracefully: stop accepting, end the watch streams, finish in-flight requests, close the store.
 */
import { createServer, type Server } from 'node:http';
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
  /** PACER_ADMIN_TOKEN, for automation. */
  adminToken?: string;
  logger?: Logger;
  version?: string;
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
    server = createServer(app);
    // SSE streams are long; keep Node from cutting them (its default request timeout is 5 minutes).
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
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
