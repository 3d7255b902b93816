import assert from 'node:assert/strict';
import { ScenarioError, loadScenario, type Scenario } from '../../sim/scenario/load.js';

/** A valid scenario; tests splice lines into it. Line numbers below count from 1. */
const BASE = `seed: 1
duration: 1s
topology:
  switch:
    buffer: 32kb
  hosts:
    app:
      address: 10.0.0.1
      labels: { role: app }
      link: { rate: 1gbit, delay: 25us }
    db:
      address: 10.0.2.1
      link: { rate: 1gbit, delay: 25us }
classes:
  - name: gold
    rate: 600mbit
    burst: 75kb
    match: { dst: [10.0.2.0/24], marks: [7] }
    hosts: { matchLabels: { role: app } }
workloads:
  - bulk: { from: app, to: db }
`;

function issues(text: string) {
  try {
    loadScenario(text, 'test.yaml');
  } catch (e) {
    assert.ok(e instanceof ScenarioError, String(e));
    return e.issues;
  }
  assert.fail('expected the scenario to be refused');
}

/** The one issue, with its path text and position. */
function only(text: string) {
  const list = issues(text);
  assert.equal(list.length, 1, JSON.stringify(list));
  return list[0]!;
}

describe('sim scenario: validation names the path and the YAML line', () => {
  it('accepts the base scenario', () => {
    const s = loadScenario(BASE);
    assert.equal(s.hosts.length, 2);
    assert.equal(s.workloads.length, 1);
  });

  it('an unknown key, at the key', () => {
    const i = only(BASE.replace('    buffer: 32kb\n', '    buffer: 32kb\n    colour: red\n'));
    assert.deepEqual([i.line, i.col], [6, 5]);
    assert.deepEqual(i.path, ['topology', 'switch', 'colour']);
    assert.match(i.message, /unknown key "colour"/);
  });

  it('a bad unit, with the API unit parser message', () => {
    const i = only(BASE.replace('{ rate: 1gbit, delay: 25us }\n    db', '{ rate: 1gbyte, delay: 25us }\n    db'));
    assert.deepEqual([i.line, i.path.join('.')], [10, 'topology.hosts.app.link.rate']);
    assert.match(i.message, /unknown rate unit 'gbyte'.*gbit/);
  });

  it('a duration without a unit is refused, not guessed', () => {
    const i = only(BASE.replace('duration: 1s', 'duration: 1000'));
    assert.equal(i.line, 2);
    assert.match(i.message, /needs a unit/);
  });

  it('a host without a link, at the host', () => {
    const i = only(BASE.replace('      link: { rate: 1gbit, delay: 25us }\nclasses', 'classes'));
    assert.deepEqual([i.line, i.path.join('.')], [11, 'topology.hosts.db.link']);
    assert.match(i.message, /host db has no link/);
  });

  it('a class that does not exist: by name in a workload, and as a parent', () => {
    const w = only(BASE.replace('to: db }', 'to: db, class: platinum }'));
    assert.deepEqual([w.line, w.path.join('.')], [21, 'workloads.0.bulk.class']);
    assert.match(w.message, /class platinum does not exist/);
    const p = only(BASE.replace('    rate: 600mbit\n', '    rate: 600mbit\n    parent: tenant\n'));
    assert.deepEqual([p.line, p.path.join('.')], [17, 'classes.0.parent']);
    assert.match(p.message, /parent class "tenant" does not exist/);
  });

  it('a flow between unknown hosts, at each end', () => {
    const list = issues(BASE.replace('{ from: app, to: db }', '{ from: web, to: dbx }'));
    assert.deepEqual(list.map((i) => [i.line, i.path.join('.')]), [[21, 'workloads.0.bulk.from'], [21, 'workloads.0.bulk.to']]);
    assert.match(list[0]!.message, /no host web/);
  });

  it("budgets the API would refuse (its classCreateSchema and checkClassSet)", () => {
    const below = only(BASE.replace('    rate: 600mbit\n', '    rate: 600mbit\n    ceil: 100mbit\n'));
    assert.deepEqual([below.line, below.path.join('.')], [17, 'classes.0.ceil']);
    const kids = `  - name: a\n    rate: 400mbit\n    parent: gold\n  - name: b\n    rate: 400mbit\n    parent: gold\n`;
    const over = only(BASE.replace('workloads:', `${kids}workloads:`));
    assert.deepEqual([over.line, over.path.join('.')], [16, 'classes.0.rate']);
    assert.match(over.message, /more than parent "gold"'s rate/);
    // The API's floor on a class's rtoMin is 1 ms; a scenario's own tcp defaults may go lower.
    const rto = only(BASE.replace('    burst: 75kb\n', '    burst: 75kb\n    tcp: { rtoMin: 200us }\n'));
    assert.deepEqual([rto.line, rto.path.join('.')], [18, 'classes.0.tcp.rtoMin']);
    assert.equal(loadScenario(`${BASE}tcp: { rtoMin: 200us }\n`).workloads[0]!.tcp.rtoMinNs, 200_000);
  });

  it('refuses what is ambiguous: a key twice, two selectors, two buffer limits, a host name used twice', () => {
    assert.equal(only(BASE.replace('duration: 1s', 'duration: 1s\nduration: 2s')).line, 3);
    const sel = only(BASE.replace('to: db }', 'to: db, mark: 7, class: gold }'));
    assert.match(sel.message, /one of class, mark and cgroup/);
    assert.equal(sel.line, 21);
    const buf = only(BASE.replace('    buffer: 32kb\n', '    buffer: 32kb\n    bufferPackets: 10\n'));
    assert.deepEqual([buf.line, buf.path.join('.')], [5, 'topology.switch']);
    const [twice] = issues(BASE.replace('    db:\n', '    db1:\n      address: 10.0.9.1\n      link: { rate: 1gbit, delay: 1us }\n    db:\n      count: 2\n'));
    assert.match(twice!.message, /host name db1 is used twice/);
    const dupAddr = only(BASE.replace('address: 10.0.2.1', 'address: 10.0.0.1'));
    assert.match(dupAddr.message, /address 10.0.0.1 of db is also app's/);
  });

  it('a mark that selects no class is refused (a typo, not unclassified traffic)', () => {
    const i = only(BASE.replace('to: db }', 'to: db, mark: 8 }'));
    assert.match(i.message, /mark 8 selects no class/);
  });
});

describe('sim scenario: classes map to the data plane and traffic to classes', () => {
  const edtOf = (s: Scenario, host: string, id: number) => s.hosts.find((h) => h.name === host)!.classes.get(id);

  it("accepts a class pasted from `pacer class get --json` (read-only fields dropped, quantities as objects)", () => {
    const pasted = JSON.stringify({
      name: 'gold', id: 42, revision: 3, etag: '"3"', createdRevision: 1, createdAt: '2024-01-01T00:00:00Z', updatedAt: '2024-01-01T00:00:00Z',
      description: '', rate: { bitsPerSecond: 600_000_000, text: '600mbit' }, ceil: null, burst: { bytes: 76800, text: '75kb' },
      horizon: { ns: 2_000_000_000, text: '2s' }, parent: null, weight: 1, match: { marks: [7], cgroups: [], dst: ['10.0.2.0/24'] },
      hosts: { matchLabels: { role: 'app' } }, tcp: null,
    });
    const s = loadScenario(BASE.replace(/classes:\n[\s\S]*?workloads:/, `classes:\n  - ${pasted}\nworkloads:`));
    assert.equal(s.classes[0]!.spec.rate, 600_000_000);
  });

  it('EDT config: rate, burst bytes → ns at the class rate, horizon, parent id; installed only on selected hosts', () => {
    const s = loadScenario(BASE.replace('workloads:', '  - name: child\n    parent: gold\n    rate: 100mbit\n    burst: 1ms\nworkloads:'));
    // 75kb = 76800 bytes at 600 Mbit/s = 1.024 ms
    assert.deepEqual(edtOf(s, 'app', 1), { rateBps: 600_000_000, burstNs: 1_024_000, horizonNs: 2_000_000_000, ecnNs: 0, parentId: 0 });
    assert.deepEqual(edtOf(s, 'app', 2), { rateBps: 100_000_000, burstNs: 1_000_000, horizonNs: 2_000_000_000, ecnNs: 0, parentId: 1 });
    assert.equal(edtOf(s, 'db', 1), undefined, 'gold selects role=app hosts only');
    assert.ok(edtOf(s, 'db', 2), 'child selects every host');
  });

  it("a class's ecn.threshold reaches the host's EDT model (ecnNs), as the agent writes it into class_config.ecn_ns", () => {
    const s = loadScenario(BASE.replace('workloads:', '  - name: marked\n    rate: 100mbit\n    ecn: { threshold: 1ms }\nworkloads:'));
    assert.equal(edtOf(s, 'app', 2)!.ecnNs, 1_000_000);
    assert.equal(edtOf(s, 'app', 1)!.ecnNs, 0, 'no ecn: off');
  });

  it('classification: mark first, then the longest destination prefix; ACKs by their own destination; class TCP tuning applies', () => {
    const more = `  - name: wide\n    rate: 100mbit\n    match: { dst: [10.0.0.0/8] }\n  - name: marked\n    rate: 100mbit\n    match: { marks: [9] }\n    tcp: { rtoMin: 5ms }\n`;
    const s = loadScenario(BASE.replace('workloads:', `${more}workloads:`).replace('  - bulk: { from: app, to: db }\n', '  - bulk: { from: app, to: db }\n  - bulk: { from: app, to: db, mark: 9 }\n'));
    const [byPrefix, byMark] = s.workloads;
    assert.equal(byPrefix!.cls, 1, '10.0.2.0/24 (gold) beats 10.0.0.0/8');
    assert.equal(byPrefix!.ackCls, 2, 'ACKs to 10.0.0.1 match only 10.0.0.0/8');
    assert.equal(byMark!.cls, 3);
    assert.equal(byMark!.tcp.rtoMinNs, 5_000_000);
    assert.equal(byPrefix!.tcp.rtoMinNs, 200_000_000);
  });

  it('host groups: count expands names and addresses; incast servers may name the group', () => {
    const s = loadScenario(BASE.replace('    db:\n', '    srv:\n      count: 3\n      address: 10.0.1.254\n      link: { rate: 1gbit, delay: 25us }\n    db:\n')
      .replace('  - bulk: { from: app, to: db }\n', '  - incast: { client: app, servers: [srv, db], responseBytes: 10kb, rounds: 2 }\n'));
    assert.deepEqual(s.hosts.map((h) => `${h.name}=${h.address}`), ['app=10.0.0.1', 'srv1=10.0.1.254', 'srv2=10.0.1.255', 'srv3=10.0.2.0', 'db=10.0.2.1']);
    const w = s.workloads[0]!;
    assert.ok(w.kind === 'incast');
    assert.deepEqual(w.servers, ['srv1', 'srv2', 'srv3', 'db']);
    assert.equal(w.blockBytes, 4 * 10 * 1024);
  });
});
