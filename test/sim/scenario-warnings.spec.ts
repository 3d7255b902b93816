/**
 * A scenario with a likely unit mistake still runs, and says so: the same warnings as the API's
 * (api/contract/class-warnings.ts), with the line and column, printed by `pacer sim run` (issue 11).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { issueText, loadScenario, pathText } from '../../sim/scenario/load.js';

const PACER = join(dirname(fileURLToPath(import.meta.url)), '../../api/cli/pacer.js');

/** Line numbers below count from 1. */
const MISTAKES = `duration: 1s
topology:
  switch:
    buffer: 32kb
  hosts:
    app:
      address: 10.0.0.1
      link: { rate: 1gbps, delay: 25us }
    db:
      address: 10.0.2.1
      link: { rate: 1gbit, delay: 25us }
classes:
  - name: gold
    rate: 10mbps
    ceil: 100MBps
    burst: 1000b
    match: { dst: [10.0.2.0/24] }
workloads:
  - onoff: { from: app, to: db, rate: 5mbps, on: 10ms, off: 10ms }
`;

describe('scenario warnings', () => {
  it('a bytes unit spelled like bits (links, on/off rates, class rates) and a burst under one packet, each at its line and column', () => {
    const s = loadScenario(MISTAKES, 'mistakes.yaml');
    assert.deepEqual(
      s.warnings.map((w) => [pathText(w.path), w.line, w.col]),
      [
        ['topology.hosts.app.link.rate', 8, 21],
        ['workloads[0].onoff.rate', 19, 39],
        ['classes[0].rate', 14, 11],
        ['classes[0].burst', 16, 12],
      ],
    );
    assert.equal(
      issueText('mistakes.yaml', s.warnings[0]!),
      'mistakes.yaml:8:21: topology.hosts.app.link.rate: rate 1gbps read as 1 gigabytes/s = 8 Gbit/s, as tc reads it; write 1gbit for 1 gigabits/s',
    );
    assert.match(s.warnings[3]!.message, /^burst 1000b is less than one full-size packet/);
    // It runs as tc reads it.
    assert.equal(s.hosts[0]!.link.rateBps, 8_000_000_000);
  });

  it('a scenario without such mistakes has none, and a class pasted from the API (with its read-only fields) runs', () => {
    const pasted = MISTAKES.replace(/(\d+)m?g?bps/gi, '$1mbit').replace('burst: 1000b', 'burst: 64kb\n    id: 3\n    revision: 9\n    etag: \'"9"\'\n    warnings: []');
    assert.deepEqual(loadScenario(pasted, 'fine.yaml').warnings, []);
  });

  it('pacer sim run prints them on stderr and runs', function () {
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'pacer-sim-warn-'));
    try {
      const file = join(dir, 'mistakes.yaml');
      writeFileSync(file, MISTAKES);
      const p = spawnSync(process.execPath, [PACER, 'sim', 'run', file, '--duration', '5ms', '--out', dir], { encoding: 'utf8' });
      assert.equal(p.status, 0, p.stderr);
      const lines = p.stderr.trimEnd().split('\n');
      assert.equal(lines[0], `warning: ${file}:8:21: topology.hosts.app.link.rate: rate 1gbps read as 1 gigabytes/s = 8 Gbit/s, as tc reads it; write 1gbit for 1 gigabits/s`);
      assert.equal(lines.filter((l) => l.startsWith('warning: ')).length, 4, p.stderr);
      assert.match(p.stdout, /^scenario mistakes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
