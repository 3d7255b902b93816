/**
 * Every scenario in sim/examples/ runs under `pacer sim run` (as a child process, shortened
 * with --duration), and the new workloads keep the CLI's promises: progress on long runs, and
 * Ctrl-C stops cleanly with a partial result.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Sources, not dist: the examples are YAML and are not copied by tsc. */
const EXAMPLES = join(here, '../../../sim/examples');
const PACER = join(here, '../../api/cli/pacer.js');

describe('pacer sim run: every example in sim/examples', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'pacer-sim-ex-'));
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  const examples = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort();

  it('has the examples the docs name', () => {
    for (const name of ['incast', 'two-classes', 'borrowing', 'rpc-web-search', 'onoff', 'shared-buffer']) assert.ok(examples.includes(`${name}.yaml`), name);
  });

  for (const file of examples) {
    it(`${file}: runs for 300 ms (--duration), writes result.json and report.html, traffic flows`, () => {
      const out = tmp();
      const p = spawnSync(process.execPath, [PACER, 'sim', 'run', join(EXAMPLES, file), '--duration', '300ms', '--out', out], { encoding: 'utf8' });
      assert.equal(p.status, 0, p.stderr);
      assert.match(p.stdout, /^scenario /);
      const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
      assert.equal(r.complete, true);
      assert.equal(r.durationNs, 300_000_000);
      assert.ok(r.simulatedNs <= 300_000_000);
      assert.ok(r.classes.reduce((a: number, c: { bytes: number }) => a + c.bytes, 0) > 0, 'packets left the hosts');
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      assert.match(html, /<svg/);
      assert.doesNotMatch(html, /https?:\/\/|<script/, 'self-contained');
    });
  }

  it('a bad --duration is refused before anything runs', () => {
    const p = spawnSync(process.execPath, [PACER, 'sim', 'run', join(EXAMPLES, 'onoff.yaml'), '--duration', '300', '--out', tmp()], { encoding: 'utf8' });
    assert.equal(p.status, 1);
    assert.match(p.stderr, /--duration.*no time unit/s);
  });

  it('RPC workloads: progress on stderr, Ctrl-C → exit 130 and a partial result with the RPCs so far', async () => {
    const out = tmp();
    const child = spawn(process.execPath, [PACER, 'sim', 'run', join(EXAMPLES, 'rpc-web-search.yaml'), '--duration', '600s', '--progress', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // Wait for progress that shows simulated time moving past 100 ms (or fail at once if the
      // child ends first, with what it said).
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (/sim: (?:[1-9]\d*\.\d+s|[1-9]\d{2,}\.\d+ms) of 600\.000s simulated, [\d.]+M events\/s/.test(stderr)) resolve();
        });
        void exited.then((code) => reject(new Error(`pacer sim run exited (${code}) before showing progress:\n${stderr}`)));
      });
      child.kill('SIGINT');
      assert.equal(await exited, 130, stderr);
    } finally {
      // The child would run for 600 s simulated: it does not outlive the test.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    assert.match(stderr, /interrupted at .* partial result/);
    const r = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8'));
    assert.equal(r.complete, false);
    assert.ok(r.simulatedNs > 100_000_000 && r.simulatedNs < r.durationNs);
    for (const w of r.rpc) {
      assert.ok(w.arrivals > 0 && w.arrivals === w.completed + w.inFlight, JSON.stringify({ arrivals: w.arrivals, completed: w.completed, inFlight: w.inFlight }));
      assert.equal(w.goodputSeriesBps.length, Math.ceil(r.simulatedNs / r.binNs));
    }
  });
});
