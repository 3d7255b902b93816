/**
 * The agent's live mode and its TCP tuning on real parts: a real API process, a real `pacer agent`
 * process on the sending end of a veth pair between two namespaces this test makes, a private
 * cgroup v2 root for sock_ops, and real TCP connections (test/support/tcp-peer.ts) between them.
 *
 * - the root qdisc swapped by hand between the qdiscs this kernel has (it has no sch_fq, so the
 *   interface polices throughout; the fq → pfifo transition itself runs in the VM tier): the
 *   agent keeps policing, does not fight the operator's qdisc, keeps enforcing;
 * - rto_min route metrics for a prefix-selected class: pacer's route appears (proto 112), an
 *   established connection's RTO follows it, a change updates it, a hand-deleted route is
 *   repaired, refused prefixes are per-class errors, removal and teardown delete it;
 * - sock_ops refusals (an RTOmin below 2 jiffies) reach GET /v1/hosts/NAME as a per-class error,
 *   and fixing the class clears it;
 * - a class selected by a mark only is tuned through sock_ops (classified by SO_MARK first, as tc).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Datapath } from '../../shaper-bpf/src/datapath.js';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { filterOf, POLICING_DETAIL } from '../../shaper-bpf/src/interface.js';
import { tcQuery } from '../../shaper-bpf/src/libbpf/index.js';
import { fqPresence, readRootQdisc } from '../../shaper-bpf/src/qdisc.js';
import { PACER_ROUTE_PROTO, type RouteState } from '../../controller/datapath/route-plan.js';
import { readSnapshot } from '../../controller/reconciler/snapshot.js';
import type { Desired } from '../../controller/reconciler/reconciler.js';
import { request, tokenFor } from '../support/api-server.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { PrivateCgroup2 } from '../support/cgroup2.js';
import { execIn, useTestNetns } from '../support/netns.js';
import { rtoMs, TcpPeers } from '../support/tcp-peer.js';
import { sendUdp } from '../support/traffic.js';
import { CLI, freePort, killed, startAgentChild, startApiChild, until, type AgentChild, type ApiChild } from '../support/agent-processes.js';

const IFACE = 'au0';
const PEER_IFACE = 'au1';
const PEER = '10.95.0.2';
const HOST = 'tuning-node';
const LABELS = { zone: 'tu' };

describe('pacer agent: live mode, rto_min routes and TCP refusals (real API, real agent, veth in test namespaces, real TCP)', function () {
  this.timeout(120_000);

  let sender: string;
  let receiver: string;
  let netnsPath: string;
  let pinBase: string;
  let stateDir: string;
  let apiDir: string;
  let api: ApiChild | undefined;
  let agent: AgentChild | undefined;
  let startAgent: () => AgentChild;
  let egress: EgressObject | undefined;
  let tcp: TcpTuningObject | undefined;
  let kernel: Datapath;
  let cg: PrivateCgroup2 | undefined;
  let plain: string;
  let tuned: string;
  /** The connection to PEER established before any tuning: only the route can change its RTO. */
  const peers = new TcpPeers();
  let untunedClientPort = 0;
  const refusalPeers = new TcpPeers();

  const teardown = () =>
    promisify(execFile)(process.execPath, [CLI, 'agent', 'teardown', '--iface', IFACE, '--state-dir', stateDir, '--netns', netnsPath, '--pin-base', pinBase]);
  const withLog = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${agent?.tail() ?? '(no agent)'}`);
    }
  };
  const host = async () => (await request(api!.url, 'GET', `/v1/hosts/${HOST}`)).body;
  const create = async (body: Record<string, unknown>): Promise<number> => {
    const r = await request(api!.url, 'POST', '/v1/classes', { body: { hosts: { matchLabels: LABELS }, ...body } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id;
  };
  /** PATCH with the class's current ETag; returns the new revision. */
  const patch = async (name: string, body: unknown): Promise<number> => {
    const got = await request(api!.url, 'GET', `/v1/classes/${name}`);
    const r = await request(api!.url, 'PATCH', `/v1/classes/${name}`, { body, headers: { 'if-match': got.body.etag } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.revision;
  };
  const remove = async (name: string) => {
    const got = await request(api!.url, 'GET', `/v1/classes/${name}`);
    const r = await request(api!.url, 'DELETE', `/v1/classes/${name}`, { headers: { 'if-match': got.body.etag } });
    assert.ok(r.status === 204 || r.status === 200, `delete ${name}: ${r.status}`);
  };
  /** A heartbeat that has applied `revision` (or later) and satisfies `ok`. */
  const statusWhere = (what: string, ok: (status: any) => boolean, revision = 0) =>
    withLog(until(what, async () => {
      const h = await host();
      return h?.status && h.status.appliedRevision >= revision && ok(h.status) ? h.status : undefined;
    }, 15_000, 100));
  /** pacer's routes in the sender's namespace, as the kernel lists them. */
  const pacerRoutes = async (): Promise<Array<{ dst: string; dev?: string; metrics?: Array<{ rto_min?: number }> }>> =>
    JSON.parse(await execIn(sender, 'ip', ['-4', '-j', 'route', 'show', 'proto', String(PACER_ROUTE_PROTO)]));
  const routeRtoMin = async (dst: string) => (await pacerRoutes()).find((r) => r.dst === dst)?.metrics?.[0]?.rto_min;

  after(async function () {
    this.timeout(30_000);
    await peers.killAll();
    await refusalPeers.killAll();
    await killed(agent?.child);
    await killed(api?.child);
    egress?.close();
    tcp?.close();
    if (pinBase && netnsPath && existsSync(join(pinBase, IFACE))) await teardown().catch((err: Error) => console.error(`teardown: ${err.message}`));
    removePinDir(pinBase);
    await cg?.cleanup();
    for (const dir of [stateDir, apiDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const nets = useTestNetns();

  before(async () => {
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    netnsPath = `/run/netns/${sender}`;
    await nets.vethPair({ a: { ns: sender, name: IFACE, addr: '10.95.0.1/24' }, b: { ns: receiver, name: PEER_IFACE, addr: `${PEER}/24` } });
    pinBase = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-tuning-state-'));
    apiDir = mkdtempSync(join(tmpdir(), 'pacer-tuning-api-'));
    cg = await PrivateCgroup2.create();
    plain = cg.child('plain');
    tuned = cg.child('tuned');
    api = await startApiChild(join(apiDir, 'pacer.db'), await freePort());
    const token = await tokenFor(api.url, 'agent', HOST);
    const args = ['--api', api.url, '--iface', IFACE, '--netns', netnsPath, '--host', HOST, '--label', 'zone=tu', '--state-dir', stateDir, '--pin-base', pinBase,
      '--cgroup-root', cg.base, '--resync', '1s', '--heartbeat', '1s', '--backoff-max', '1s', '--qdisc-check', '200ms', '--borrow-interval', '0s'];
    startAgent = () => (agent = startAgentChild(args, token));
    startAgent();
    await statusWhere('the agent to install and heartbeat', (s) => s.mode !== undefined);
    egress = EgressObject.load({ pinRoot: join(pinBase, IFACE) });
    kernel = new Datapath(egress);
    tcp = TcpTuningObject.load({ pinRoot: join(pinBase, 'tcp') });
  });

  it('the root qdisc swapped by hand (pfifo, bfifo, htb, tbf, default): the agent keeps policing, keeps enforcing, and leaves the operator\'s qdisc alone', async () => {
    const id = await create({ name: 'swap', rate: '10mbit', match: { dst: [`${PEER}/32`] } });
    await withLog(until('the class in the maps', () => (kernel.read().dst4.get(`${PEER}/32`) === id ? true : undefined)));
    const program = tcQuery(filterOf({ iface: IFACE, netns: netnsPath }));
    const from = agent!.lines.length;
    const swaps: Array<[string, string[]]> = [
      ['pfifo', ['pfifo', 'limit', '500']],
      ['bfifo', ['bfifo']],
      ['htb', ['handle', '1:', 'htb', 'default', '1']],
      ['tbf', ['tbf', 'rate', '100mbit', 'burst', '64kb', 'latency', '50ms']],
    ];
    for (const [kind, argv] of swaps) {
      await execIn(sender, 'tc', ['qdisc', 'replace', 'dev', IFACE, 'root', ...argv]);
      await sleep(700); // several checks (every 200 ms)
      const root = await readRootQdisc({ iface: IFACE, netns: sender });
      assert.equal(root?.kind, kind, `the agent left ${kind} in place`);
      assert.deepEqual(fqPresence(root), { fq: false, found: kind }, 'what the agent\'s check reads (KernelInstaller.checkQdisc)');
      const h = await host();
      assert.equal(h.status.mode, 'policing');
      assert.equal(h.status.modeDetail, POLICING_DETAIL, 'still the reason found at install: this kernel has no fq');
      sendUdp(sender, { to: PEER, port: 9, size: 200, count: 3 });
    }
    await execIn(sender, 'tc', ['qdisc', 'del', 'dev', IFACE, 'root']);
    await sleep(700);
    assert.equal(tcQuery(filterOf({ iface: IFACE, netns: netnsPath })), program, 'the program stayed attached through the swaps');
    assert.equal(kernel.read().classes.get(id)?.rate_bps, 10_000_000);
    await withLog(until('the packets sent under each qdisc to be counted', () => ((kernel.stats().classes.get(id)?.packets ?? 0) >= 9 ? true : undefined), 5000, 20));
    const noise = agent!.lines.slice(from).filter((l) => l.level >= 40).map((l) => l.msg);
    assert.deepEqual(noise, [], 'no warnings or errors: not fq before, not fq after, nothing changed');
    await remove('swap');
  });

  it('rto_min route: a prefix class\'s route appears (proto 112, nexthop copied), an established connection\'s RTO follows it, a change updates it', async () => {
    // Established before the class has any TCP tuning: sock_ops never sees it again; only the route can tune it.
    const server = await peers.server(receiver, plain, PEER);
    const client = await peers.client(sender, plain, PEER, server.port);
    untunedClientPort = client.port;
    const rto = () => rtoMs(sender, `sport = :${client.port}`);
    assert.ok((await rto()) >= 200, `the kernel default RTOmin (200 ms) first, got ${await rto()}`);

    await create({ name: 'peer', rate: '50mbit', match: { dst: [`${PEER}/32`] } });
    const revision = await patch('peer', { tcp: { rtoMin: '70ms' } });
    await withLog(until('pacer\'s route with rto_min 70', async () => ((await routeRtoMin(PEER)) === 70 ? true : undefined), 10_000, 50));
    const [route] = (await pacerRoutes()).filter((r) => r.dst === PEER);
    assert.equal(route?.dev, IFACE, 'the nexthop of the connected route');
    // rttvar moves a quarter of the way to the new floor per round trip; the client ping-pongs every
    // 5 ms. (The kernel follows a lower floor this way; a higher one only bounds new connections.)
    await until('the established connection\'s RTO to follow', async () => {
      const r = await rto();
      return r >= 70 && r < 130 ? r : undefined;
    }, 10_000, 100);
    await statusWhere('a heartbeat without errors for the class', (s) => !s.classErrors.some((e: { class: string }) => e.class === 'peer'), revision);

    await patch('peer', { tcp: { rtoMin: '40ms' } });
    await withLog(until('the route updated to 40', async () => ((await routeRtoMin(PEER)) === 40 ? true : undefined), 10_000, 50));
    await until('the RTO to follow down again', async () => {
      const r = await rto();
      return r >= 40 && r < 70 ? r : undefined;
    }, 10_000, 100);
    assert.equal((await pacerRoutes()).length, 1, 'one route of pacer\'s: updated in place');
  });

  it('a route of pacer\'s deleted by hand is repaired by the next resync', async () => {
    await execIn(sender, 'ip', ['route', 'del', `${PEER}/32`, 'proto', String(PACER_ROUTE_PROTO)]);
    assert.equal(await routeRtoMin(PEER), undefined);
    await withLog(until('the resync to put the route back', async () => ((await routeRtoMin(PEER)) === 40 ? true : undefined), 5000, 50));
  });

  it('refused prefixes are per-class errors in the host status, nothing of those classes is installed, the others stay', async () => {
    await create({ name: 'noroute', rate: '1mbit', match: { dst: ['10.250.0.0/16'] }, tcp: { rtoMin: '20ms' } });
    await create({ name: 'subnet', rate: '1mbit', match: { dst: ['10.95.0.0/24', '10.95.0.3/32'] }, tcp: { rtoMin: '20ms' } });
    const status = await statusWhere('both refusals in the status', (s) => ['noroute', 'subnet'].every((c) => s.classErrors.some((e: { class: string }) => e.class === c)));
    const error = (c: string) => status.classErrors.find((e: { class: string }) => e.class === c).error;
    assert.equal(error('noroute'), 'route rto_min for 10.250.0.0/16: no route in the main table carries it (sock_ops still tunes the class\'s new connections)');
    assert.match(error('subnet'), /^route rto_min for 10\.95\.0\.0\/24: the route 10\.95\.0\.0\/24 dev au0 proto kernel exists for exactly this prefix and is not pacer's/);
    assert.deepEqual((await pacerRoutes()).map((r) => r.dst), [PEER], 'subnet\'s valid /32 is not installed either (all or none); peer\'s route stays');
    assert.equal(status.lastError, null, 'refusals are per class, not an apply failure');
    await remove('noroute');
    await remove('subnet');
    await statusWhere('the refusals gone with their classes', (s) => !s.classErrors.some((e: { class: string }) => e.class === 'noroute' || e.class === 'subnet'));
  });

  it('IPv6: a prefix class gets its rto_min route in the IPv6 main table, and loses it with the class', async () => {
    await execIn(sender, 'ip', ['-6', 'addr', 'add', 'fd00:95::1/64', 'dev', IFACE, 'nodad']);
    await execIn(receiver, 'ip', ['-6', 'addr', 'add', 'fd00:95::2/64', 'dev', PEER_IFACE, 'nodad']);
    await create({ name: 'v6peer', rate: '10mbit', match: { dst: ['fd00:95::2/128'] }, tcp: { rtoMin: '25ms' } });
    const v6routes = async () => JSON.parse(await execIn(sender, 'ip', ['-6', '-j', 'route', 'show', 'proto', String(PACER_ROUTE_PROTO)])) as Array<{ dst: string; dev?: string; metrics?: Array<{ rto_min?: number }> }>;
    const route = await withLog(until('the IPv6 route', async () => (await v6routes()).find((r) => r.dst === 'fd00:95::2'), 10_000, 50));
    assert.deepEqual([route.dev, route.metrics?.[0]?.rto_min], [IFACE, 25]);
    await remove('v6peer');
    await withLog(until('the IPv6 route gone', async () => ((await v6routes()).length === 0 ? true : undefined), 10_000, 50));
  });

  it('a class selected by a mark only is tuned through sock_ops on the sockets with that mark, ahead of a prefix class (tc\'s order)', async () => {
    const id = await create({ name: 'by-mark', rate: '50mbit', match: { marks: [77] }, tcp: { rtoMin: '20ms' } });
    await withLog(until('the mark in sock_ops\' maps', () => (tcp!.marks.get(77) === id && tcp!.tuning.get(id)?.rto_min_us === 20_000 ? true : undefined), 10_000, 50));
    const status = await statusWhere('a heartbeat with the class applied', () => true);
    assert.ok(!status.classErrors.some((e: { class: string }) => e.class === 'by-mark'), JSON.stringify(status.classErrors));
    // Both ends in the receiver's namespace, in an unselected cgroup; the client's peer may also be
    // selected by another test's prefix class (PEER/32): the mark comes first.
    const server = await refusalPeers.server(receiver, plain, PEER);
    const client = await refusalPeers.client(receiver, plain, PEER, server.port, { rounds: 20, mark: 77 });
    assert.deepEqual(tcp!.stats.get(id), { applied: 1, failed: 0, last_error: 0, last_option: 0 }, 'the marked socket, once');
    const rto = await rtoMs(receiver, `sport = :${client.port}`);
    assert.ok(rto >= 20 && rto < 100, `the marked socket's RTO: ${rto} ms`);
    await refusalPeers.killAll();
    await remove('by-mark');
  });

  it('TCP refusal: a class asking sock_ops for an RTOmin the kernel refuses shows the reason in GET /v1/hosts; fixing the class clears it', async () => {
    // 1 ms is below 2 jiffies on any kernel with HZ ≤ 1000: bpf_setsockopt answers EINVAL.
    const id = await create({ name: 'too-low', rate: '50mbit', match: { cgroups: ['/tuned'] }, tcp: { rtoMin: '1ms' } });
    await withLog(until('the tuning in the sock_ops map', () => (tcp!.tuning.get(id)?.rto_min_us === 1000 ? true : undefined), 10_000, 50));
    const server = await refusalPeers.server(receiver, tuned, PEER);
    await refusalPeers.client(receiver, tuned, PEER, server.port, { rounds: 5 });
    const refused = await statusWhere('the refusal in the host status', (s) => s.classErrors.some((e: { class: string }) => e.class === 'too-low'));
    const error = refused.classErrors.find((e: { class: string }) => e.class === 'too-low').error as string;
    assert.match(error, /^tcp: the kernel refused TCP_BPF_RTO_MIN: Invalid argument \(EINVAL\): below 2 jiffies/);
    assert.match(error, /\((\d+) sockets\)$/);

    const fixed = await patch('too-low', { tcp: { rtoMin: '20ms' } });
    await statusWhere('the error cleared once the class is fixed', (s) => !s.classErrors.some((e: { class: string }) => e.class === 'too-low'), fixed);
    // New sockets of the class are tuned now, and the error does not come back.
    const server2 = await refusalPeers.server(receiver, tuned, PEER);
    await refusalPeers.client(receiver, tuned, PEER, server2.port, { rounds: 5 });
    await withLog(until('the new sockets tuned', () => ((tcp!.stats.get(id)?.applied ?? 0) > 0 ? true : undefined), 5000, 50));
    await sleep(1500); // a heartbeat later
    assert.ok(!(await host()).status.classErrors.some((e: { class: string }) => e.class === 'too-low'));
    await refusalPeers.killAll();
  });

  it('removing the tuning deletes pacer\'s route; `pacer agent teardown` deletes the ones left', async () => {
    // Tuned by the route (40 ms); a late RTT sample on this busy machine may lift it for a moment.
    await until('the established connection on the route\'s floor', async () => ((await rtoMs(sender, `sport = :${untunedClientPort}`)) < 70 ? true : undefined), 10_000, 100);
    await patch('peer', { tcp: null });
    await withLog(until('the route gone', async () => ((await pacerRoutes()).length === 0 ? true : undefined), 10_000, 50));
    // A connection made now has the kernel's default floor again (neither the route nor sock_ops tunes it).
    const server = await peers.server(receiver, plain, PEER);
    const fresh = await peers.client(sender, plain, PEER, server.port);
    assert.ok((await rtoMs(sender, `sport = :${fresh.port}`)) >= 200);
    await peers.killAll();

    await patch('peer', { tcp: { rtoMin: '30ms' } });
    await withLog(until('the route back', async () => ((await routeRtoMin(PEER)) === 30 ? true : undefined), 10_000, 50));
    assert.deepEqual(agent!.lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no errors logged');

    // A SIGKILLed agent leaves the route; a restarted one finds it (proto 112) and changes nothing.
    // Killed once the last-known-good snapshot has the route too (it is written just after the
    // apply): a restarted agent enforces its snapshot before the API answers.
    const snapshot = join(stateDir, 'routes.last-known-good.json');
    await until('the route in the snapshot', () => (readSnapshot<Desired<RouteState>>(snapshot)?.state.get(`${PEER}/32`)?.rtoMinMs === 30 ? true : undefined), 5000, 20);
    await killed(agent!.child);
    assert.equal(await routeRtoMin(PEER), 30);
    const restartedAt = Date.now();
    startAgent();
    await withLog(until('a heartbeat from the restarted agent', async () => {
      const h = await host();
      return h?.status && Date.parse(h.lastSeenAt) >= restartedAt && h.status.appliedRevision > 0 ? true : undefined;
    }, 15_000, 100));
    await sleep(1500); // past a resync
    assert.equal(agent!.find('route tuning applied'), undefined, 'adopted: no route written');
    assert.equal(await routeRtoMin(PEER), 30);
    agent!.child.kill('SIGTERM');
    assert.equal((await agent!.exited).code, 0);
    assert.equal(await routeRtoMin(PEER), 30, 'SIGTERM leaves the route (it keeps tuning while the agent is away)');
    // What an install with fq records (this kernel has none, so the record is written here as the
    // install would have): the root before pacer was bfifo. Since then an operator replaced
    // pacer's fq with pfifo: teardown has no fq of pacer's to undo and leaves the operator's root.
    const record = join(stateDir, `${IFACE}.qdisc.json`);
    writeFileSync(record, JSON.stringify({ version: 1, iface: IFACE, netns: netnsPath, savedAt: new Date().toISOString(), restorable: true, root: { kind: 'bfifo', handle: '1:', options: { limit: 10000 }, children: [] } }));
    await execIn(sender, 'tc', ['qdisc', 'replace', 'dev', IFACE, 'root', 'pfifo', 'limit', '500']);
    await teardown();
    assert.deepEqual(await pacerRoutes(), [], 'teardown deleted pacer\'s routes');
    const root = await readRootQdisc({ iface: IFACE, netns: sender });
    assert.deepEqual([root?.kind, root?.options.limit], ['pfifo', 500], 'the operator\'s qdisc stays');
    assert.equal(existsSync(record), false, 'the record of the replaced fq is dropped');
    const others = JSON.parse(await execIn(sender, 'ip', ['-4', '-j', 'route', 'show'])) as Array<{ dst: string }>;
    assert.deepEqual(others.map((r) => r.dst), ['10.95.0.0/24'], 'and nothing else');
  });
});
