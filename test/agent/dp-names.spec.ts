/**
 * Class names beside class ids (issue 11, "friction found on first contact"): the kernel's maps hold
 * ids only; the agent stores the names of what it applied with each interface's snapshot, and
 * `pacer dp` and /metrics show them. A real API, a real agent, a veth in test namespaces.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readSnapshotNames } from '../../controller/reconciler/snapshot-names.js';
import { CLI, freePort, killed, until } from '../support/agent-processes.js';
import { useAgentRig } from '../support/agent-rig.js';
import { parsePrometheusText } from '../support/prometheus-text.js';

const IFACE = 'dn0';

describe('class names in pacer dp and /metrics (real API, real agent, veth in test namespaces)', function () {
  this.timeout(120_000);
  let metricsPort = 0;
  before(async () => {
    metricsPort = await freePort();
  });
  const rig = useAgentRig({
    iface: IFACE,
    peerIface: 'dn1',
    subnet: '10.93.12',
    peers: 1,
    host: 'names-node',
    labels: { zone: 'dn' },
    agentArgs: () => ['--metrics-listen', `127.0.0.1:${metricsPort}`],
  });
  const pinBase = () => {
    const args = rig.agent.child.spawnargs;
    return args[args.indexOf('--pin-base') + 1]!;
  };
  const dp = (...args: string[]) => promisify(execFile)(process.execPath, [CLI, 'dp', ...args, '--iface', IFACE, '--pin-base', pinBase(), '--state-dir', rig.stateDir]);
  const scrape = async () => parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
  let id = 0;

  it('the agent stores the applied classes\' names with its snapshot; pacer dp classes and stats show them beside the ids', async () => {
    id = await rig.createClass({ name: 'dn-web', rate: '20mbit', burst: '1500b', match: { dst: [`${rig.peer(0)}/32`] } });
    await rig.withLog(until('the class\'s name in the agent\'s snapshot', () => (readSnapshotNames(rig.stateDir, IFACE).names?.get(id) === 'dn-web' ? true : undefined), 20_000, 50));
    const classes = await dp('classes');
    assert.equal(classes.stderr, '');
    assert.match(classes.stdout, /^IFACE\s+CLASS-ID\s+NAME\s+RATE\s+BURST\s+HORIZON/);
    // 1500 bytes at 20 Mbit/s is 600 µs of burst; the horizon (policing) is in the kernel, humanised too.
    const horizon = rig.kernel.read().classes.get(id)!.horizon_ns;
    assert.match(classes.stdout, new RegExp(`${IFACE}\\s+${id}\\s+dn-web\\s+20mbit\\s+600µs\\s+\\d+(\\.\\d+)?(ms|µs|s)\\s`));
    assert.doesNotMatch(classes.stdout, /\d{4,}ns/, 'no duration in raw ns');
    assert.ok(horizon > 1_000_000, `a horizon of ${horizon} ns prints in ms`);
    const stats = await dp('stats');
    assert.match(stats.stdout, new RegExp(`${IFACE}\\s+${id}\\s+dn-web\\s+\\d+\\s`));
    assert.deepEqual(JSON.parse((await dp('classes', '--json')).stdout)[0].classNames, { [id]: 'dn-web' });
  });

  it('/metrics: each per-class series carries the class name as `class`, beside `class_id`', async () => {
    const m = await scrape();
    const labels = { iface: IFACE, class: 'dn-web', class_id: String(id) };
    assert.equal(m.value('pacer_class_effective_rate_bps', labels), 20_000_000);
    assert.equal(m.value('pacer_class_packets_total', labels), 0);
    const perClass = m.samples.filter((s) => s.name.startsWith('pacer_class_'));
    assert.ok(perClass.length > 0);
    assert.deepEqual(perClass.filter((s) => s.labels.class !== 'dn-web'), [], 'every per-class sample is named');
  });

  it('an agent restarted while the API is down names the classes from its snapshot', async () => {
    await killed(rig.api.child);
    await rig.restartAgent();
    const m = await rig.withLog(until('/metrics of the restarted agent', () => scrape().catch(() => undefined), 20_000, 100));
    assert.equal(m.value('pacer_class_effective_rate_bps', { iface: IFACE, class: 'dn-web', class_id: String(id) }), 20_000_000);
  });
});
