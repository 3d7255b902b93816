/** Prometheus metrics of the API: requests by route and status, and store latencies. */
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ApiMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'pacer_api_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'pacer_api_request_duration_seconds',
    help: 'HTTP request latency by method, route and status (SSE streams: their lifetime)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 60, 3600],
    registers: [this.registry],
  });
  private readonly store = new Histogram({
    name: 'pacer_api_store_operation_duration_seconds',
    help: 'Store operation latency, commit (fsync) included',
    labelNames: ['operation'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1],
    registers: [this.registry],
  });
  readonly watchClients = new Gauge({ name: 'pacer_api_watch_clients', help: 'Open watch (SSE) streams', registers: [this.registry] });
  readonly watchSlowCuts = new Counter({
    name: 'pacer_api_watch_slow_disconnects_total',
    help: 'Watch streams cut because the client fell more than the slow-client limit behind',
    registers: [this.registry],
  });
  readonly watchRefused = new Counter({
    name: 'pacer_api_watch_refused_total',
    help: 'Watch streams refused at a cap: per_token (429) or total (503)',
    labelNames: ['cap'] as const,
    registers: [this.registry],
  });
  readonly revision = new Gauge({ name: 'pacer_api_revision', help: 'Latest committed revision', registers: [this.registry] });
  readonly classes = new Gauge({ name: 'pacer_api_classes', help: 'Classes in the store', registers: [this.registry] });
  readonly hosts = new Gauge({ name: 'pacer_api_hosts', help: 'Registered hosts', registers: [this.registry] });
  readonly staleHosts = new Gauge({ name: 'pacer_api_hosts_stale', help: 'Registered hosts without a heartbeat for longer than --stale-after: their enforcement is not confirmed', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  observeStore = (operation: string, seconds: number): void => {
    this.store.observe({ operation }, seconds);
  };

  /** Remembers where a router is mounted: Express resets req.baseUrl once an error leaves the router. */
  markMount(path: string): RequestHandler {
    return (_req, res, next) => {
      res.locals.mountPath = path;
      next();
    };
  }

  middleware(): RequestHandler {
    return (req, res, next) => {
      const start = process.hrtime.bigint();
      res.on('close', () => {
        // The matched route template keeps the label set small: /v1/classes/:name, not each name.
        const mountPath = (res.locals.mountPath as string | undefined) ?? '';
        const path = req.route ? String(req.route.path) : undefined;
        const route = path === undefined ? 'unmatched' : path === '/' && mountPath ? mountPath : `${mountPath}${path}`;
        const labels = { method: req.method, route, status: String(res.statusCode) };
        this.requests.inc(labels);
        this.latency.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
      });
      next();
    };
  }
}
