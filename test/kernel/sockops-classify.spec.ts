/**
 * One classification for both programs, on the real kernel: a TCP socket that one class selects by
 * its mark (SO_MARK) and another by its cgroup lands in the same class in the tc program (its
 * packets are counted there) and in sock_ops (it is capped at that class's rate and counted in
 * that class's tcp_stats). The order is classify_order.h's: the mark first.
 *
 * Two network namespaces joined by a veth pair; pacer's tc program installed on the sender's end
 * (installInterface); pacer_sockops attached at the test's own cgroup of a private cgroup2 mount,
 * with the client in a child cgroup of it. Both classes are paced by sock_ops at different rates,
 * so the cap `ss` shows names the class sock_ops picked.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Datapath } from '../../shaper-bpf/src/datapath.js';
import type { EgressObject } from '../../shaper-bpf/src/egress.js';
import { netnsPath, runIn } from '../../shaper-bpf/src/exec.js';
import { installInterface, uninstallInterface, type InstallOptions } from '../../shaper-bpf/src/interface.js';
import type { ClassConfig, ClassStats } from '../../shaper-bpf/src/layout.js';
import { cgroupId, TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { TcpDatapath } from '../../shaper-bpf/src/tcp-datapath.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { PrivateCgroup2 } from '../support/cgroup2.js';
import { until } from '../support/agent-processes.js';
import { listNetns, TestNetns } from '../support/netns.js';
import { TcpPeers } from '../support/tcp-peer.js';
import { cleanupSteps } from '../support/cleanup.js';

const SEND_IF = 'pcs0';
const RECV_IF = 'pcr0';
const SRC4 = '10.79.0.1';
const DST4 = '10.79.0.2';
const MARK = 7;
const MARK_CLASS = 41;
const CGROUP_CLASS = 42;
const MARK_RATE = 8_000_000;
const CGROUP_RATE = 30_000_000;
/** SO_MAX_PACING_RATE sock_ops sets for one socket of a class (MSS 1448, 66 bytes of headers), as ss prints it in bits/s. */
const capFor = (rateBps: number) => Math.floor((Math.floor(rateBps / 8) * 1448) / (1448 + 66)) * 8;

const roomy = (): ClassConfig => ({ rate_bps: 10_000_000_000, burst_ns: 0, horizon_ns: 1_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 });
const ZERO: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };

describe('one classification: tc and sock_ops pick the same class for a socket (mark before cgroup)', function () {
  this.timeout(60_000);
  const nets = new TestNetns();
  const peers = new TcpPeers();
  let cg: PrivateCgroup2 | undefined;
  let pinRoot: string | undefined;
  let tcpPinRoot: string | undefined;
  let stateDir: string | undefined;
  let options: InstallOptions | undefined;
  let egress: EgressObject | undefined;
  let dp: Datapath | undefined;
  let tcp: TcpTuningObject | undefined;
  let linkPin = '';
  let sender = '';
  let receiver = '';
  let client = '';
  let server = '';

  before(async () => {
    cg = await PrivateCgroup2.create();
    client = cg.child('client');
    server = cg.child('server');
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: SEND_IF, addr: `${SRC4}/24` }, b: { ns: receiver, name: RECV_IF, addr: `${DST4}/24` } });
    pinRoot = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-state-'));
    options = { iface: SEND_IF, netns: netnsPath(sender), pinRoot, stateDir };
    const installed = await installInterface(options);
    egress = installed.egress;
    dp = installed.datapath;
    tcpPinRoot = makePinDir();
    linkPin = join(tcpPinRoot, 'sockops_link');
    tcp = TcpTuningObject.load({ pinRoot: tcpPinRoot });
    assert.equal(tcp.attach(cg.base, linkPin), 'attached');
  });

  after(async () => {
    const { step, done } = cleanupSteps();
    await step(() => peers.killAll());
    await step(() => tcp?.detach(linkPin));
    await step(() => tcp?.close());
    await step(() => removePinDir(tcpPinRoot));
    await step(() => egress?.close());
    await step(() => options && uninstallInterface(options));
    await step(() => removePinDir(pinRoot));
    await step(() => stateDir && rmSync(stateDir, { recursive: true, force: true }));
    const mine = nets.created;
    await step(() => nets.cleanup());
    await step(async () => assert.deepEqual((await listNetns()).filter((n) => mine.includes(n)), []));
    await step(() => cg?.cleanup());
    done('sockops-classify cleanup');
  });

  const classStats = (id: number) => dp!.stats().classes.get(id) ?? ZERO;
  const capOf = async (port: number): Promise<number | undefined> => {
    const r = await runIn(sender, 'ss', ['-tinH', 'state', 'established', `sport = :${port}`]);
    const m = /pacing_rate (\d+)bps(?:\/(\d+)bps)?/.exec(r.stdout);
    assert.ok(m, `no pacing_rate for port ${port} in: ${r.stdout}`);
    return m[2] === undefined ? undefined : Number(m[2]);
  };

  it('a socket with SO_MARK 7 in a selected cgroup: tc counts its packets in the mark class, sock_ops caps and counts it in the same class', async () => {
    const cgroup = cgroupId(client);
    dp!.apply({
      classes: new Map([
        [MARK_CLASS, roomy()],
        [CGROUP_CLASS, roomy()],
      ]),
      marks: new Map([[MARK, MARK_CLASS]]),
      cgroups: new Map([[cgroup, CGROUP_CLASS]]),
      dst4: new Map(),
      dst6: new Map(),
      settings: { default_class: 0, flags: dp!.read().settings.flags },
    });
    // The same selectors for sock_ops, written as the agent writes them (TcpDatapath).
    new TcpDatapath(tcp!).apply({
      tuning: new Map(),
      pacing: new Map([
        [MARK_CLASS, { rate_bps: MARK_RATE }],
        [CGROUP_CLASS, { rate_bps: CGROUP_RATE }],
      ]),
      marks: new Map([[MARK, MARK_CLASS]]),
      cgroups: new Map([[cgroup, CGROUP_CLASS]]),
      dst4: new Map(),
      dst6: new Map(),
    });

    const before = { mark: classStats(MARK_CLASS), cgroup: classStats(CGROUP_CLASS) };
    const port = (await peers.server(receiver, server, DST4)).port;
    const peer = await peers.client(sender, client, DST4, port, { rounds: 20, mark: MARK });
    await sleep(100);
    const grew = { mark: classStats(MARK_CLASS).packets - before.mark.packets, cgroup: classStats(CGROUP_CLASS).packets - before.cgroup.packets };
    assert.ok(grew.mark >= 20, `tc: the socket's packets in the mark class (${JSON.stringify(grew)})`);
    assert.equal(grew.cgroup, 0, 'tc: none in the cgroup class');

    await until('sock_ops capped the socket', async () => ((await capOf(peer.port)) !== undefined ? true : undefined), 5_000, 50);
    assert.equal(await capOf(peer.port), capFor(MARK_RATE), `sock_ops: capped at the mark class's rate (${capFor(MARK_RATE)}), not the cgroup class's (${capFor(CGROUP_RATE)})`);
    assert.deepEqual([...tcp!.stats.entries().keys()], [MARK_CLASS], 'sock_ops: counted in the mark class only');
  });
});
