/**
 * A class's ECN threshold on real ECN-capable TCP: the class goes from its API record through
 * desiredState into the maps of the egress program that installInterface attached to a veth between
 * two namespaces this test makes (net.ipv4.tcp_ecn=1 in both: ECN is negotiated per namespace).
 *
 * This kernel has no fq, so a stamped packet leaves at once; the program still computes each
 * packet's departure from the class's schedule and marks CE when it is more than the threshold
 * ahead of now (pacer_tc.bpf.c, the end of pacer_egress). The class gets the horizon it has with fq
 * (10 s), and the transfer is smaller than the horizon at the class's rate, so the schedule never
 * runs past it: no packet is dropped, whatever the timing, and every reduction of the sender's
 * window is its answer to CE. The VM tier repeats this with fq holding the packets.
 *
 * What each end shows (the sender runs Reno, see before()):
 * - the receiver counts CE packets in IpExt InCEPkts (net/ipv4/ip_input.c, ip_rcv_core: one per
 *   segment of a GRO packet) and echoes ECE;
 * - the sender counts the segments that ACKs with ECE acknowledged in TcpExt TCPDeliveredCE
 *   (net/ipv4/tcp_input.c, tcp_newly_delivered) and, on ECE, enters CWR (tcp_try_to_open ->
 *   tcp_enter_cwr -> tcp_init_cwnd_reduction), which sets ssthresh from the congestion control's
 *   ssthresh(): `ss -ti` prints ssthresh once it is below infinity. Without a loss (no
 *   retransmission) nothing else lowers it; tcp_no_metrics_save=1 keeps one connection's ssthresh
 *   out of the next one's start (net/ipv4/tcp_metrics.c, tcp_init_metrics).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desiredState } from '../../controller/desired/desired-state.js';
import { netnsPath, runIn } from '../../shaper-bpf/src/exec.js';
import { installInterface, type InstalledInterface, type InstallOptions } from '../../shaper-bpf/src/interface.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import { record } from '../controller/fixtures.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { cleanupSteps } from '../support/cleanup.js';
import { execIn, useTestNetns } from '../support/netns.js';
import { counterGrowth, netCounters, type NetCounters } from '../support/nstat.js';
import { TcpBulk } from '../support/tcp-bulk.js';

const SEND_IF = 'pecs0';
const RECV_IF = 'pecr0';
const MARKED = '10.79.0.2'; // class 1: ecn.threshold 5 ms
const PLAIN = '10.79.0.3'; // class 2: the same without ECN
const POLICED = '10.79.0.4'; // class 3, policing: ecn.threshold 5 ms, below the policer's depth
const TOO_DEEP = '10.79.0.5'; // class 4, policing: ecn.threshold 100 ms, past the depth
const RATE = 20_000_000; // 20 Mbit/s
const THRESHOLD_NS = 5_000_000; // 12.5 KB at the rate
const HORIZON_NS = 10_000_000_000;
/** 3 MiB of payload (about 3.2 MB on the wire) is 1.3 s at the rate: far below the 10 s horizon, so nothing is dropped. */
const BYTES = 3 * 1024 * 1024;

interface Transfer {
  classStats: Pick<ClassStats, 'packets' | 'ce_marks' | 'horizon_drops'>;
  sender: NetCounters;
  receiver: NetCounters;
  /** The sending socket's `ss -tin` line, read after every byte arrived. */
  ss: string;
}

describe('ECN threshold on real TCP between two namespaces (CE marked by the tc program, seen by the receiver, answered by the sender)', function () {
  this.timeout(180_000);
  let sender: string;
  let receiver: string;
  let pinRoot: string | undefined;
  let stateDir: string | undefined;
  let installed: InstalledInterface | undefined;
  const bulk = new TcpBulk();

  // Registered before useTestNetns, so it runs first: processes out of the namespaces before they go.
  after(async () => {
    const { step, done } = cleanupSteps();
    await step(() => bulk.killAll());
    await step(() => installed?.egress.close());
    await step(() => removePinDir(pinRoot));
    await step(() => stateDir && rmSync(stateDir, { recursive: true, force: true }));
    done('ecn-traffic cleanup');
  });
  const nets = useTestNetns();

  before(async () => {
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: SEND_IF, addr: '10.79.0.1/24' }, b: { ns: receiver, name: RECV_IF, addr: `${MARKED}/24` } });
    for (const a of [PLAIN, POLICED, TOO_DEEP]) await execIn(receiver, 'ip', ['addr', 'add', `${a}/32`, 'dev', RECV_IF]);
    // 1: request ECN on outgoing connections and accept it on incoming ones (the default, 2, only accepts).
    for (const ns of [sender, receiver]) await execIn(ns, 'sysctl', ['-qw', 'net.ipv4.tcp_ecn=1']);
    await execIn(sender, 'sysctl', ['-qw', 'net.ipv4.tcp_no_metrics_save=1']);
    // The host's default may be BBR, whose model ignores ECN; Reno answers CE as RFC 3168 says
    // (half the window), and is the one algorithm every namespace may choose (TCP_CONG_NON_RESTRICTED).
    await execIn(sender, 'sysctl', ['-qw', 'net.ipv4.tcp_congestion_control=reno']);

    pinRoot = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-ecn-state-'));
    const options: InstallOptions = { iface: SEND_IF, netns: netnsPath(sender), pinRoot, stateDir };
    installed = await installInterface(options);
    assert.equal(installed.mode, 'policing', 'this kernel has no fq');
    // The classes as the API holds them, through the agent's own desiredState (shaping: the horizon as given).
    const classes = [
      record('marked', 1, { rate: RATE, horizon: HORIZON_NS, ecn: { threshold: THRESHOLD_NS }, match: { marks: [], cgroups: [], dst: [`${MARKED}/32`] } }),
      record('plain', 2, { rate: RATE, horizon: HORIZON_NS, match: { marks: [], cgroups: [], dst: [`${PLAIN}/32`] } }),
    ];
    const desired = desiredState(classes, {}, { fq: true, cgroupIds: () => undefined });
    assert.deepEqual(desired.classErrors, []);
    installed.datapath.apply(desired.shaper);
    assert.equal(installed.datapath.read().classes.get(1)?.ecn_ns, THRESHOLD_NS);
  });

  const statsOf = (id: number): ClassStats => {
    const s = installed!.datapath.stats().classes.get(id);
    assert.ok(s, `class ${id} has stats`);
    return s;
  };

  /** `bytes` of TCP from the sender to `to`; the sending socket stays open for ss. */
  async function transfer(to: string, classId: number, bytes = BYTES): Promise<Transfer> {
    const before = { stats: statsOf(classId), sender: await netCounters(sender), receiver: await netCounters(receiver) };
    const port = await bulk.sink(receiver, to, bytes);
    const localPort = await bulk.send(sender, to, port, bytes);
    const after = { stats: statsOf(classId), sender: await netCounters(sender), receiver: await netCounters(receiver) };
    const ss = await runIn(sender, 'ss', ['-tinH', 'state', 'established', `sport = :${localPort}`]);
    assert.equal(ss.code, 0, ss.stderr);
    await bulk.killAll();
    return {
      classStats: {
        packets: after.stats.packets - before.stats.packets,
        ce_marks: after.stats.ce_marks - before.stats.ce_marks,
        horizon_drops: after.stats.horizon_drops - before.stats.horizon_drops,
      },
      sender: counterGrowth(before.sender, after.sender),
      receiver: counterGrowth(before.receiver, after.receiver),
      ss: ss.stdout.replace(/\s+/g, ' ').trim(),
    };
  }

  it('without a threshold: ECN is negotiated but nothing is marked, and no window is cut without a loss', async () => {
    const t = await transfer(PLAIN, 2);
    assert.ok(t.classStats.packets > 0, 'the transfer went through class 2');
    assert.equal(t.classStats.horizon_drops, 0);
    assert.equal(t.classStats.ce_marks, 0);
    // ECN negotiated: the sender's data arrive as ECT(0) (ss's "ecn" flag is not printed on this host).
    assert.ok(t.receiver.IpExtInECT0Pkts! > 0, `ECT(0) data at the receiver: ${t.receiver.IpExtInECT0Pkts}`);
    assert.equal(t.receiver.IpExtInCEPkts, 0);
    assert.equal(t.sender.TcpExtTCPDeliveredCE, 0);
    // Only a loss could have cut the window here (a busy host may drop at the veth's backlog).
    if (!/\bretrans:/.test(t.ss)) assert.doesNotMatch(t.ss, /\bssthresh:/, `no loss and no CE, yet a cut window: ${t.ss}`);
  });

  it('with ecn.threshold 5ms: packets scheduled more than 5 ms ahead leave with CE, the receiver sees CE, the sender cuts its window', async () => {
    const t = await transfer(MARKED, 1);
    assert.ok(t.classStats.packets > 0, 'the transfer went through class 1');
    assert.equal(t.classStats.horizon_drops, 0, 'the horizon is never reached: every cut is an answer to CE');
    assert.ok(t.classStats.ce_marks > 0, `the program marked CE: ${JSON.stringify(t.classStats)}`);
    assert.ok(t.receiver.IpExtInECT0Pkts! > 0, `ECT(0) data at the receiver: ${t.receiver.IpExtInECT0Pkts}`);
    assert.ok(t.receiver.IpExtInCEPkts! > 0, `the receiver saw CE: InCEPkts ${t.receiver.IpExtInCEPkts} (the program marked ${t.classStats.ce_marks} packets)`);
    assert.ok(t.sender.TcpExtTCPDeliveredCE! > 0, `the sender got ECE for delivered segments: ${t.sender.TcpExtTCPDeliveredCE}`);
    assert.match(t.ss, /\bdelivered_ce:\d+/, `this socket counted CE-echoed deliveries: ${t.ss}`);
    assert.match(t.ss, /\bssthresh:\d+/, `the sender cut its window (CWR sets ssthresh): ${t.ss}`);
    // Marks keep coming (the sender is always faster than 20 Mbit/s here), so Reno halves every
    // round trip: the window ends below the initial 10 segments, where only congestion takes it.
    const cwnd = Number(/\bcwnd:(\d+)/.exec(t.ss)?.[1]);
    assert.ok(cwnd < 10, `cwnd ${cwnd} is below the initial window: ${t.ss}`);
  });

  describe('under policing (the agent\'s state for a host without fq): the wait is how far the class runs ahead of its rate', () => {
    // 20 Mbit/s and burst 0: the policer's depth is two 64 KB GSO packets at the rate, 54.504 ms.
    const policed = [
      record('policed', 3, { rate: RATE, horizon: HORIZON_NS, ecn: { threshold: THRESHOLD_NS }, match: { marks: [], cgroups: [], dst: [`${POLICED}/32`] } }),
      record('too-deep', 4, { rate: RATE, horizon: HORIZON_NS, ecn: { threshold: 100_000_000 }, match: { marks: [], cgroups: [], dst: [`${TOO_DEEP}/32`] } }),
    ];
    /** 1 MiB: well past the depth, so the policer drops too (and TCP recovers from it). */
    const POLICED_BYTES = 1024 * 1024;

    before(() => {
      const desired = desiredState(policed, {}, { fq: false, cgroupIds: () => undefined });
      assert.deepEqual(desired.classErrors.map((e) => e.class), ['too-deep']);
      assert.match(desired.classErrors[0]!.error, /ecn\.threshold 100ms never marks on this host: without fq the class is policed with a depth of 54504us/);
      installed!.datapath.apply(desired.shaper);
      assert.equal(installed!.datapath.read().classes.get(3)?.horizon_ns, 54_504_000);
    });

    it('a threshold below the depth marks CE before the policer drops: the receiver sees CE, the sender gets ECE', async () => {
      const t = await transfer(POLICED, 3, POLICED_BYTES);
      assert.ok(t.classStats.ce_marks > 0, `marked: ${JSON.stringify(t.classStats)}`);
      assert.ok(t.receiver.IpExtInCEPkts! > 0, `the receiver saw CE: ${t.receiver.IpExtInCEPkts}`);
      assert.ok(t.sender.TcpExtTCPDeliveredCE! > 0, `the sender got ECE: ${t.sender.TcpExtTCPDeliveredCE}`);
    });

    it('a threshold past the depth never marks (the agent said so above): the packet is dropped first', async () => {
      const t = await transfer(TOO_DEEP, 4, POLICED_BYTES);
      assert.ok(t.classStats.packets > 0, 'the transfer went through class 4');
      assert.equal(t.classStats.ce_marks, 0);
      assert.equal(t.receiver.IpExtInCEPkts, 0);
    });
  });
});
