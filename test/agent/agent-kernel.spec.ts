/**
 * The agent end to end on real parts: a real API child process with its SQLite file, a real
 * `pacer agent` child process, and the real BPF data plane on the sending end of a veth pair in
 * namespaces this test makes. What the kernel enforces is read back from the pinned maps (an
 * EgressObject loaded on the same pins), never from the agent.
 *
 * The steps share one API, one agent and one class, in order: create, rate change, API killed and
 * back, agent killed and restarted (adoption), drift repaired, delete.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { TcpTuningObject, pinnedLinkInfo, cgroupId } from '../../shaper-bpf/src/sockops.js';
import { PrivateCgroup2 } from '../support/cgroup2.js';
import { Datapath } from '../../shaper-bpf/src/datapath.js';
import { filterOf, POLICING_DETAIL } from '../../shaper-bpf/src/interface.js';
import { tcQuery } from '../../shaper-bpf/src/libbpf/index.js';
import { request, tokenFor } from '../support/api-server.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { useTestNetns } from '../support/netns.js';
import { sendUdp } from '../support/traffic.js';
import { CLI, freePort, killed, startAgentChild, startApiChild, until, type AgentChild, type ApiChild } from '../support/agent-processes.js';

const IFACE = 'ak0';
const PEER_IFACE = 'ak1';
const PEER = '10.93.0.2';
const PEER_PREFIX = `${PEER}/32`;
const HOST = 'kernel-node-1';
const RESYNC = '1s';

describe('pacer agent on the kernel data plane (real API, real agent, veth in test namespaces)', function () {
  this.timeout(90_000);

  let sender: string;
  let netnsPath: string;
  let pinBase: string;
  let stateDir: string;
  let apiDir: string;
  let dbFile: string;
  let port: number;
  let api: ApiChild | undefined;
  let agent: AgentChild | undefined;
  let token: string;
  let egress: EgressObject | undefined;
  let tcp: TcpTuningObject | undefined;
  let cg: PrivateCgroup2 | undefined;
  let kernel: Datapath;
  let classId: number;
  const latencies: Record<string, number> = {};

  const agentArgs = () => [
    '--api', api!.url, '--iface', IFACE, '--netns', netnsPath, '--host', HOST, '--label', 'zone=kt',
    '--state-dir', stateDir, '--pin-base', pinBase, '--cgroup-root', cg!.base, '--resync', RESYNC, '--heartbeat', '1s', '--backoff-max', '1s',
  ];
  const startAgent = () => (agent = startAgentChild(agentArgs(), token));
  const withLog = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${agent?.tail() ?? '(no agent)'}`);
    }
  };
  /** t_last of the class's schedule, as the kernel has it. */
  const tLast = (id: number): number => {
    const slot = egress!.slots.get(id);
    assert.ok(slot !== undefined, `class ${id} has no slot`);
    return egress!.state.get(slot)!.t_last;
  };
  /** PATCH or DELETE the class with its current ETag (the API requires If-Match). */
  const change = async (method: 'PATCH' | 'DELETE', body?: unknown) => {
    const got = await request(api!.url, 'GET', '/v1/classes/peer');
    assert.equal(got.status, 200);
    return request(api!.url, method, '/v1/classes/peer', { body, headers: { 'if-match': got.body.etag } });
  };
  const host = async () => (await request(api!.url, 'GET', `/v1/hosts/${HOST}`)).body;

  // Registered before useTestNetns, so it runs first: the interface still exists for teardown.
  after(async function () {
    this.timeout(30_000);
    await killed(agent?.child);
    await killed(api?.child);
    egress?.close();
    tcp?.close();
    if (pinBase && netnsPath && existsSync(join(pinBase, IFACE))) {
      await promisify(execFile)(process.execPath, [CLI, 'agent', 'teardown', '--iface', IFACE, '--state-dir', stateDir, '--netns', netnsPath, '--pin-base', pinBase]).catch((err: Error) =>
        console.error(`teardown: ${err.message}`),
      );
    }
    removePinDir(pinBase);
    await cg?.cleanup();
    for (const dir of [stateDir, apiDir]) if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`      latencies (ms): ${JSON.stringify(latencies)}`);
  });
  const nets = useTestNetns();

  before(async () => {
    sender = await nets.createTestNetns();
    const receiver = await nets.createTestNetns();
    netnsPath = `/run/netns/${sender}`;
    await nets.vethPair({ a: { ns: sender, name: IFACE, addr: '10.93.0.1/24' }, b: { ns: receiver, name: PEER_IFACE, addr: `${PEER}/24` } });
    pinBase = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-agent-state-'));
    apiDir = mkdtempSync(join(tmpdir(), 'pacer-agent-api-'));
    dbFile = join(apiDir, 'pacer.db');
    cg = await PrivateCgroup2.create();
    port = await freePort();
    api = await startApiChild(dbFile, port);
    token = await tokenFor(api.url, 'agent', HOST);
    startAgent();
    // Installed and registered: the pins exist and the host has heartbeated once.
    await withLog(until('the agent to install and heartbeat', async () => ((await host())?.status?.mode ? true : undefined), 15_000, 50));
    egress = EgressObject.load({ pinRoot: join(pinBase, IFACE) });
    kernel = new Datapath(egress);
    tcp = TcpTuningObject.load({ pinRoot: join(pinBase, 'tcp') });
  });

  it('installs in policing mode and reports it in the host status', async () => {
    const h = await host();
    assert.equal(h.status.mode, 'policing');
    assert.equal(h.status.modeDetail, POLICING_DETAIL);
    assert.ok(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })) !== undefined, 'the egress program is attached');
    assert.deepEqual(h.labels, { zone: 'kt' });
  });

  it('(1) a class created through REST appears in the kernel maps within about a second', async () => {
    const t0 = performance.now();
    const created = await request(api!.url, 'POST', '/v1/classes', {
      body: { name: 'peer', rate: '10mbit', match: { dst: [PEER_PREFIX] }, hosts: { matchLabels: { zone: 'kt' } } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    classId = created.body.id;
    await withLog(until('the class in the maps', () => (kernel.read().dst4.get(PEER_PREFIX) === classId ? true : undefined)));
    latencies.create = Math.round(performance.now() - t0);
    const c = kernel.read().classes.get(classId);
    assert.equal(c?.rate_bps, 10_000_000);
    assert.equal(c?.parent_id, 0);
    assert.ok(latencies.create < 5000);
  });

  it('(2) a rate change through REST rewrites class_config and keeps the schedule (t_last)', async () => {
    // Real UDP from the sender's namespace to the peer: classified by the prefix, stamps t_last.
    sendUdp(sender, { to: PEER, port: 9, size: 200, count: 5 });
    await until('the class to count the packets', () => ((kernel.stats().classes.get(classId)?.packets ?? 0) >= 5 ? true : undefined), 5000, 20);
    const before = tLast(classId);
    assert.ok(before > 0, 't_last is stamped by the traffic');

    const t0 = performance.now();
    const patched = await change('PATCH', { rate: '20mbit' });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await withLog(until('the new rate in class_config', () => (kernel.read().classes.get(classId)?.rate_bps === 20_000_000 ? true : undefined)));
    latencies.rateChange = Math.round(performance.now() - t0);
    assert.equal(tLast(classId), before, 'the schedule was kept');
    assert.equal(kernel.stats().classes.get(classId)?.packets, 5, 'counters were kept');
  });

  it('(4) killing the API leaves enforcement unchanged and the agent running; back on the same DB, the agent catches up', async () => {
    const enforced = kernel.read();
    const program = tcQuery(filterOf({ iface: IFACE, netns: netnsPath }));
    const linesBefore = agent!.lines.length;
    await killed(api!.child);
    // Longer than two resyncs and several failed reconnects.
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(agent!.running, `the agent is still running\n${agent!.tail()}`);
    assert.deepEqual(kernel.read(), enforced, 'the maps are unchanged');
    assert.equal(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })), program, 'the program is still attached');
    assert.ok(agent!.find('API unreachable or watch failed; enforcement unchanged, retrying', linesBefore), 'the agent says the API is unreachable');

    api = await startApiChild(dbFile, port);
    const t0 = performance.now();
    const patched = await change('PATCH', { rate: '30mbit' });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await withLog(until('the change made after the API came back', () => (kernel.read().classes.get(classId)?.rate_bps === 30_000_000 ? true : undefined), 15_000));
    latencies.catchUpAfterApiRestart = Math.round(performance.now() - t0);
    const h = await withLog(until('the heartbeat with the new revision', async () => {
      const h = await host();
      return h?.status?.appliedRevision >= patched.body.revision ? h : undefined;
    }, 10_000, 50));
    assert.equal(h.status.lastError, null);
  });

  it('TCP tuning: sock_ops attached at --cgroup-root through a pinned link; a class\'s rtoMin lands in tcp_tuning in µs', async () => {
    const link = pinnedLinkInfo(join(pinBase, 'tcp', 'pacer_sockops_link'));
    assert.equal(link.cgroupId, cgroupId(cg!.base), 'attached at the cgroup root given');
    const t0 = performance.now();
    const patched = await change('PATCH', { tcp: { rtoMin: '20ms' } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    await withLog(until('the tuning in tcp_tuning', () => (tcp!.tuning.get(classId)?.rto_min_us === 20_000 ? true : undefined)));
    latencies.tcpTuning = Math.round(performance.now() - t0);
    assert.deepEqual(tcp!.tuning.get(classId), { rto_min_us: 20_000, delack_max_us: 0 });
    assert.equal(tcp!.dst4.get(PEER_PREFIX), classId, 'sockets to the peer prefix are tuned by this class');
    // The shaping side is untouched by a TCP-only change.
    assert.equal(kernel.read().classes.get(classId)?.rate_bps, 30_000_000);
  });

  it('(5) SIGKILL of the agent leaves the program attached and the maps pinned; a restarted agent adopts them', async () => {
    sendUdp(sender, { to: PEER, port: 9, size: 200, count: 3 });
    await until('the class to count the packets', () => ((kernel.stats().classes.get(classId)?.packets ?? 0) >= 8 ? true : undefined), 5000, 20);
    const program = tcQuery(filterOf({ iface: IFACE, netns: netnsPath }));
    const before = { tLast: tLast(classId), state: kernel.read(), slot: egress!.slots.get(classId) };
    assert.ok(before.tLast > 0);

    await killed(agent!.child);
    assert.equal(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })), program, 'still attached with the agent gone');
    assert.ok(existsSync(join(pinBase, IFACE, 'pacer_egress')) && existsSync(join(pinBase, IFACE, 'class_config')), 'still pinned');
    assert.deepEqual(kernel.read(), before.state, 'still enforcing the same classes');

    const restartedAt = Date.now();
    startAgent();
    const ready = await withLog(until('the restarted agent to install', () => agent!.find('interface ready'), 15_000, 20));
    assert.equal(ready.adopted, true, 'adopted, not reinstalled');
    const tcpReady = await withLog(until('TCP tuning to be ready', () => agent!.find('TCP tuning ready'), 15_000, 20));
    assert.equal(tcpReady.attach, 'adopted', 'the pinned sock_ops link was adopted');
    assert.equal(ready.modeDetail, POLICING_DETAIL);
    assert.equal(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })), program, 'the same program id');
    // Its first applies (the snapshot, then the API's state) find nothing to change.
    const applied = await withLog(until('the restarted agent to apply', () => agent!.find('applied'), 15_000, 20));
    assert.deepEqual(applied.changes, {}, 'adoption wrote nothing');
    assert.equal(egress!.slots.get(classId), before.slot);
    assert.equal(tLast(classId), before.tLast, 't_last not reset');
    assert.deepEqual(kernel.read(), before.state);
    const h = await withLog(until('a heartbeat from the restarted agent', async () => {
      const h = await host();
      return h?.status && Date.parse(h.lastSeenAt) >= restartedAt && h.status.appliedRevision > 0 ? h : undefined;
    }, 15_000, 50));
    assert.equal(h.status.mode, 'policing');
    assert.equal(h.status.modeDetail, POLICING_DETAIL);
  });

  it('(6) drift: an entry deleted behind the agent\'s back (bpftool) is repaired by the next resync', async () => {
    // dst4_class is an LPM trie: key = prefix length (u32, little endian), then the address.
    const key = ['32', '0', '0', '0', ...PEER.split('.')];
    await promisify(execFile)('bpftool', ['map', 'delete', 'pinned', join(pinBase, IFACE, 'dst4_class'), 'key', ...key]);
    const t0 = performance.now();
    assert.equal(kernel.read().dst4.has(PEER_PREFIX), false, 'bpftool deleted it');
    await withLog(until('the resync to restore the prefix', () => (kernel.read().dst4.get(PEER_PREFIX) === classId ? true : undefined), 5000, 10));
    latencies.driftRepair = Math.round(performance.now() - t0);
    assert.ok(latencies.driftRepair < 2500, `repaired within about one resync interval (${RESYNC}), took ${latencies.driftRepair} ms`);
  });

  it('(3) deleting the class through REST removes it from the maps', async () => {
    const t0 = performance.now();
    const del = await change('DELETE');
    assert.ok(del.status === 204 || del.status === 200, `delete: ${del.status}`);
    await withLog(until('the class to leave the maps', () => {
      const s = kernel.read();
      return !s.classes.has(classId) && !s.dst4.has(PEER_PREFIX) && egress!.slots.get(classId) === undefined && tcp!.tuning.get(classId) === undefined ? true : undefined;
    }));
    latencies.delete = Math.round(performance.now() - t0);
    assert.ok(agent!.running);
  });

  it('SIGTERM stops the agent and leaves enforcement; `pacer agent teardown` removes the filter, hook, pins, snapshot and empty pin directory, and says so', async () => {
    assert.deepEqual(agent!.lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no errors logged');
    const program = tcQuery(filterOf({ iface: IFACE, netns: netnsPath }));
    agent!.child.kill('SIGTERM');
    const exit = await agent!.exited;
    assert.equal(exit.code, 0);
    assert.equal(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })), program, 'still attached after SIGTERM');
    assert.ok(existsSync(join(stateDir, `${IFACE}.last-known-good.json`)), 'the agent left its snapshot');
    const { stdout: said } = await promisify(execFile)(process.execPath, [CLI, 'agent', 'teardown', '--iface', IFACE, '--state-dir', stateDir, '--netns', netnsPath, '--pin-base', pinBase]);
    // It says what it removed (issue 11), its state files and the emptied pin directory included.
    assert.match(said, /^removed:\n/);
    for (const what of [`pacer's tc filter on ${IFACE}`, `the clsact qdisc on ${IFACE}`, `pins under ${join(pinBase, IFACE)}`, `state file ${join(stateDir, `${IFACE}.last-known-good.json`)}`, 'TCP tuning: the sock_ops link', `the empty pin directory ${pinBase}`]) {
      assert.ok(said.includes(`- ${what}`), `teardown says it removed ${what}:\n${said}`);
    }
    assert.equal(existsSync(join(stateDir, `${IFACE}.last-known-good.json`)), false, 'the snapshot is gone');
    assert.equal(existsSync(pinBase), false, 'the empty pin directory is gone');
    assert.equal(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })), undefined, 'detached');
    assert.equal(existsSync(join(pinBase, IFACE)), false, 'unpinned');
    assert.equal(existsSync(join(pinBase, 'tcp')), false, 'the sock_ops link and maps unpinned');
    const { stdout: attached } = await promisify(execFile)('bpftool', ['cgroup', 'show', cg!.base]);
    assert.doesNotMatch(attached, /sock_ops/, 'sock_ops detached from the cgroup');
    const { stdout } = await promisify(execFile)('tc', ['-n', sender, 'qdisc', 'show', 'dev', IFACE]);
    assert.doesNotMatch(stdout, /clsact/);
  });
});
