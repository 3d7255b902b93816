/**
 * `pacer sim run --influx URL`: the run's time series as InfluxDB 1.x points (the `influx`
 * package, as the agent's metrics sink uses it), so simulated runs sit next to the agents'
 * measured `pacer_class` series in the same Grafana. Measurements, tags and fields are listed in
 * docs/simulator.md ("InfluxDB output").
 *
 * Points are written after the run from the result (also a partial one after Ctrl-C), one per
 * bin, stamped at the end of the bin: the run's wall-clock start plus simulated time, in ns. The
 * `run` tag (the start time, ISO 8601, unless given) tells runs apart; `scenario` and `seed` are
 * tags too. The database is created if missing.
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

/** The points of a result (pure: what is written, for tests and for the writer). */
export function influxPoints(r: SimResult, epochNs: bigint, run: string): IPoint[] {
  const points: IPoint[] = [];
  const base = { scenario: r.scenario, seed: String(r.seed), run };
  const at = (b: number) => String(epochNs + BigInt(Math.min((b + 1) * r.binNs, r.simulatedNs)));
  for (const c of r.classes) {
    c.throughputSeriesBps.forEach((bps, b) => points.push({ measurement: INFLUX_MEASUREMENTS.class, tags: { ...base, class: c.name }, fields: { throughput_bps: bps }, timestamp: at(b) }));
  }
  const flows = [
    ...r.flows.map((f) => ({ id: f.id, workload: f.workload, kind: 'bulk', from: f.from, to: f.to, class: f.class, series: f.goodputSeriesBps })),
    ...r.onoff.flatMap((w) => w.flows.map((f) => ({ id: f.id, workload: w.workload, kind: 'onoff', from: w.from, to: w.to, class: w.class, series: f.goodputSeriesBps }))),
  ];
  for (const f of flows) {
    const tags = { ...base, flow: String(f.id), workload: String(f.workload), kind: f.kind, from: f.from, to: f.to, class: f.class };
    f.series.forEach((bps, b) => points.push({ measurement: INFLUX_MEASUREMENTS.flow, tags, fields: { goodput_bps: bps }, timestamp: at(b) }));
  }
  for (const w of r.rpc) {
    const tags = { ...base, workload: String(w.workload), class: w.class, sizes: w.sizes };
    w.goodputSeriesBps.forEach((bps, b) => points.push({ measurement: INFLUX_MEASUREMENTS.rpc, tags, fields: { goodput_bps: bps, completed: w.completedSeries[b] ?? 0 }, timestamp: at(b) }));
  }
  for (const [kind, ports] of [['host', r.hosts], ['switch', r.switchPorts]] as const) {
    for (const p of ports) {
      if (!p.queueSeriesBytes || !p.dropSeries) continue;
      const drops = p.dropSeries;
      p.queueSeriesBytes.forEach((q, b) => points.push({ measurement: INFLUX_MEASUREMENTS.port, tags: { ...base, port: p.name, kind }, fields: { queue_bytes: q, drops: drops[b] ?? 0 }, timestamp: at(b) }));
    }
  }
  const totalDrops = Object.values(r.drops).reduce((a, b) => a + b, 0);
  points.push({
    measurement: INFLUX_MEASUREMENTS.run,
    tags: base,
    fields: { complete: r.complete, simulated_ns: r.simulatedNs, events: r.events, drops: totalDrops, retransmits: r.retransmits, timeouts: r.timeouts },
    timestamp: String(epochNs + BigInt(r.simulatedNs)),
  });
  return points;
}

/** Creates the database if needed and writes every point in batches; resolves with the count. */
export async function writeInflux(r: SimResult, target: InfluxTarget, batch = 5_000): Promise<number> {
  const { influx, database } = influxClient(target.url);
  const names = await influx.getDatabaseNames();
  if (!names.includes(database)) await influx.createDatabase(database);
  const points = influxPoints(r, target.epochNs, target.run);
  for (let i = 0; i < points.length; i += batch) await influx.writePoints(points.slice(i, i + batch), { precision: 'n', database });
  return points.length;
}
