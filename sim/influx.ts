/**
 * `pacer sim run --influx URL`: the run's time series as InfluxDB 1.x points (the `influx`
 * package, as the agent's metrics sink uses it), so simulated runs sit next to the agents'
 * measured `pacer_class` series in the same Grafana. Measurements, tags and fields are listed in
 * docs/simulator.md ("InfluxDB output").
 *
 * Points are written while the run goes: every few seconds of wall time, the bins completed
 * since the last write (a completed bin's figures are final); at the end, the last (partial)
 * bin and one summary point — also after Ctrl-C. One point per bin, stamped at the end of the
 * bin: the run's wall-clock start plus simulated time, in ns. The `run` tag (the start time,
 * ISO 8601, unless given) tells runs apart; `scenario` and `seed` are tags too. The database is
 * created if missing.
 */
import { InfluxDB, type IPoint } from 'influx';
import type { SimResult } from './run.js';

export const INFLUX_MEASUREMENTS = {
  class: 'pacer_sim_class',
  flow: 'pacer_sim_flow',
  rpc: 'pacer_sim_rpc',
  port: 'pacer_sim_port',
  run: 'pacer_sim_run',
} as const;

export interface InfluxTarget {
  /** http://[user:pass@]host:port/database */
  url: string;
  /** Wall-clock ns of simulated time 0 (as a bigint: ns since the epoch exceed 2^53). */
  epochNs: bigint;
  /** The `run` tag. */
  run: string;
}

/** Parses the URL: the database is its path. Throws a plain Error with a message for the CLI. */
export function influxClient(url: string): { influx: InfluxDB; database: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--influx ${url}: not a URL (e.g. http://127.0.0.1:8086/pacer)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--influx ${url}: the scheme is http or https`);
  const database = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, ''));
  if (!database) throw new Error(`--influx ${url}: no database in the path (e.g. http://127.0.0.1:8086/pacer)`);
  const influx = new InfluxDB({
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || (u.protocol === 'https:' ? 443 : 8086)),
    protocol: u.protocol === 'https:' ? 'https' : 'http',
    username: decodeURIComponent(u.username) || undefined,
    password: decodeURIComponent(u.password) || undefined,
    database,
    pool: { maxRetries: 0, requestTimeout: 10_000 },
  });
  return { influx, database };
}

/**
 * The points of a result (pure: what is written). Only bins in [fromBin, toBin), and the run's
 * summary point only when asked (at the end).
 */
export function influxPoints(r: SimResult, epochNs: bigint, run: string, fromBin = 0, toBin = Infinity, summary = true): IPoint[] {
  const points: IPoint[] = [];
  const base = { scenario: r.scenario, seed: String(r.seed), run };
  const at = (b: number) => String(epochNs + BigInt(Math.min((b + 1) * r.binNs, r.simulatedNs)));
  /** Calls add(value, bin) for the bins in range. */
  const each = <T>(series: readonly T[], add: (v: T, b: number) => void) => {
    for (let b = fromBin; b < Math.min(toBin, series.length); b++) add(series[b]!, b);
  };
  for (const c of r.classes) {
    each(c.throughputSeriesBps, (bps, b) => points.push({ measurement: INFLUX_MEASUREMENTS.class, tags: { ...base, class: c.name }, fields: { throughput_bps: bps }, timestamp: at(b) }));
  }
  const flows = [
    ...r.flows.map((f) => ({ id: f.id, workload: f.workload, kind: 'bulk', from: f.from, to: f.to, class: f.class, series: f.goodputSeriesBps })),
    ...r.onoff.flatMap((w) => w.flows.map((f) => ({ id: f.id, workload: w.workload, kind: 'onoff', from: w.from, to: w.to, class: w.class, series: f.goodputSeriesBps }))),
  ];
  for (const f of flows) {
    const tags = { ...base, flow: String(f.id), workload: String(f.workload), kind: f.kind, from: f.from, to: f.to, class: f.class };
    each(f.series, (bps, b) => points.push({ measurement: INFLUX_MEASUREMENTS.flow, tags, fields: { goodput_bps: bps }, timestamp: at(b) }));
  }
  for (const w of r.rpc) {
    const tags = { ...base, workload: String(w.workload), class: w.class, sizes: w.sizes };
    each(w.goodputSeriesBps, (bps, b) => points.push({ measurement: INFLUX_MEASUREMENTS.rpc, tags, fields: { goodput_bps: bps, completed: w.completedSeries[b] ?? 0 }, timestamp: at(b) }));
  }
  for (const [kind, ports] of [['host', r.hosts], ['switch', r.switchPorts]] as const) {
    for (const p of ports) {
      if (!p.queueSeriesBytes || !p.dropSeries) continue;
      const drops = p.dropSeries;
      each(p.queueSeriesBytes, (q, b) => points.push({ measurement: INFLUX_MEASUREMENTS.port, tags: { ...base, port: p.name, kind }, fields: { queue_bytes: q, drops: drops[b] ?? 0 }, timestamp: at(b) }));
    }
  }
  if (!summary) return points;
  const totalDrops = Object.values(r.drops).reduce((a, b) => a + b, 0);
  points.push({
    measurement: INFLUX_MEASUREMENTS.run,
    tags: base,
    fields: { complete: r.complete, simulated_ns: r.simulatedNs, events: r.events, drops: totalDrops, retransmits: r.retransmits, timeouts: r.timeouts },
    timestamp: String(epochNs + BigInt(r.simulatedNs)),
  });
  return points;
}

/**
 * Streams a run's points: `progress(result)` with a snapshot of the running simulation writes
 * the bins completed since the last call; `finish(result)` writes the rest and the summary.
 * Writes are serial; the first error stops the streaming and is thrown by finish() (the run
 * itself goes on: InfluxDB must not stop a simulation).
 */
export class InfluxStream {
  /** Points written so far. */
  written = 0;
  private readonly influx: InfluxDB;
  private readonly database: string;
  private ready: Promise<void> | undefined;
  private chain: Promise<void> = Promise.resolve();
  private error: Error | undefined;
  /** Bins already written: [0, nextBin). */
  private nextBin = 0;

  constructor(private readonly target: InfluxTarget, private readonly batch = 5_000) {
    ({ influx: this.influx, database: this.database } = influxClient(target.url));
  }

  /** Whether a write is still in flight (the caller skips snapshots meanwhile). */
  busy = false;

  progress(snapshot: SimResult): void {
    if (this.error || this.busy) return;
    const completed = Math.floor(snapshot.simulatedNs / snapshot.binNs);
    if (completed <= this.nextBin) return;
    const points = influxPoints(snapshot, this.target.epochNs, this.target.run, this.nextBin, completed, false);
    this.nextBin = completed;
    this.enqueue(points);
  }

  /** Writes what is left (the last bins and the summary); rejects with the first error. */
  async finish(r: SimResult): Promise<number> {
    if (!this.error) this.enqueue(influxPoints(r, this.target.epochNs, this.target.run, this.nextBin));
    await this.chain;
    if (this.error) throw this.error;
    return this.written;
  }

  private enqueue(points: IPoint[]): void {
    this.busy = true;
    this.chain = this.chain.then(async () => {
      if (this.error) return;
      try {
        this.ready ??= this.createDatabase();
        await this.ready;
        for (let i = 0; i < points.length; i += this.batch) {
          await this.influx.writePoints(points.slice(i, i + this.batch), { precision: 'n', database: this.database });
          this.written += Math.min(this.batch, points.length - i);
        }
      } catch (e) {
        this.error = e instanceof Error ? e : new Error(String(e));
      } finally {
        this.busy = false;
      }
    });
  }

  private async createDatabase(): Promise<void> {
    const names = await this.influx.getDatabaseNames();
    if (!names.includes(this.database)) await this.influx.createDatabase(this.database);
  }
}
