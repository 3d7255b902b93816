/**
 * Pins removed while the agent enforces (issue 17: "deleted pins are re-created by the running agent
 * and reported"). Removing pacer's pin directory does not stop enforcement (the agent holds the maps
 * and the program runs), but a restarted agent would not find the state to adopt, and `pacer dp`
 * said "not installed" while the class was enforced. The agent's qdisc check pins them again, logs
 * it with the fix and counts it; a restarted agent then adopts the same state.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, freePort, until } from '../support/agent-processes.js';
import { useAgentRig } from '../support/agent-rig.js';
import { parsePrometheusText } from '../support/prometheus-text.js';

const IFACE = 'pr0';
const REPIN_BOUND_MS = 30_000;

describe('pins removed while the agent enforces are pinned again (real API, real agent, veth in test namespaces)', function () {
  this.timeout(120_000);
  let metricsPort = 0;
  before(async () => {
    metricsPort = await freePort();
  });
  const rig = useAgentRig({
    iface: IFACE,
    peerIface: 'pr1',
    subnet: '10.93.8',
    peers: 1,
    host: 'pins-node',
    labels: { zone: 'pr' },
    agentArgs: () => ['--qdisc-check', '1s', '--metrics-listen', `127.0.0.1:${metricsPort}`],
  });
  const pinBase = () => {
    const args = rig.agent.child.spawnargs;
    return args[args.indexOf('--pin-base') + 1]!;
  };
  const dpClasses = () => spawnSync(process.execPath, [CLI, 'dp', 'classes', '--json', '--iface', IFACE, '--pin-base', pinBase()], { encoding: 'utf8' });

  it('rm -r of the pin directory: the agent pins maps and program again, logs it with the fix, counts it; pacer dp reads them', async () => {
    const id = await rig.createClass({ name: 'pr-20', rate: '20mbit', match: { dst: [`${rig.peer(0)}/32`] } });
    await rig.withLog(until('the class in the kernel', () => (rig.kernel.read().classes.get(id)?.rate_bps === 20_000_000 ? true : undefined), 20_000, 50));
    const pinDir = join(pinBase(), IFACE);
    rmSync(pinDir, { recursive: true });
    assert.equal(existsSync(join(pinDir, 'class_config')), false, 'the fault was injected');
    const line = await rig.withLog(until('the agent to pin again', () => rig.agent.find('pacer\'s pins were removed while it enforced (enforcement went on): pinned them again'), REPIN_BOUND_MS, 50));
    assert.equal(line.level, 40, 'a warning');
    assert.match(String(line.fix), /find what removes files under pacer's pin directory/);
    assert.ok((line.repinned as string[]).includes('class_config') && (line.repinned as string[]).includes('pacer_egress'), JSON.stringify(line.repinned));
    for (const name of ['class_config', 'class_state', 'settings', 'pacer_egress']) assert.ok(existsSync(join(pinDir, name)), `${name} pinned again`);
    const dp = dpClasses();
    assert.equal(dp.status, 0, dp.stderr);
    assert.equal((JSON.parse(dp.stdout) as Array<{ iface: string }>)[0]?.iface, IFACE);
    assert.match(dp.stdout, /"rate_bps":\s*20000000/, 'pacer dp reads the class through the new pins');
    const metrics = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    assert.equal(metrics.value('pacer_interface_pins_recreated_total', { iface: IFACE }), 1);
  });

  it('a restarted agent adopts the state through the pins made again', async () => {
    const restarted = await rig.restartAgent();
    const ready = restarted.find('interface ready')!;
    assert.equal(ready.adopted, true, JSON.stringify(ready));
  });
});
