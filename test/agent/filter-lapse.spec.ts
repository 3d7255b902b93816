/**
 * Lapses of enforcement on real interfaces (issue 10, "A deleted tc filter goes unnoticed"): a
 * real API, a real `pacer agent` (qdisc check every 1 s, the default) on the sending end of a
 * veth pair in namespaces this test makes, and real UDP and TCP to the receiver.
 *
 * Each step takes pacer's program away as an operator or another tool would — `tc filter del`,
 * `tc qdisc del … clsact`, the veth deleted and re-created — and checks that the agent puts the
 * SAME program back on the SAME maps (the rig reads the class's counters through its own fds on
 * the pins, so a fresh set of maps would show nothing), that traffic is enforced again (UDP and
 * TCP classified; this machine has no fq, so the class polices: TCP from outside the agent's
 * cgroup root is held to rate × time + depth and the class drops the excess), and that the lapse
 * is in GET /v1/hosts: `error` while the program cannot be re-attached, `repaired` after, with
 * the count. Conditions are polled with generous bounds; nothing asserts on timing.
 *
 * The last step is the case docs/vm-tier.md left open: the agent SIGKILLed, the filter deleted,
 * a new agent started, with a TCP flow running across all of it, and new TCP connections after.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, killed, until } from '../support/agent-processes.js';
import { useAgentRig } from '../support/agent-rig.js';
import { execIn } from '../support/netns.js';
import { parsePrometheusText } from '../support/prometheus-text.js';
import { iperf3Client, iperf3Server, sendUdp } from '../support/traffic.js';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import { filterOf } from '../../shaper-bpf/src/interface.js';
import { tcQuery } from '../../shaper-bpf/src/libbpf/index.js';
import { hostDetails } from '../../api/cli/host-commands.js';

const IFACE = 'fl0';
const PEER_IFACE = 'fl1';
const SUBNET = '10.93.7';
const RATE = 20_000_000;
const IPERF_PORT = 5311;
/** Far above the two check intervals (2 s) the repair takes: a busy host only makes it slower. */
const REPAIR_BOUND_MS = 30_000;

describe('lapses: pacer\'s tc program taken away is re-attached, and the host status says so (real API, real agent, veth in test namespaces)', function () {
  this.timeout(180_000);
  let metricsPort = 0;
  before(async () => {
    metricsPort = await freePort();
  });
  const rig = useAgentRig({
    iface: IFACE,
    peerIface: PEER_IFACE,
    subnet: SUBNET,
    peers: 1,
    host: 'lapse-node',
    labels: { zone: 'fl' },
    agentArgs: () => ['--qdisc-check', '1s', '--metrics-listen', `127.0.0.1:${metricsPort}`],
  });
  let server: ChildProcess | undefined;
  const flows = new Set<ChildProcess>();
  after(async () => {
    for (const f of flows) f.kill('SIGKILL');
    server?.kill('SIGKILL');
    await sleep(200);
  });

  let id = 0;
  let programId: number | undefined;
  const netns = () => netnsPath(rig.sender);
  const attachedProgram = () => {
    try {
      return tcQuery(filterOf({ iface: IFACE, netns: netns() }));
    } catch {
      return undefined; // no interface of that name right now
    }
  };
  const counters = () => rig.kernel.stats().classes.get(id)!;
  const attachment = async () => (await rig.hostRecord()).status?.attachments?.[0];
  const metrics = async () => parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());

  /** UDP and TCP to the peer are classified into the class and TCP is held to its budget. */
  const assertEnforced = async (when: string) => {
    const u0 = counters();
    sendUdp(rig.sender, { to: rig.peer(0), port: 9, size: 200, count: 20 });
    const u1 = counters();
    // At least: a TCP connection closed just before may still send its last segments through the class.
    assert.ok(u1.packets + u1.horizon_drops - u0.packets - u0.horizon_drops >= 20, `${when}: the 20 UDP datagrams were classified into the class`);

    const t0 = counters();
    const started = performance.now();
    const report = await iperf3Client(rig.sender, ['-c', rig.peer(0), '-p', String(IPERF_PORT), '-t', '2']);
    const wallS = (performance.now() - started) / 1000;
    const t1 = counters();
    const depthBytes = (rig.kernel.read().classes.get(id)!.horizon_ns * RATE) / 8e9;
    assert.ok(t1.packets > t0.packets, `${when}: TCP was classified into the class`);
    assert.ok(t1.horizon_drops > t0.horizon_drops, `${when}: the class policed the unpaced TCP sender (drops beyond its depth)`);
    const received = report.end.sum_received.bytes;
    assert.ok(received <= (RATE * wallS) / 8 + depthBytes, `${when}: the receiver got ${received} B of TCP payload in ${wallS.toFixed(2)} s: more than the budget allows (${Math.round((RATE * wallS) / 8 + depthBytes)} B)`);
  };

  /** Polls the host status until the interface's attachment is `state` with `lapses`. */
  const statusBecomes = (state: string, lapses: number) =>
    rig.withLog(until(`the host status to say ${state} with ${lapses} lapses`, async () => {
      const a = await attachment();
      return a?.state === state && a.lapses === lapses ? a : undefined;
    }, REPAIR_BOUND_MS, 100));

  before(async function () {
    this.timeout(60_000);
    id = await rig.createClass({ name: 'lapse', rate: '20mbit', match: { dst: [`${rig.peer(0)}/32`] } });
    await rig.withLog(until('the class in the kernel', () => (rig.kernel.read().dst4.size === 1 ? true : undefined), 10_000, 50));
    server = await iperf3Server(rig.receiver, IPERF_PORT);
    programId = attachedProgram();
    assert.ok(programId !== undefined);
  });

  it('enforces at first, and reports the program attached with no lapses', async () => {
    await assertEnforced('at first');
    const host = await rig.hostRecord();
    assert.equal(host.status.mode, 'policing');
    assert.deepEqual(host.status.attachments, [{ iface: IFACE, state: 'attached', lapses: 0 }]);
    const m = await metrics();
    assert.equal(m.value('pacer_interface_lapses_total', { iface: IFACE }), 0);
    assert.equal(m.value('pacer_interface_attachment', { iface: IFACE, state: 'attached' }), 1);
  });

  it('(1) `tc filter del`: the same program is re-attached on the same maps, counted, logged, and reported repaired', async () => {
    const packetsBefore = counters().packets;
    await execIn(rig.sender, 'tc', ['filter', 'del', 'dev', IFACE, 'egress']);
    const a = await statusBecomes('repaired', 1);
    assert.equal(attachedProgram(), programId, 'the same program id');
    assert.match(a.lastLapse, /filter on fl0.* was deleted/);
    assert.ok(Date.parse(a.lastLapseAt) > 0 && Date.parse(a.repairedAt) >= Date.parse(a.lastLapseAt));
    const logged = rig.agent.find('pacer\'s tc program was not attached: re-attached');
    assert.equal(logged?.cause, 'filter deleted');
    assert.equal(logged?.lapses, 1);
    assert.match(String(logged?.fix), /same program on the same maps/);
    assert.ok(counters().packets >= packetsBefore, 'the counters carried on (same maps)');
    await assertEnforced('after the filter was deleted');
    const host = await rig.hostRecord();
    assert.equal(host.status.mode, 'policing', 'enforcing again: the mode is not error');
    assert.match(hostDetails(host), /Interface lapses:\n.*\n\s*fl0\s+repaired\s+1\s/, '`pacer host get` shows it');
    const m = await metrics();
    assert.equal(m.value('pacer_interface_lapses_total', { iface: IFACE }), 1);
    assert.equal(m.value('pacer_interface_attachment', { iface: IFACE, state: 'repaired' }), 1);
  });

  it('(2) `tc qdisc del … clsact`: clsact and the filter come back, the lapse is counted and reported repaired', async () => {
    await execIn(rig.sender, 'tc', ['qdisc', 'del', 'dev', IFACE, 'clsact']);
    const a = await statusBecomes('repaired', 2);
    assert.equal(attachedProgram(), programId, 'the same program id');
    assert.match(a.lastLapse, /clsact qdisc of fl0.* was removed/);
    await assertEnforced('after clsact was removed');
    assert.equal((await metrics()).value('pacer_interface_lapses_total', { iface: IFACE }), 2);
  });

  it('(3) the veth deleted: `error` with the reason while it is gone; re-created: installed again (new ifindex), repaired', async () => {
    const before = counters();
    await execIn(rig.sender, 'ip', ['link', 'del', IFACE]);
    const a = await statusBecomes('error', 3);
    const host = await rig.hostRecord();
    assert.equal(host.status.mode, 'error', 'nothing is enforced: the host says error');
    assert.match(host.status.lastError, /fl0: pacer's tc program is not attached to fl0.*no interface named fl0/);
    assert.match(a.lastLapse, /no interface named fl0/);
    assert.equal((await metrics()).value('pacer_interface_attachment', { iface: IFACE, state: 'error' }), 1);

    // The same names and addresses, as a re-created interface would have.
    await execIn(rig.sender, 'ip', ['link', 'add', IFACE, 'type', 'veth', 'peer', 'name', PEER_IFACE, 'netns', rig.receiver]);
    await execIn(rig.sender, 'ip', ['addr', 'add', `${SUBNET}.1/24`, 'dev', IFACE]);
    await execIn(rig.receiver, 'ip', ['addr', 'add', `${rig.peer(0)}/24`, 'dev', PEER_IFACE]);
    for (const [ns, dev] of [[rig.sender, IFACE], [rig.receiver, PEER_IFACE]] as const) await execIn(ns, 'ip', ['link', 'set', dev, 'up']);
    const repaired = await statusBecomes('repaired', 3);
    assert.match(repaired.lastLapse, /fl0.* was deleted and re-created \(ifindex \d+ → \d+\)/);
    assert.equal(attachedProgram(), programId, 'the same program id on the new interface');
    assert.equal(rig.agent.lines.filter((l) => l.msg === 'pacer\'s tc program is not attached and could not be re-attached; retrying at every qdisc check').length, 1, 'the failure was logged once, not at every check');
    const host2 = await rig.hostRecord();
    assert.equal(host2.status.mode, 'policing', 'no fq here: installed again in policing mode');
    assert.equal(host2.status.lastError, null);
    assert.ok(counters().packets >= before.packets, 'the same maps');
    await assertEnforced('after the veth was re-created');
  });

  it('(4) docs/vm-tier.md\'s case: agent SIGKILLed, filter deleted, a new agent started, with a TCP flow running across it: TCP and UDP are classified again', async () => {
    // A long TCP flow started before the kill and running through the whole sequence.
    const flowServer = await iperf3Server(rig.receiver, IPERF_PORT + 1);
    const flow = spawn('nsenter', [`--net=${netns()}`, 'iperf3', '-c', rig.peer(0), '-p', String(IPERF_PORT + 1), '-t', '60', '-J'], { stdio: 'ignore' });
    flows.add(flow).add(flowServer);
    /** Did the class pass or drop packets over 300 ms (beyond the iperf3 control connection's few)? */
    const flowing = async () => {
      const c0 = counters();
      await sleep(300);
      const c1 = counters();
      return c1.packets + c1.horizon_drops - c0.packets - c0.horizon_drops > 10 ? true : undefined;
    };
    try {
      await until('the flow to go through the class', flowing, 20_000, 0);
      await killed(rig.agent.child);
      await execIn(rig.sender, 'tc', ['filter', 'del', 'dev', IFACE, 'egress']);
      const stalled = counters().packets;
      await sleep(500);
      assert.equal(counters().packets, stalled, 'with the filter gone and no agent, nothing is classified');
      await rig.restartAgent(REPAIR_BOUND_MS * 3);
      const ready = rig.agent.find('interface ready')!;
      assert.equal(ready.adopted, false, 'the new agent attached the program afresh');
      await rig.withLog(until('the running flow to be classified again', flowing, REPAIR_BOUND_MS, 0));
      const applied = await rig.withLog(until('the new agent\'s first apply', () => rig.agent.find('applied'), REPAIR_BOUND_MS, 20));
      assert.deepEqual(applied.changes, {}, 'the maps were adopted: nothing to write');
    } finally {
      flow.kill('SIGKILL');
      flowServer.kill('SIGKILL');
    }
    await assertEnforced('after a new agent re-attached');
  });
});
