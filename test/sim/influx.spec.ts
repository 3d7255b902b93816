/**
 * `pacer sim run --influx URL` against a real influxd (test/support/influxd.ts): the points that
 * arrive are the result's series — same values, one per bin at the bin's end — under the
 * measurements and tags docs/simulator.md lists; an unreachable InfluxDB fails the command but
 * keeps the result.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InfluxDB } from 'influx';
import { startInfluxd, type RunningInfluxd } from '../support/influxd.js';
import { freePort } from '../support/agent-processes.js';
import { INFLUX_MEASUREMENTS } from '../../sim/influx.js';
import type { SimResult } from '../../sim/run.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLES = join(here, '../../../sim/examples');
const PACER = join(here, '../../api/cli/pacer.js');
const DB = 'pacer_sim_test';

describe('pacer sim run --influx (real influxd)', function () {
  this.timeout(120_000);
  let influxd: RunningInfluxd;
  let client: InfluxDB;
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'pacer-sim-influx-'));
    dirs.push(d);
    return d;
  };

  before(async () => {
    influxd = await startInfluxd();
    client = new InfluxDB(`${influxd.url}/${DB}`);
  });
  after(async () => {
    await influxd?.stop();
    dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
  });

  /** Runs an example for 300 ms with --influx; returns the result and the CLI's stderr. */
  function run(example: string, runTag: string): { result: SimResult; stderr: string } {
    const out = tmp();
    const p = spawnSync(process.execPath, [PACER, 'sim', 'run', join(EXAMPLES, example), '--duration', '300ms', '--out', out, '--influx', `${influxd.url}/${DB}`, '--influx-run', runTag], { encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr + influxd.log().slice(-2000));
    return { result: JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as SimResult, stderr: p.stderr };
  }

  it('classes, flows, ports and the run: the result series, one point per bin at its end, tagged scenario/seed/run', async () => {
    const started = Date.now();
    const { result: r, stderr } = run('onoff.yaml', 'onoff-1');
    assert.match(stderr, /wrote \d+ points to http:\/\/127\.0\.0\.1:\d+\/pacer_sim_test \(run onoff-1\)/);
    const measurements = (await client.getMeasurements(DB)).sort();
    for (const m of [INFLUX_MEASUREMENTS.class, INFLUX_MEASUREMENTS.flow, INFLUX_MEASUREMENTS.port, INFLUX_MEASUREMENTS.run]) assert.ok(measurements.includes(m), `${m} in ${measurements}`);

    // Classes: throughput_bps per bin, equal to the result's series.
    const video = await client.query<{ time: { getNanoTime(): string }; throughput_bps: number; seed: string; scenario: string }>(
      `SELECT * FROM ${INFLUX_MEASUREMENTS.class} WHERE "run" = 'onoff-1' AND "class" = 'video' ORDER BY time`,
      { precision: 'n' },
    );
    const expected = r.classes.find((c) => c.name === 'video')!.throughputSeriesBps;
    assert.equal(expected.length, 6, '300 ms in 50 ms bins');
    assert.deepEqual(video.map((p) => p.throughput_bps), expected);
    assert.ok(video.every((p) => p.scenario === 'onoff' && p.seed === '1'));
    // Stamped at each bin's end: the wall-clock start + (b + 1) · 50 ms.
    const t = video.map((p) => BigInt(p.time.getNanoTime()));
    for (let b = 1; b < t.length; b++) assert.equal(t[b]! - t[b - 1]!, 50_000_000n);
    const startNs = t[0]! - 50_000_000n;
    assert.ok(startNs >= BigInt(started - 1000) * 1_000_000n && startNs <= BigInt(Date.now()) * 1_000_000n, 'time 0 is the run\'s wall-clock start');

    // Flows: the bulk flow and the on/off flow, goodput per bin.
    const flows = await client.query<{ kind: string; flow: string; goodput_bps: number }>(`SELECT * FROM ${INFLUX_MEASUREMENTS.flow} WHERE "run" = 'onoff-1' ORDER BY time`);
    const onoff = r.onoff[0]!.flows[0]!;
    assert.deepEqual(flows.filter((p) => p.kind === 'onoff').map((p) => p.goodput_bps), onoff.goodputSeriesBps);
    assert.deepEqual(flows.filter((p) => p.kind === 'bulk').map((p) => p.goodput_bps), r.flows[0]!.goodputSeriesBps);
    assert.ok(onoff.goodputSeriesBps.some((x) => x > 0));

    // Ports: mean queue and drops per bin for every port that queued.
    const ports = await client.query<{ port: string; queue_bytes: number; drops: number }>(`SELECT * FROM ${INFLUX_MEASUREMENTS.port} WHERE "run" = 'onoff-1' ORDER BY time`);
    const nic = r.hosts.find((p) => p.name === 'app.nic')!;
    assert.deepEqual(ports.filter((p) => p.port === 'app.nic').map((p) => p.queue_bytes), nic.queueSeriesBytes);
    assert.ok(nic.queueSeriesBytes!.some((q) => q > 0), 'the shaped NIC queues');

    const [summary] = await client.query<{ events: number; complete: boolean; timeouts: number }>(`SELECT * FROM ${INFLUX_MEASUREMENTS.run} WHERE "run" = 'onoff-1'`);
    assert.equal(summary!.events, r.events);
    assert.equal(summary!.complete, true);
  });

  it('RPC workloads: goodput and completions per bin; the completions add up to the result', async () => {
    const { result: r } = run('rpc-web-search.yaml', 'rpc-1');
    for (const w of r.rpc) {
      const rows = await client.query<{ goodput_bps: number; completed: number; sizes: string; class: string }>(
        `SELECT * FROM ${INFLUX_MEASUREMENTS.rpc} WHERE "run" = 'rpc-1' AND "workload" = '${w.workload}' ORDER BY time`,
      );
      assert.deepEqual(rows.map((p) => p.goodput_bps), w.goodputSeriesBps);
      assert.equal(rows.reduce((a, p) => a + p.completed, 0), w.completed);
      assert.ok(rows.every((p) => p.sizes === 'web-search' && p.class === w.class));
    }
    assert.ok(r.rpc.some((w) => w.completed > 0));
  });

  it('a long run writes completed bins while it runs; after Ctrl-C every bin is there exactly once', async () => {
    const out = tmp();
    const child = spawn(
      process.execPath,
      [PACER, 'sim', 'run', join(EXAMPLES, 'rpc-web-search.yaml'), '--duration', '600s', '--out', out, '--influx', `${influxd.url}/${DB}`, '--influx-run', 'live-1'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const count = async () => (await client.query<{ n: number }>(`SELECT COUNT(throughput_bps) AS n FROM ${INFLUX_MEASUREMENTS.class} WHERE "run" = 'live-1' AND "class" = 'search'`))[0]?.n ?? 0;
    let during = 0;
    try {
      // Points appear while the simulation is still running (it would run for 600 s simulated).
      for (const deadline = Date.now() + 60_000; during === 0; ) {
        if (child.exitCode !== null) assert.fail(`pacer sim run exited (${child.exitCode}) early:\n${stderr}`);
        if (Date.now() > deadline) assert.fail(`no points within 60 s:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 300));
        during = await count();
      }
      assert.equal(child.exitCode, null, 'still running when the first points arrived');
      child.kill('SIGINT');
      assert.equal(await exited, 130, stderr);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as SimResult;
    assert.equal(r.complete, false);
    const expected = r.classes.find((c) => c.name === 'search')!.throughputSeriesBps;
    assert.ok(expected.length > during, `${during} bins during the run, ${expected.length} in all`);
    const rows = await client.query<{ throughput_bps: number }>(`SELECT * FROM ${INFLUX_MEASUREMENTS.class} WHERE "run" = 'live-1' AND "class" = 'search' ORDER BY time`);
    assert.deepEqual(rows.map((p) => p.throughput_bps), expected, 'each bin once, with its final value');
    const [summary] = await client.query<{ complete: boolean }>(`SELECT * FROM ${INFLUX_MEASUREMENTS.run} WHERE "run" = 'live-1'`);
    assert.equal(summary!.complete, false);
  });

  it('an unreachable InfluxDB fails the command (exit 1) with the reason, and the result is still written', async () => {
    const out = tmp();
    const port = await freePort();
    const p = spawnSync(process.execPath, [PACER, 'sim', 'run', join(EXAMPLES, 'two-classes.yaml'), '--duration', '100ms', '--out', out, '--influx', `http://127.0.0.1:${port}/x`], { encoding: 'utf8' });
    assert.equal(p.status, 1);
    assert.match(p.stderr, new RegExp(`could not write to InfluxDB at http://127\\.0\\.0\\.1:${port}/x: .*ECONNREFUSED.*\\(the result is in `));
    assert.ok(existsSync(join(out, 'result.json')));
    const bad = spawnSync(process.execPath, [PACER, 'sim', 'run', join(EXAMPLES, 'two-classes.yaml'), '--duration', '100ms', '--out', out, '--influx', influxd.url], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /no database in the path/);
  });
});
