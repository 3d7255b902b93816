/**
 * The real tc egress program on real traffic: a veth pair between two namespaces this test makes,
 * the program attached (clsact egress) on the sender's end inside its namespace, UDP from sockets
 * in that namespace and TCP from iperf3. Asserted on the maps: classification by destination
 * prefix (IPv4 and IPv6) and by socket mark, unclassified traffic, horizon drops, and a second
 * process adopting the pinned maps while the attached program keeps counting.
 *
 * This kernel has no fq, so a stamped departure time is not waited for: pacing itself cannot be
 * seen here (the VM tier does that). What can: the horizon drop, which without fq is a policer.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import type { ClassConfig, ClassStats } from '../../shaper-bpf/src/layout.js';
import { tcAttach, tcDetach, tcHookCreate, tcHookDestroy, tcQuery, type TcFilterRef } from '../../shaper-bpf/src/libbpf/index.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { TestClasses } from '../support/slots.js';
import { execIn, useTestNetns } from '../support/netns.js';
import { iperf3Client, iperf3Server, lineReader, rxCounters, sendUdp, udpLoad } from '../support/traffic.js';

const SEND_IF = 'pcs0';
const RECV_IF = 'pcr0';
const DST4 = '10.77.0.2'; // class 1 by prefix
const OTHER4 = '10.77.0.3'; // no selector: unclassified
const POLICED4 = '10.77.0.4'; // class 4: far below the offered load
const DST6 = 'fd77::2'; // class 2 by prefix
const MARK = 7; // class 3 by socket mark
const UDP_PORT = 9; // nothing listens; the receiver's "port unreachable" leaves on its own, unhooked, egress
const IPERF_PORT = 5201;
const PAYLOAD = 1000;
const WIRE4 = PAYLOAD + 8 + 20 + 14; // UDP, IPv4, Ethernet: tc egress sees the whole frame
const WIRE6 = PAYLOAD + 8 + 40 + 14;
const POLICED_RATE = 1_000_000; // 1 Mbit/s: one 1042 B datagram per 8.336 ms
const POLICED_HORIZON = 2_000_000; // 2 ms

const roomy = (): ClassConfig => ({ rate_bps: 10_000_000_000, burst_ns: 0, horizon_ns: 1_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 });
const ZERO: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };

describe('tc egress program on real traffic (veth between two test namespaces)', function () {
  this.timeout(120_000);
  let sender: string;
  let receiver: string;
  let pinRoot: string | undefined;
  let eg: EgressObject | undefined;
  let tc: TestClasses | undefined;
  let filter: TcFilterRef | undefined;
  let hooked = false;
  const children: ChildProcess[] = [];

  // Registered before useTestNetns, so it runs first: detaching needs the namespace to exist.
  after(() => {
    const errors: unknown[] = [];
    const attempt = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const c of children) attempt(() => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL'));
    if (filter) attempt(() => tcDetach(filter!));
    if (hooked) attempt(() => tcHookDestroy({ iface: SEND_IF, netns: netnsPath(sender) }));
    attempt(() => eg?.close());
    attempt(() => removePinDir(pinRoot));
    if (errors.length) throw new AggregateError(errors, 'cleanup failed');
  });
  const nets = useTestNetns();

  const loaded = (): EgressObject => {
    if (!eg) throw new Error('the egress object is closed');
    return eg;
  };
  const classes = (): TestClasses => {
    if (!tc) throw new Error('the egress object is closed');
    return tc;
  };
  const statsOf = (id: number): ClassStats => classes().stats(id) ?? ZERO;
  const snapshot = () => new Map([1, 2, 3, 4].map((id) => [id, statsOf(id)]));
  /** Per class, how much packets, bytes and horizon drops grew since `before`. */
  const growth = (before: ReturnType<typeof snapshot>) =>
    new Map([...snapshot()].map(([id, s]) => {
      const b = before.get(id)!;
      return [id, { packets: s.packets - b.packets, bytes: s.bytes - b.bytes, horizon_drops: s.horizon_drops - b.horizon_drops }];
    }));
  const none = { packets: 0, bytes: 0, horizon_drops: 0 };

  before(async () => {
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: SEND_IF, addr: '10.77.0.1/24' }, b: { ns: receiver, name: RECV_IF, addr: `${DST4}/24` } });
    await execIn(sender, 'ip', ['addr', 'add', 'fd77::1/64', 'dev', SEND_IF, 'nodad']);
    await execIn(receiver, 'ip', ['addr', 'add', `${DST6}/64`, 'dev', RECV_IF, 'nodad']);
    for (const a of [OTHER4, POLICED4]) await execIn(receiver, 'ip', ['addr', 'add', `${a}/32`, 'dev', RECV_IF]);
    // Permanent neighbours both ways: no neighbour discovery, whose unicast IPv6 packets to
    // fd77::2 (the sender's advertisements, its NUD probes) would land in class 2 and spoil exact counts.
    const mac = async (ns: string, dev: string) => (JSON.parse(await execIn(ns, 'ip', ['-j', 'link', 'show', dev])) as Array<{ address: string }>)[0]!.address;
    const [recvMac, sendMac] = [await mac(receiver, RECV_IF), await mac(sender, SEND_IF)];
    for (const a of [DST4, OTHER4, POLICED4, DST6]) await execIn(sender, 'ip', ['neigh', 'replace', a, 'lladdr', recvMac, 'dev', SEND_IF, 'nud', 'permanent']);
    for (const a of ['10.77.0.1', 'fd77::1']) await execIn(receiver, 'ip', ['neigh', 'replace', a, 'lladdr', sendMac, 'dev', RECV_IF, 'nud', 'permanent']);

    pinRoot = makePinDir();
    eg = EgressObject.load({ pinRoot });
    tc = new TestClasses(eg);
    for (const id of [1, 2, 3]) tc.set(id, roomy());
    tc.set(4, { ...roomy(), rate_bps: POLICED_RATE, horizon_ns: POLICED_HORIZON });
    tc.dst4([[`${DST4}/32`, 1]]);
    tc.dst6([[`${DST6}/128`, 2]]);
    tc.mark(MARK, 3);
    tc.dst4([[`${POLICED4}/32`, 4]]);

    const netns = netnsPath(sender);
    hooked = tcHookCreate({ iface: SEND_IF, netns });
    assert.ok(hooked, 'a fresh veth has no clsact yet');
    const attached = tcAttach({ iface: SEND_IF, netns, program: eg.program, direction: 'egress' });
    filter = { iface: SEND_IF, netns, direction: 'egress', handle: attached.handle, priority: attached.priority };
    assert.equal(tcQuery(filter), eg.program.id, 'the filter runs our program');
  });

  it('counts UDP to the /32 and the /128 in their classes, to the packet and the byte, on the real clock', () => {
    const before = snapshot();
    const t0 = Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, like bpf_ktime_get_ns
    sendUdp(sender, { to: DST4, port: UDP_PORT, size: PAYLOAD, count: 50 });
    sendUdp(sender, { to: DST6, port: UDP_PORT, size: PAYLOAD, count: 40 });
    const t1 = Number(process.hrtime.bigint());
    const g = growth(before);
    assert.deepEqual(g.get(1), { packets: 50, bytes: 50 * WIRE4, horizon_drops: 0 });
    assert.deepEqual(g.get(2), { packets: 40, bytes: 40 * WIRE6, horizon_drops: 0 });
    assert.deepEqual([g.get(3), g.get(4)], [none, none]);
    // At 10 Gbit/s nothing queues: the schedule sits at the last send, on the kernel's clock.
    const tLast = classes().state(1)!.t_last;
    assert.ok(tLast >= t0 && tLast <= t1 + 1_000_000, `t_last ${tLast} within [${t0}, ${t1} + 1 ms]`);
  });

  it('counts traffic that no selector matches in iface_stats, and in no class', () => {
    const before = snapshot();
    const iface = loaded().ifaceStats.get(0)!;
    sendUdp(sender, { to: OTHER4, port: UDP_PORT, size: PAYLOAD, count: 40 });
    const after = loaded().ifaceStats.get(0)!;
    // At least: the sender's own IPv6 housekeeping (MLD, router solicitations) is unclassified too.
    assert.ok(after.unclassified_packets - iface.unclassified_packets >= 40, `unclassified packets +${after.unclassified_packets - iface.unclassified_packets}`);
    assert.ok(after.unclassified_bytes - iface.unclassified_bytes >= 40 * WIRE4);
    assert.deepEqual([...growth(before).values()], [none, none, none, none]);
  });

  it('a socket mark (SO_MARK) selects its class ahead of the destination prefix; an unknown mark falls through', () => {
    const before = snapshot();
    sendUdp(sender, { to: DST4, port: UDP_PORT, size: PAYLOAD, count: 30, mark: MARK });
    sendUdp(sender, { to: DST4, port: UDP_PORT, size: PAYLOAD, count: 20, mark: MARK + 1 });
    const g = growth(before);
    assert.deepEqual(g.get(3), { packets: 30, bytes: 30 * WIRE4, horizon_drops: 0 });
    assert.deepEqual(g.get(1), { packets: 20, bytes: 20 * WIRE4, horizon_drops: 0 });
  });

  it('counts TCP (iperf3) in the destination\'s class, IPv4 and IPv6', async () => {
    children.push(await iperf3Server(receiver, IPERF_PORT));
    for (const [addr, id, other] of [[DST4, 1, 2], [DST6, 2, 1]] as const) {
      const before = snapshot();
      const report = await iperf3Client(sender, ['-c', addr, '-p', String(IPERF_PORT), '-t', '1', '-b', '20M']);
      const received = report.end.sum_received.bytes;
      const g = growth(before).get(id)!;
      assert.ok(received > 1_000_000, `iperf3 moved ${received} bytes`);
      // Every byte the server got left through the program, plus headers, the control connection
      // and any retransmission; never several times as much.
      assert.ok(g.bytes >= received && g.bytes < 1.5 * received + 500_000, `class ${id}: ${g.bytes} bytes for ${received} received`);
      assert.ok(g.packets > 0 && g.horizon_drops === 0);
      assert.deepEqual(growth(before).get(other), none, `nothing in class ${other}`);
    }
  });

  it('a class far below the offered load drops beyond its 2 ms horizon: a policer, without fq', async () => {
    const before = snapshot();
    const rx = await rxCounters(receiver, RECV_IF);
    // 20 Mbit/s offered: 25 datagrams every 10 ms for 1 s, into a 1 Mbit/s class.
    const load = await udpLoad(sender, { to: POLICED4, port: UDP_PORT, size: PAYLOAD, perBatch: 25, batches: 100, gapMs: 10 });
    const rxAfter = await rxCounters(receiver, RECV_IF);
    const g = growth(before).get(4)!;
    const delay = (WIRE4 * 8 * 1e9) / POLICED_RATE;
    assert.equal(g.packets + g.horizon_drops, load.datagrams, 'every datagram either passed or was dropped');
    assert.ok(g.horizon_drops > 0);
    assert.equal(g.bytes, g.packets * WIRE4);
    // Each pass moves the schedule one transmission time on, and it never runs more than the
    // horizon ahead of the clock: at most 1 + (elapsed + horizon) / delay. And a batch ≥ 10 ms
    // after the last pass finds the schedule no more than 2 ms ahead: at least one per batch.
    const most = 1 + Math.floor((load.elapsedNs + POLICED_HORIZON) / delay);
    assert.ok(g.packets >= 100 && g.packets <= most, `${g.packets} passed: expected 100..${most} (${load.elapsedNs / 1e6} ms)`);
    // The receiver got about rate × time, far below the offer (its counters also see the rest).
    const offered = load.datagrams * WIRE4;
    assert.ok(rxAfter.packets - rx.packets >= g.packets);
    assert.ok(rxAfter.bytes - rx.bytes < 0.5 * offered, `received ${rxAfter.bytes - rx.bytes} of ${offered} bytes offered`);
  });

  it('a new process adopts the pinned maps: the attached program keeps counting from where it was', async () => {
    const e = loaded();
    const ref = filter!;
    const progId = e.program.id;
    sendUdp(sender, { to: DST4, port: UDP_PORT, size: PAYLOAD, count: 10 });
    const t = classes();
    const before = { config: t.config(1), state: t.state(1), stats: t.stats(1) };
    assert.ok(before.stats!.packets > 0 && before.state!.t_last > 0);
    e.program.pin(join(pinRoot!, 'pacer_egress'));
    e.close(); // this process lets go of every fd; the pins and the filter keep it all alive
    eg = undefined;
    tc = undefined;

    const worker = spawn(process.execPath, [join(process.cwd(), 'dist/test/support/traffic-adopt-worker.js'), pinRoot!, '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(worker);
    const next = lineReader(worker);
    const first = JSON.parse(await next());
    assert.notEqual(first.programId, progId, 'the worker loaded its own copy of the program');
    assert.deepEqual({ config: first.config, state: first.state, stats: first.stats }, before, 'adopted: config, schedule and counters as they were');

    sendUdp(sender, { to: DST4, port: UDP_PORT, size: PAYLOAD, count: 30 });
    worker.stdin!.write('\n');
    const second = JSON.parse(await next());
    assert.equal(second.stats.packets, before.stats!.packets + 30);
    assert.equal(second.stats.bytes, before.stats!.bytes + 30 * WIRE4);
    assert.ok(second.state.t_last > before.state!.t_last, 't_last moved on from the adopted schedule');
    assert.equal(tcQuery(ref), progId, 'the filter still runs the original program');
    worker.stdin!.end();
  });
});
