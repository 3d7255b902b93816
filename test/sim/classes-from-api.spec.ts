/**
 * `pacer sim run --classes-from-api URL`: the classes in force in a real `pacer api` process (a
 * child with its own SQLite file) replace the scenario file's, so a planner checks what is live.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killed, startApiChild, type ApiChild } from '../support/api-process.js';
import { ADMIN_TOKEN, request } from '../support/api-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const PACER = join(here, '../../api/cli/pacer.js');

/** gold is 600mbit in the file; the API says 100mbit. */
const SCENARIO = `duration: 100ms
topology:
  switch: { buffer: 256kb }
  hosts:
    app: { address: 10.0.0.1, labels: { role: app }, link: { rate: 1gbit, delay: 25us } }
    db: { address: 10.0.2.1, link: { rate: 1gbit, delay: 25us } }
classes:
  - name: gold
    rate: 600mbit
    match: { marks: [1] }
    hosts: { matchLabels: { role: app } }
workloads:
  - bulk: { from: app, to: db, mark: 1 }
`;

describe('pacer sim run --classes-from-api: the live classes replace the file\'s', function () {
  this.timeout(60_000);
  let api: ApiChild | undefined;
  let dir: string;
  let file: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pacer-sim-live-'));
    file = join(dir, 'plan.yaml');
    writeFileSync(file, SCENARIO);
    api = await startApiChild(join(dir, 'pacer.db'));
    const create = (body: object) => request(api!.url, 'POST', '/v1/classes', { body });
    await create({ name: 'tenant', rate: '200mbit' }); // no host labels: applies everywhere
    await create({ name: 'gold', parent: 'tenant', rate: '100mbit', match: { marks: [1] }, hosts: { matchLabels: { role: 'app' } } });
    await create({ name: 'elsewhere', rate: '5mbit', match: { marks: [9] }, hosts: { matchLabels: { role: 'nowhere' } } });
  });
  after(async () => killed(api?.child));

  const sim = (args: string[], env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, [PACER, 'sim', 'run', file, ...args], { encoding: 'utf8', env: { ...process.env, PACER_TOKEN: '', ...env } });

  it('with PACER_TOKEN: the API\'s gold (100mbit, under tenant) is simulated; a class for other hosts is left out', () => {
    const out = join(dir, 'live');
    const p = sim(['--classes-from-api', api!.url, '--json', '--out', out], { PACER_TOKEN: ADMIN_TOKEN });
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stderr, /2 classes from http:\/\/127\.0\.0\.1:\d+ \(revision \d+\) replace the file's: gold, tenant\n/);
    const r = JSON.parse(p.stdout);
    assert.deepEqual(r.classes.filter((c: { name: string }) => c.name !== '(unclassified)').map((c: { name: string; rate: string }) => [c.name, c.rate]), [['gold', '100mbit'], ['tenant', '200mbit']]);
    const gold = r.classes.find((c: { name: string }) => c.name === 'gold');
    assert.ok(gold.throughputBps > 90e6 && gold.throughputBps < 105e6, `gold held to the API's 100mbit, not the file's 600mbit: ${gold.throughputBps}`);
    assert.equal(r.classesFrom.url, api!.url);
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /classes in force at http/);
  });

  it('with --token-file: the same; without a token, or with a wrong one, a clear error and nothing written', () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${ADMIN_TOKEN}\n`);
    const ok = sim(['--classes-from-api', api!.url, '--token-file', tokenFile, '--json', '--out', join(dir, 'tf')], {});
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).classes.find((c: { name: string }) => c.name === 'gold').rate, '100mbit');

    const none = sim(['--classes-from-api', api!.url, '--out', join(dir, 'none')], {});
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no API token: set PACER_TOKEN/);
    assert.equal(existsSync(join(dir, 'none')), false);

    const bad = sim(['--classes-from-api', api!.url, '--out', join(dir, 'bad')], { PACER_TOKEN: 'wrong-token' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /401|token/i);
    assert.equal(existsSync(join(dir, 'bad')), false);
  });
});
