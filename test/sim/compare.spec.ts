/** `pacer sim compare A.yaml B.yaml`: two plans side by side in one report (tables and the same charts). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLES = join(here, '../../../sim/examples');
const PACER = join(here, '../../api/cli/pacer.js');

describe('pacer sim compare: two plans side by side', () => {
  it('gold at 600mbit (A) vs 300mbit (B): the table shows both and B / A, the report plots both plans on the same axes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-sim-compare-'));
    const a = join(EXAMPLES, 'two-classes.yaml');
    const b = join(dir, 'gold-halved.yaml');
    writeFileSync(b, readFileSync(a, 'utf8').replace(/(name: gold\n(?:.*\n)*?\s+rate: )600mbit/, '$1300mbit'));
    const out = join(dir, 'out');
    const p = spawnSync(process.execPath, [PACER, 'sim', 'compare', a, b, '--duration', '200ms', '--seed', '3', '--out', out], { encoding: 'utf8' });
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /METRIC\s+A \(two-classes\)\s+B \(gold-halved\)\s+B \/ A/);
    assert.match(p.stdout, /gold\s+600mbit\s+300mbit/);
    const c = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8'));
    assert.deepEqual(c.results.map((r: { seed: number }) => r.seed), [3, 3]);
    const gold = c.classes.find((x: { name: string }) => x.name === 'gold');
    const r = gold.b.throughputBps / gold.a.throughputBps;
    assert.ok(Math.abs(r - 0.5) < 0.02, `B's gold is half of A's: ${r}`);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.equal((html.match(/<svg/g) ?? []).length, 2, 'throughput over time and queueing delay, both plans in each');
    assert.match(html, /A solid, B dashed/);
    assert.match(html, /<th>A \(two-classes\)<\/th><th>B \(gold-halved\)<\/th><th>B \/ A<\/th>/);
    assert.doesNotMatch(html.replace(/<svg[\s\S]*?<\/svg>/g, ''), /<script|https?:\/\//);
  });

  it('an invalid plan B is refused before A runs, and nothing is written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-sim-compare-'));
    const b = join(dir, 'broken.yaml');
    writeFileSync(b, 'duration: 1s\n');
    const out = join(dir, 'out');
    const p = spawnSync(process.execPath, [PACER, 'sim', 'compare', join(EXAMPLES, 'two-classes.yaml'), b, '--out', out], { encoding: 'utf8' });
    assert.equal(p.status, 1);
    assert.match(p.stderr, /invalid scenario .*\n.*broken\.yaml:\d+:\d+/);
    assert.equal(existsSync(out), false);
  });
});
