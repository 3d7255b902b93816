import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { SweepError, grid, parseAxis, planSweep, pointText } from '../../sim/sweep.js';
import { runReport } from '../../sim/report.js';
import { loadScenarioFile } from '../../sim/scenario/load.js';
import { runScenario } from '../../sim/run.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLES = join(here, '../../../sim/examples');
const PACER = join(here, '../../api/cli/pacer.js');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pacer-sweep-'));
}

/** incast.yaml with fewer rounds (fast), in a temp file. */
function incastFile(rounds = 3): string {
  const file = join(tmp(), 'incast.yaml');
  writeFileSync(file, readFileSync(join(EXAMPLES, 'incast.yaml'), 'utf8').replace('rounds: 100', `rounds: ${rounds}`));
  return file;
}

const noUrl = /https?:\/\//i;

describe('sim sweep: paths, grid, validation', () => {
  const text = readFileSync(join(EXAMPLES, 'incast.yaml'), 'utf8');

  it('shorthands expand: incast.X → the first incast workload, switch.X → topology.switch.X', () => {
    assert.deepEqual(parseAxis('incast.servers=1,2', text).path, ['workloads', 0, 'incast', 'servers']);
    assert.deepEqual(parseAxis('switch.buffer=16kb', text).path, ['topology', 'switch', 'buffer']);
    assert.deepEqual(parseAxis('workloads.0.incast.rounds=5', text).path, ['workloads', 0, 'incast', 'rounds']);
    assert.deepEqual(parseAxis('tcp.rtoMin=200ms,1ms', text).values, ['200ms', '1ms']);
    assert.deepEqual(parseAxis('incast.servers=1,48', text).values, [1, 48]);
    assert.throws(() => parseAxis('bulk.flows=2', text), /--vary bulk\.flows: .*has none/);
  });

  it('the grid is the cartesian product, last axis fastest; incast.servers=N sets the group count', () => {
    const axes = [parseAxis('tcp.rtoMin=200ms,1ms', text), parseAxis('incast.servers=2,4,8', text)];
    assert.deepEqual(grid(axes), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
    const doc = parseYaml(pointText(text, axes, [1, 2])) as { tcp: { rtoMin: string }; topology: { hosts: { server: { count: number } } } };
    assert.equal(doc.tcp.rtoMin, '1ms');
    assert.equal(doc.topology.hosts.server.count, 8);
  });

  it('a bad value is reported with its axis and value, every bad point at once', () => {
    assert.throws(
      () => planSweep(text, 'incast.yaml', ['tcp.rtoMin=200ms,fast', 'incast.servers=1,0']),
      (e: unknown) => e instanceof SweepError && /--vary tcp\.rtoMin=fast: tcp\.rtoMin: /.test(e.message) && /--vary incast\.servers=0: /.test(e.message),
    );
    assert.throws(() => planSweep(text, 'incast.yaml', ['tcp.rtoMn=1ms']), /--vary tcp\.rtoMn=1ms: tcp\.rtoMn: unknown key "rtoMn"/);
    assert.throws(() => planSweep(text, 'incast.yaml', ['tcp.rtoMin']), /expected PATH=VALUE/);
  });
});

describe('sim reports: self-contained HTML', function () {
  this.timeout(60_000);

  it('run report: inline <svg> plots, no http(s):// URL anywhere, no scripts', async () => {
    const s = loadScenarioFile(join(EXAMPLES, 'two-classes.yaml'));
    const html = await runReport(await runScenario({ ...s, durationNs: 300_000_000 }));
    assert.ok((html.match(/<svg/g) ?? []).length >= 2, 'throughput over time and queueing delay');
    assert.doesNotMatch(html, noUrl);
    assert.doesNotMatch(html, /<script|<link|@import|src=/i);
    assert.match(html, /gold/);
  });
});

describe('pacer sim sweep (CLI, as a child process)', function () {
  this.timeout(120_000);
  const sweep = (args: string[]) => spawnSync(process.execPath, [PACER, 'sim', 'sweep', ...args], { encoding: 'utf8' });

  it('1 worker and 2 workers give byte-identical sweep.json; the report has inline <svg> and no URL', () => {
    const file = incastFile();
    const outs = ['1', '2'].map((workers) => {
      const out = tmp();
      const p = sweep([file, '--vary', 'tcp.rtoMin=200ms,1ms', '--vary', 'incast.servers=1,4,8', '--workers', workers, '--out', out]);
      assert.equal(p.status, 0, p.stderr);
      assert.match(p.stdout, /TCP\.RTOMIN\s+INCAST\.SERVERS\s+STATUS\s+GOODPUT/);
      return out;
    });
    const [a, b] = outs.map((o) => readFileSync(join(o, 'sweep.json'), 'utf8'));
    assert.equal(a, b);
    const s = JSON.parse(a!);
    assert.equal(s.complete, true);
    assert.equal(s.points.length, 6);
    // Incast collapse shows in the sweep: at 8 servers RTOmin 1 ms beats 200 ms by far (Vasudevan et al. 2009).
    const at = (rto: string, n: string) => s.points.find((p: { params: Record<string, string> }) => p.params['tcp.rtoMin'] === rto && p.params['incast.servers'] === n).metrics;
    assert.ok(at('1ms', '8').goodputBps > 5 * at('200ms', '8').goodputBps);
    const html = readFileSync(join(outs[0]!, 'report.html'), 'utf8');
    assert.ok((html.match(/<svg/g) ?? []).length >= 2, 'goodput against each axis');
    assert.doesNotMatch(html, noUrl);
    assert.doesNotMatch(html, /<script|<link|@import|src=/i);
  });

  it('a bad --vary value names the axis and the value: exit 1, nothing run', () => {
    const out = tmp();
    const p = sweep([incastFile(), '--vary', 'tcp.rtoMin=200ms,soon', '--out', out]);
    assert.equal(p.status, 1);
    assert.match(p.stderr, /--vary tcp\.rtoMin=soon: tcp\.rtoMin: /);
    assert.doesNotMatch(p.stderr, /\n\s+at /);
  });

  it('Ctrl-C stops the workers and writes the partial sweep (complete: false), exit 130', async () => {
    const file = join(tmp(), 'long.yaml');
    writeFileSync(file, readFileSync(join(EXAMPLES, 'two-classes.yaml'), 'utf8').replace('duration: 2s', 'duration: 600s'));
    const out = tmp();
    const child = spawn(process.execPath, [PACER, 'sim', 'sweep', file, '--vary', 'bulk.flows=1,2,3', '--workers', '2', '--progress', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) =>
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/sweep: 0\/3 points/.test(stderr)) resolve();
      }),
    );
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /interrupted after 0\/3 points; partial sweep/);
    const s = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8'));
    assert.equal(s.complete, false);
    const statuses = s.points.map((p: { status: string }) => p.status);
    assert.deepEqual(statuses, ['partial', 'partial', 'not run']);
    assert.ok(s.points[0].metrics.simulatedNs > 0 && s.points[0].metrics.goodputBps > 0);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /partial sweep/);
  });
});
