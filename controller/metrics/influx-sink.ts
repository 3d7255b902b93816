/**
 * Per class and interface metrics to InfluxDB (1.x, through the `influx` package). Every
 * intervalMs the sink reads each interface's stats and config maps, turns the counters into
 * rates since the previous sample and queues one `pacer_class` point per class. Points are
 * written in batches; while InfluxDB is unreachable they stay queued, at most maxBuffer of them
 * (the oldest are dropped first and counted), and the write is retried on the next tick.
 * Nothing here blocks or throws into the agent: the timer is unref'd and every error is logged.
 * Queueing-delay percentiles (delay_p50_ns, delay_p99_ns) come from what each class's delay
 * histogram gained over the interval, read only for classes that passed packets
 * (delay-histograms.ts).
 * Measurement, tags and fields are documented in docs/agent.md ("Metrics in InfluxDB").
 */
import { InfluxDB, type IPoint, type IPoolOptions } from 'influx';
import { delayQuantile, type Datapath, type DelayHistogram } from '../../shaper-bpf/src/datapath.js';
import { HIST_MAX_SHIFT } from '../../shaper-bpf/src/delay-hist.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import type { Logger } from '../config/module.js';
import { DelayHistogramCache, histogramIncrease, type HistogramSource } from './delay-histograms.js';

type IBackoffStrategy = NonNullable<IPoolOptions['backoff']>;

export const INFLUX_MEASUREMENT = 'pacer_class';

export interface InfluxSource {
  iface: string;
  /** shaping | policing */
  mode: string;
  datapath: Pick<Datapath, 'stats' | 'read'> & HistogramSource;
}

export interface InfluxSinkOptions {
  /** http://[user:pass@]host:port/database */
  url: string;
  /** The `host` tag. */
  host: string;
  /** The interfaces to sample, read at every tick. */
  sources: () => InfluxSource[];
  /** Class id → name (the `class` tag); the id in text when unknown. */
  className?: (id: number) => string | undefined;
  log?: Pick<Logger, 'warn' | 'info'>;
  /** Sampling and write interval; 0 = no timer (the caller calls tick()). Default 1000. */
  intervalMs?: number;
  /** Most points kept while InfluxDB is unreachable. Default 10,000. */
  maxBuffer?: number;
  /** Most points in one write. Default 5,000. */
  batchSize?: number;
  /** HTTP timeout of one request. Default 5,000 ms. */
  requestTimeoutMs?: number;
  now?: () => number;
  /** Where histograms are read (shared with /metrics in the agent); a cache of its own by default. */
  histograms?: DelayHistogramCache;
}

/**
 * A delay percentile as an Influx field, ns: the upper bound of the data plane's bucket holding it
 * (delayQuantile); the overflow bucket (17.2 s or more, beyond any sensible horizon) has no upper
 * bound and Influx no infinity, so it is written as its lower bound, 2^34 ns.
 */
function percentileField(hist: DelayHistogram, q: number): number | undefined {
  const v = delayQuantile(hist, q);
  return v === Infinity ? 2 ** HIST_MAX_SHIFT : v;
}

/** The influx pool disables a host after a failure; retry it after a constant delay, not up to minutes. */
function constantBackoff(ms: number): IBackoffStrategy {
  const b: IBackoffStrategy = { getDelay: () => ms, next: () => b, reset: () => b };
  return b;
}

export class InfluxSink {
  readonly database: string;
  private readonly influx: InfluxDB;
  private readonly buffer: IPoint[] = [];
  private readonly previous = new Map<string, { at: number; s: ClassStats; hist: DelayHistogram | undefined }>();
  private readonly histograms: DelayHistogramCache;
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private databaseReady = false;
  private failing = false;
  /** Points dropped because the buffer was full. */
  dropped = 0;
  /** Points written. */
  written = 0;
  lastError: string | null = null;

  constructor(private readonly o: InfluxSinkOptions) {
    const path = new URL(o.url).pathname.replace(/^\/+|\/+$/g, '');
    if (!path) throw new Error(`influx URL ${o.url}: no database (e.g. http://127.0.0.1:8086/pacer)`);
    this.database = decodeURIComponent(path);
    this.histograms = o.histograms ?? new DelayHistogramCache();
    const u = new URL(o.url);
    this.influx = new InfluxDB({
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: Number(u.port || (u.protocol === 'https:' ? 443 : 8086)),
      protocol: u.protocol === 'https:' ? 'https' : 'http',
      username: decodeURIComponent(u.username) || undefined,
      password: decodeURIComponent(u.password) || undefined,
      database: this.database,
      pool: { maxRetries: 0, requestTimeout: o.requestTimeoutMs ?? 5_000, backoff: constantBackoff(Math.min(1_000, o.intervalMs || 1_000)) },
    });
  }

  get maxBuffer(): number {
    return this.o.maxBuffer ?? 10_000;
  }

  /** Points waiting to be written. */
  get pending(): number {
    return this.buffer.length;
  }

  start(): void {
    const ms = this.o.intervalMs ?? 1_000;
    if (ms > 0 && !this.timer) this.timer = setInterval(() => void this.tick(), ms).unref();
  }

  /** Stops the timer; a last write of what is queued is tried (bounded by the request timeout). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => {});
  }

  /** One sample, then a write attempt. Never rejects. */
  async tick(): Promise<void> {
    try {
      this.sample();
    } catch (err) {
      this.o.log?.warn({ err: (err as Error).message }, 'influx: could not read the stats maps');
    }
    await this.flush();
  }

  /** Reads every interface and queues one point per class seen in the previous sample too. */
  sample(): void {
    const at = (this.o.now ?? Date.now)();
    const seen = new Set<string>();
    const points: IPoint[] = [];
    for (const src of this.o.sources()) {
      const configs = src.datapath.read().classes;
      const stats = src.datapath.stats().classes;
      const hists = this.histograms.histograms(src.datapath, stats);
      for (const [id, s] of stats) {
        const key = `${src.iface}\0${id}`;
        seen.add(key);
        const prev = this.previous.get(key);
        const hist = hists.get(id);
        this.previous.set(key, { at, s, hist });
        const dt = prev ? (at - prev.at) / 1000 : 0;
        if (!prev || dt <= 0) continue;
        // A counter that went down was reset (slot freed and reused): count from zero.
        const d = (k: keyof ClassStats) => (s[k] >= prev.s[k] ? s[k] - prev.s[k] : s[k]);
        const delayed = d('delayed');
        // Percentiles of the packets that passed in the interval only; none passed: no field (not 0).
        // The cache returns the same histogram object while the class passes nothing.
        const passed = hist && hist !== prev.hist ? histogramIncrease(hist, prev.hist) : undefined;
        const percentiles = passed && passed.total > 0 ? { delay_p50_ns: percentileField(passed, 0.5)!, delay_p99_ns: percentileField(passed, 0.99)! } : {};
        points.push({
          measurement: INFLUX_MEASUREMENT,
          tags: { host: this.o.host, iface: src.iface, class: this.o.className?.(id) ?? String(id), class_id: String(id), mode: src.mode },
          fields: {
            bytes_per_s: d('bytes') / dt,
            packets_per_s: d('packets') / dt,
            delayed: delayed,
            mean_delay_ns: delayed > 0 ? d('delay_ns') / delayed : 0,
            horizon_drops: d('horizon_drops'),
            ce_marks: d('ce_marks'),
            contended: d('contended'),
            effective_rate_bps: configs.get(id)?.rate_bps ?? 0,
            interval_s: dt,
            ...percentiles,
          },
          timestamp: new Date(at),
        });
      }
    }
    for (const k of this.previous.keys()) if (!seen.has(k)) this.previous.delete(k);
    this.enqueue(points);
  }

  private enqueue(points: IPoint[]): void {
    this.buffer.push(...points);
    const over = this.buffer.length - this.maxBuffer;
    if (over > 0) {
      this.buffer.splice(0, over);
      this.dropped += over;
    }
  }

  /** Writes what is queued, in batches; one write at a time. Never rejects. */
  flush(): Promise<void> {
    this.flushing ??= this.writeAll().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async writeAll(): Promise<void> {
    try {
      while (this.buffer.length > 0) {
        if (!this.databaseReady) {
          await this.influx.createDatabase(this.database); // CREATE DATABASE is idempotent
          this.databaseReady = true;
        }
        const batch = this.buffer.slice(0, this.o.batchSize ?? 5_000);
        await this.influx.writePoints(batch, { database: this.database, precision: 'ms' });
        // Points dropped meanwhile were the oldest: remove what was written, by identity.
        const sent = new Set(batch);
        let n = 0;
        while (n < this.buffer.length && sent.has(this.buffer[n]!)) n++;
        this.buffer.splice(0, n);
        this.written += batch.length;
      }
      if (this.failing) this.o.log?.info({ database: this.database }, 'influx: writing again');
      this.failing = false;
      this.lastError = null;
    } catch (err) {
      this.databaseReady = false;
      this.lastError = (err as Error).message;
      if (!this.failing) this.o.log?.warn({ err: this.lastError, pending: this.buffer.length, maxBuffer: this.maxBuffer }, 'influx: write failed; points are kept and retried');
      this.failing = true;
    }
  }

  /** For tests and tools: the client, e.g. to query back. */
  client(): InfluxDB {
    return this.influx;
  }
}
