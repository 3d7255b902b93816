/** Wires the API together. Nothing here but composition. */
import express from 'express';
import type { Logger } from 'pino';
import type { Store } from './store/store.js';
import { ApiMetrics } from './http/metrics.js';
import { authenticate, allow, CLASS_READERS, READERS } from './http/auth.js';
import { authFailureSlowdown } from './http/auth-failure-slowdown.js';
import { authFailureBudget } from './http/auth-failure-budget.js';
import { errorHandler, notFoundHandler } from './http/problems.js';
import { Unavailable } from './errors.js';
import { jsonBody } from './http/json-body.js';
import { ClassService } from './services/classes.js';
import { HostService } from './services/hosts.js';
import { TokenService } from './services/tokens.js';
import { createClassesRouter } from './routes/classes.js';
import { createHostsRouter } from './routes/hosts.js';
import { createTokensRouter } from './routes/tokens.js';
import { createAuditRouter } from './routes/audit.js';
import { createBackupRouter } from './routes/backup.js';
import { WatchStreams, type WatchLimits } from './routes/watch.js';
import { openApiDocument } from './openapi/document.js';
import { createDocsRouter } from './openapi/docs-page.js';

export interface AppOptions {
  store: Store;
  logger: Logger;
  version: string;
  /** Made before the store when the store should report its latencies into it. */
  metrics?: ApiMetrics;
  /** A host without a heartbeat for this long is listed as stale. */
  staleAfterMs?: number;
  /** Interval of the SSE heartbeat comment. */
  watchHeartbeatMs?: number;
  /** Watch caps and the slow-client limit; defaults in DEFAULT_WATCH_LIMITS. */
  watchLimits?: Partial<WatchLimits>;
  bodyLimitBytes?: number;
  /** After this many failed authentications from one address within a minute, its failures are answered slower. */
  authFailuresBeforeSlowdown?: number;
  /** Failed authentications from all addresses together, per window, before the lock-out (auth-failure-budget.ts). */
  authFailureBudget?: { failures: number; windowMs?: number };
}

/** Failed authentications per minute from all addresses before the lock-out (`--auth-failure-budget`). */
export const DEFAULT_AUTH_FAILURE_BUDGET = 600;

export interface App {
  app: express.Express;
  metrics: ApiMetrics;
  watch: WatchStreams;
  tokens: TokenService;
}

export function createApp(options: AppOptions): App {
  const { store, logger, version } = options;
  const metrics = options.metrics ?? new ApiMetrics();
  const classes = new ClassService(store);
  const hosts = new HostService(store, options.staleAfterMs ?? 30_000);
  const tokens = new TokenService(store);
  const watch = new WatchStreams({ store, metrics, heartbeatMs: options.watchHeartbeatMs ?? 15_000, limits: options.watchLimits });
  const document = openApiDocument(version);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // ETags are revisions, set by the class routes; not hashes of bodies.
  app.set('query parser', 'simple');
  app.use(metrics.middleware());

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use('/docs', createDocsRouter());
  // A person who opens the API's address in a browser lands on the reference (issue 11).
  app.get('/', (_req, res) => {
    res.redirect(302, '/docs/');
  });

  app.use(authFailureBudget({ store, registry: metrics.registry, failures: DEFAULT_AUTH_FAILURE_BUDGET, ...options.authFailureBudget }));
  app.use(authFailureSlowdown({ store, failuresBeforeSlowdown: options.authFailuresBeforeSlowdown ?? 10 }));
  app.use(authenticate(store));
  // A class changed with If-Match answers its precondition before its body (412 beats 400).
  const conditionalClassWrite = (req: express.Request) => (req.method === 'PUT' || req.method === 'PATCH') && req.path.startsWith('/v1/classes/') && req.get('if-match') !== undefined;
  app.use(jsonBody(options.bodyLimitBytes ?? 256 * 1024, conditionalClassWrite));

  app.get('/readyz', allow(...CLASS_READERS), async (_req, res) => {
    let full: string | undefined;
    let revision: number;
    try {
      full = await store.unwritable();
      revision = await store.revision();
    } catch (err) {
      throw new Unavailable(`the store does not answer: ${(err as Error).message}`);
    }
    if (full !== undefined) throw new Unavailable(`not ready: ${full}`);
    res.json({ status: 'ready', revision });
  });
  app.get('/metrics', allow(...READERS), async (_req, res) => {
    metrics.revision.set(await store.revision());
    // What an operator alerts on: how many classes, how many hosts, how many of them silent.
    metrics.classes.set((await store.listClasses()).classes.length);
    const all = await hosts.list();
    metrics.hosts.set(all.length);
    metrics.staleHosts.set(all.filter((h) => h.stale).length);
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/v1/openapi.json', allow(...READERS), (_req, res) => {
    res.json(document);
  });
  const mount = (path: string, router: express.Router) => app.use(path, metrics.markMount(path), router);
  mount('/v1/classes', createClassesRouter({ classes, hosts }));
  mount('/v1/hosts', createHostsRouter({ hosts }));
  mount('/v1/watch', watch.router);
  mount('/v1/audit', createAuditRouter({ store }));
  mount('/v1/tokens', createTokensRouter({ tokens }));
  mount('/v1/backup', createBackupRouter({ store }));
  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return { app, metrics, watch, tokens };
}
