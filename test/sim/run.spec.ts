import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadScenarioFile, type Scenario } from '../../sim/scenario/load.js';
import { runScenario } from '../../sim/run.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Sources, not dist: the examples are YAML and are not copied by tsc. */
const EXAMPLES = join(here, '../../../sim/examples');
const PACER = join(here, '../../api/cli/pacer.js');
const MS = 1_000_000;

/** Short versions of the examples, so tests stay fast. */
function shortened(s: Scenario, durationNs: number, rounds = 3): Scenario {
  return { ...s, durationNs, workloads: s.workloads.map((w) => (w.kind === 'incast' ? { ...w, rounds } : w)) };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pacer-sim-'));
}

/** two-classes.yaml with another duration, written to a temp file. */
function twoClassesFile(duration: string): string {
  const dir = tmp();
  const file = join(dir, 'two-classes.yaml');
  writeFileSync(file, readFileSync(join(EXAMPLES, 'two-classes.yaml'), 'utf8').replace('duration: 2s', `duration: ${duration}`));
  return file;
}

describe('sim run: examples', () => {
  for (const name of ['incast', 'two-classes', 'borrowing']) {
    it(`${name}.yaml loads and runs`, async () => {
      const r = await runScenario(shortened(loadScenarioFile(join(EXAMPLES, `${name}.yaml`)), 200 * MS));
      assert.equal(r.complete, true);
      assert.ok(r.events > 0);
      assert.ok(r.classes.some((c) => c.bytes > 0));
      JSON.parse(JSON.stringify(r));
    });
  }

  it('incast: rounds complete, per-round goodput, RTO timeouts at RTOmin 200 ms (Vasudevan et al. 2009)', async () => {
    const r = await runScenario(shortened(loadScenarioFile(join(EXAMPLES, 'incast.yaml')), 10_000 * MS, 5));
    const i = r.incast[0]!;
    assert.equal(i.roundsCompleted, 5);
    assert.equal(i.roundGoodputBps.length, 5);
    assert.ok(i.timeouts > 0 && r.drops.buffer > 0, 'the 32 KB port toward the client overflows');
    assert.ok(i.goodputBps < 0.15 * 1e9, `8 servers collapse below 15% of 1 Gbit/s, got ${i.goodputBps}`);
  });

  it('two-classes: budgets 2:1 on one egress give 2:1 throughput and goodput (within 1%: ratio 2 ± 0.02)', async () => {
    const r = await runScenario(shortened(loadScenarioFile(join(EXAMPLES, 'two-classes.yaml')), 500 * MS));
    const gold = r.classes.find((c) => c.name === 'gold')!;
    const silver = r.classes.find((c) => c.name === 'silver')!;
    assert.ok(Math.abs(gold.throughputBps / silver.throughputBps - 2) < 0.02, `${gold.throughputBps} : ${silver.throughputBps}`);
    assert.ok(Math.abs(gold.goodputBps / silver.goodputBps - 2) < 0.02, `${gold.goodputBps} : ${silver.goodputBps}`);
    assert.ok(Math.abs(gold.throughputBps / 600e6 - 1) < 0.02, 'each class gets its budget');
    assert.equal(gold.throughputSeriesBps.length, 5, '100 ms bins');
  });

  it('finite flows report FCT, percentiles and slowdown vs ideal', async () => {
    const s = loadScenarioFile(join(EXAMPLES, 'two-classes.yaml'));
    const finite = { ...s, durationNs: 1000 * MS, workloads: s.workloads.map((w) => (w.kind === 'bulk' ? { ...w, bytes: 1_000_000, flows: 2 } : w)) };
    const r = await runScenario(finite);
    assert.equal(r.fct.completed, 4);
    assert.ok(r.flows.every((f) => f.completed && f.fctNs! > 0 && f.slowdown! >= 1 && f.bytes === 1_000_000));
    assert.ok(r.fct.p99Ns >= r.fct.p50Ns && r.fct.p50Ns > 0);
    assert.ok(r.simulatedNs < 1000 * MS, 'the run ends when every finite flow is done');
  });
});

describe('pacer sim run (CLI, as a child process)', function () {
  this.timeout(60_000);

  it('the same scenario and seed give byte-identical --json output, also written to DIR/result.json', () => {
    const file = twoClassesFile('300ms');
    const runs = [tmp(), tmp()].map((out) => {
      const p = spawnSync(process.execPath, [PACER, 'sim', 'run', file, '--json', '--seed', '7', '--out', out], { encoding: 'utf8' });
      assert.equal(p.status, 0, p.stderr);
      assert.equal(readFileSync(join(out, 'result.json'), 'utf8'), p.stdout);
      return p.stdout;
    });
    assert.equal(runs[0], runs[1]);
    const r = JSON.parse(runs[0]!);
    assert.equal(r.seed, 7);
    assert.equal(r.complete, true);
  });

  it('an invalid scenario: file:line:col on stderr, exit 1, no stack trace', () => {
    const dir = tmp();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, readFileSync(join(EXAMPLES, 'two-classes.yaml'), 'utf8').replace('bufferPackets: 100', 'bufferPackets: 100\n    colour: red'));
    const p = spawnSync(process.execPath, [PACER, 'sim', 'run', file, '--out', dir], { encoding: 'utf8' });
    assert.equal(p.status, 1);
    assert.match(p.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:10:5: topology\\.switch\\.colour: unknown key "colour"`));
    assert.doesNotMatch(p.stderr, /\n\s+at /);
    assert.equal(p.stdout, '');
  });

  it('Ctrl-C stops cleanly: exit 130 and a partial result marked complete: false', async () => {
    const file = twoClassesFile('600s');
    const out = tmp();
    const child = spawn(process.execPath, [PACER, 'sim', 'run', file, '--progress', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) =>
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/simulated, .* events\/s/.test(stderr)) resolve();
      }),
    );
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted at .* partial result/);
    const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    assert.equal(r.complete, false);
    assert.ok(r.simulatedNs > 0 && r.simulatedNs < r.durationNs);
    assert.ok(r.classes.find((c: { name: string }) => c.name === 'gold').bytes > 0);
  });
});
