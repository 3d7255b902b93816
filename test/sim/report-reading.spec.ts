/**
 * Issue 15, "Reports a planner cannot misread": each figure a planner misread, checked where the
 * planner reads it (result.json, the summary, the HTML report, the CLI's own words).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScenarioError, loadScenario, loadScenarioFile, type Scenario } from '../../sim/scenario/load.js';
import { runScenario } from '../../sim/run.js';
import { sweepReport } from '../../sim/report.js';
import { metricsOf } from '../../sim/sweep.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLES = join(here, '../../../sim/examples');
const PACER = join(here, '../../api/cli/pacer.js');
const MS = 1_000_000;

const example = (name: string, durationNs: number): Scenario => ({ ...loadScenarioFile(join(EXAMPLES, `${name}.yaml`)), durationNs });
const tmp = () => mkdtempSync(join(tmpdir(), 'pacer-sim-read-'));

/** incast.yaml with 4 rounds: ends long before its 60 s duration. */
function shortIncastFile(): string {
  const file = join(tmp(), 'incast.yaml');
  writeFileSync(file, readFileSync(join(EXAMPLES, 'incast.yaml'), 'utf8').replace('rounds: 100', 'rounds: 4').replace('rtoMin: 200ms', 'rtoMin: 1ms'));
  return file;
}

describe('sim reports: figures a planner cannot misread (issue 15)', () => {
  it('a class sent by 8 hosts shows its per-host budget, the 8 hosts and budget × 8 beside its total throughput', async () => {
    const r = await runScenario(example('rpc-web-search', 1_000 * MS));
    const search = r.classes.find((c) => c.name === 'search')!;
    assert.equal(search.rate, '400mbit');
    assert.equal(search.sendingHosts, 8);
    assert.equal(search.rateTimesHosts, '3200mbit');
    assert.ok(search.throughputBps > 0 && search.throughputBps <= 3.2e9, String(search.throughputBps));
  });

  it('throughput and goodput are over the same span: a class starting at 1 s is not diluted by the second before (borrowing.yaml)', async () => {
    const r = await runScenario(example('borrowing', 1_500 * MS));
    const batch = r.classes.find((c) => c.name === 'batch')!;
    assert.ok(batch.startNs >= 1_000 * MS && batch.startNs < 1_010 * MS, `batch measured from ${batch.startNs}`);
    // Goodput is throughput less headers and retransmissions: 90–100% of it, never twice it.
    const ratio = batch.goodputBps / batch.throughputBps;
    assert.ok(ratio > 0.9 && ratio <= 1, `goodput ${batch.goodputBps} / throughput ${batch.throughputBps} = ${ratio}`);
    assert.ok(batch.throughputBps > 150e6, `batch sends near its 200mbit once it starts: ${batch.throughputBps}`);
  });

  it('the sweep\'s incast figure is weighted by round time (all rounds\' bytes over their total time), and says so', async () => {
    const r = await runScenario(loadScenarioFile(shortIncastFile()));
    const i = r.incast[0]!;
    assert.equal(i.roundsCompleted, 4);
    const m = metricsOf(r);
    assert.equal(m.incastGoodputOverRoundsBps, Math.round((i.blockBytes * 4 * 8e9) / i.roundTimeTotalNs));
    const plainMean = i.roundGoodputBps.reduce((a, b) => a + b, 0) / 4;
    assert.ok(m.incastGoodputOverRoundsBps! <= plainMean, 'a time-weighted mean of rates is at most their plain mean');
    const html = await sweepReport({ scenario: 'x', seed: 1, complete: true, fctOf: 'incast rounds', axes: [{ name: 'tcp.rtoMin', path: ['tcp', 'rtoMin'], values: ['1ms'] }], points: [{ index: 0, params: { 'tcp.rtoMin': '1ms' }, status: 'done', metrics: m }] } as unknown as Parameters<typeof sweepReport>[0]);
    assert.match(html, /round-time-weighted/);
    assert.doesNotMatch(html, /round mean|per round, mean/i);
  });

  it('pacer sim run: round times in ms, the progress line ends at the scenario\'s actual end, --help names report.html', () => {
    const out = tmp();
    const p = spawnSync(process.execPath, [PACER, 'sim', 'run', shortIncastFile(), '--progress', '--out', out], { encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
    const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    assert.ok(r.simulatedNs < r.durationNs, 'the 4 rounds end before the 60 s duration');
    const row = p.stdout.split('\n').find((l) => /^\s*\d+\s+8\s+4\/4/.test(l));
    assert.ok(row, p.stdout);
    assert.match(row, /\d+\.\d{3}ms\s+\d+\.\d{3}ms/, 'ROUND P50 and P99 in ms');
    assert.doesNotMatch(row, /us\b/);
    const last = p.stderr.trim().split('\n').filter((l) => l.startsWith('sim: ')).at(-1)!;
    const end = `${(r.simulatedNs / 1e9).toFixed(3)}s`;
    const endMs = `${(r.simulatedNs / 1e6).toFixed(3)}ms`;
    assert.ok(last.includes(`of ${end} simulated`) || last.includes(`of ${endMs} simulated`), `${last} (end ${r.simulatedNs} ns)`);
    assert.match(last, /every workload done/);
    const report = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(report, /round p50 \(ms\)/);
    const help = spawnSync(process.execPath, [PACER, 'sim', 'run', '--help'], { encoding: 'utf8' });
    assert.match(help.stdout, /report\.html/);
  });

  it('a size of 32KB is 32,768 bytes (tc\'s meaning), and a duration below its minimum is refused with units', () => {
    const base = readFileSync(join(EXAMPLES, 'incast.yaml'), 'utf8');
    assert.equal(loadScenario(base.replace('buffer: 32kb', 'buffer: 32KB')).switchPort.bufferBytes, 32_768);
    assert.throws(
      () => loadScenario(base.replace('timerGranularity: 1ms', 'timerGranularity: 0us')),
      (e: unknown) => e instanceof ScenarioError && /tcp\.timerGranularity must be at least 1ns; understood "0us" as 0ns/.test(e.message),
    );
    const doc = readFileSync(join(here, '../../../docs/simulator.md'), 'utf8');
    assert.match(doc, /32kb.*32,768 bytes/);
  });
});
