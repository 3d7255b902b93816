/**
 * pacer_sockops' pacing of policed classes on the real kernel: real TCP connections between two
 * network namespaces this test creates, clients in a cgroup of a private cgroup2 mount, the program
 * attached at the test's own cgroup. The clients ping-pong every 5 ms (test/support/tcp-peer.ts),
 * so each has an RTT sample every few milliseconds but sends almost nothing; iperf3 makes busy ones.
 *
 * What a socket was capped at is read with `ss -tin`: `pacing_rate CUR/MAX`, MAX being
 * SO_MAX_PACING_RATE in bits/s (ss prints no MAX for an uncapped socket).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { netnsPath, runIn } from '../../shaper-bpf/src/exec.js';
import { cgroupId, describeTcpError, SO_MAX_PACING_RATE, TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { PrivateCgroup2 } from '../support/cgroup2.js';
import { until } from '../support/agent-processes.js';
import { TestNetns } from '../support/netns.js';
import { TcpPeers } from '../support/tcp-peer.js';
import { iperf3Server } from '../support/traffic.js';

const SRV4 = '10.213.78.1';
const CLI4 = '10.213.78.2';
/** Ethernet + IPv4 + TCP with timestamps: what the tc program charges per segment beside the payload (MSS 1448 on a 1500 MTU). */
const MSS = 1448;
const HEADERS = 66;
const IPERF_PORT = 5302;

/** The cap sock_ops sets for a class rate shared by n sockets, as ss prints it (bits/s of payload). */
const expectedCap = (rateBps: number, n = 1) => Math.floor((Math.floor(Math.floor(rateBps / 8) / n) * MSS) / (MSS + HEADERS)) * 8;

describe('sock_ops pacing of policed classes on the real kernel (SO_MAX_PACING_RATE)', function () {
  this.timeout(60_000);
  const nets = new TestNetns();
  const peers = new TcpPeers();
  let cg: PrivateCgroup2 | undefined;
  let pinRoot: string | undefined;
  let tcp: TcpTuningObject | undefined;
  let linkPin = '';
  let cli = '';
  let srv = '';
  let paced = '';
  let plain = '';
  let server = '';
  const t = (): TcpTuningObject => tcp!;
  let iperfServer: ChildProcess | undefined;
  let iperfClient: ChildProcess | undefined;

  before(async () => {
    cg = await PrivateCgroup2.create();
    paced = cg.child('paced');
    plain = cg.child('plain');
    server = cg.child('server');
    cli = await nets.createTestNetns();
    srv = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: cli, name: 'pc', addr: `${CLI4}/24` }, b: { ns: srv, name: 'ps', addr: `${SRV4}/24` } });
    pinRoot = makePinDir();
    linkPin = `${pinRoot}/sockops_link`;
    tcp = TcpTuningObject.load({ pinRoot });
    assert.equal(tcp.attach(cg.base, linkPin), 'attached');
  });

  afterEach(async () => {
    for (const c of [iperfClient, iperfServer]) c?.kill('SIGKILL');
    if (iperfClient && iperfClient.exitCode === null && iperfClient.signalCode === null) await new Promise((r) => iperfClient!.once('exit', r));
    iperfClient = iperfServer = undefined;
    await peers.killAll();
    if (!tcp) return;
    for (const m of [tcp.marks, tcp.cgroups, tcp.dst4, tcp.pacing, tcp.tuning, tcp.stats]) m.deleteMany([...m.entries().keys()] as never[]);
  });

  after(async () => {
    const errors: unknown[] = [];
    for (const step of [
      () => peers.killAll(),
      () => tcp?.detach(linkPin),
      () => tcp?.close(),
      () => removePinDir(pinRoot),
      () => nets.cleanup(),
      () => cg?.cleanup(),
    ]) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `sockops-pacing cleanup: ${errors.map(String).join('; ')}`);
  });

  /** The client socket's SO_MAX_PACING_RATE in bits/s as ss shows it, undefined when uncapped. */
  const capOf = async (port: number): Promise<number | undefined> => {
    const r = await runIn(cli, 'ss', ['-tinH', 'state', 'established', `sport = :${port}`]);
    const m = /pacing_rate (\d+)bps(?:\/(\d+)bps)?/.exec(r.stdout);
    assert.ok(m, `no pacing_rate for port ${port} in: ${r.stdout}`);
    return m[2] === undefined ? undefined : Number(m[2]);
  };
  const client = async (cgroup: string, port: number) => (await peers.client(cli, cgroup, SRV4, port, { rounds: 5 })).port;
  const settlesAt = (port: number, want: number | undefined, what: string) =>
    until(what, async () => {
      const cap = await capOf(port);
      return cap === want ? true : undefined;
    }, 5_000, 50).catch(async (err: Error) => {
      throw new Error(`${err.message}: cap is ${await capOf(port)}, want ${want}`);
    });

  it('caps a socket of a paced class at its rate in payload bytes (rate × 1448 / 1514), and leaves other sockets alone', async () => {
    t().pacing.set(1, { rate_bps: 20_000_000 });
    t().cgroups.set(cgroupId(paced), 1);
    const port = (await peers.server(srv, server, '::')).port;
    const pacedPort = await client(paced, port);
    const plainPort = await client(plain, port);
    await settlesAt(pacedPort, expectedCap(20_000_000), 'the paced socket capped');
    assert.equal(expectedCap(20_000_000), 19_128_136);
    assert.equal(await capOf(plainPort), undefined, 'a socket of no class is not capped');
    // Counted once: its cap was set at connect and again once established (the real MSS), one socket.
    assert.deepEqual(t().stats.get(1), { applied: 1, failed: 0, last_error: 0, last_option: 0 }, 'one new socket, counted once');
    assert.match(describeTcpError(-22, SO_MAX_PACING_RATE), /^the kernel refused SO_MAX_PACING_RATE: Invalid argument \(EINVAL\)$/);
  });

  it('two busy sockets of the class share its rate (every socket of it is capped at half); a chatty one takes no share', async () => {
    t().pacing.set(2, { rate_bps: 20_000_000 });
    t().cgroups.set(cgroupId(paced), 2);
    // A socket that sends a byte every 5 ms: RTT samples, but far below 1/64 of the rate per second.
    const chatty = await client(paced, (await peers.server(srv, server, '::')).port);
    await sleep(600);
    assert.equal(await capOf(chatty), expectedCap(20_000_000), 'alone and not busy: the whole rate');
    // Two bulk flows in the same class (iperf3 -P 2, each sending as fast as its cap lets it).
    iperfServer = await iperf3Server(srv, IPERF_PORT);
    const script = `echo $$ > ${paced}/cgroup.procs && exec nsenter --net=${netnsPath(cli)} iperf3 -c ${SRV4} -p ${IPERF_PORT} -t 5 -P 2`;
    iperfClient = spawn('sh', ['-c', script], { stdio: 'ignore' });
    await settlesAt(chatty, expectedCap(20_000_000, 2), 'every socket of the class at half the rate (two busy sockets)');
  });

  it('a new socket of a class both tuned and paced is counted once', async () => {
    t().pacing.set(5, { rate_bps: 20_000_000 });
    t().tuning.set(5, { rto_min_us: 20_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(paced), 5);
    const port = await client(paced, (await peers.server(srv, server, '::')).port);
    await settlesAt(port, expectedCap(20_000_000), 'the socket capped');
    assert.deepEqual(t().stats.get(5), { applied: 1, failed: 0, last_error: 0, last_option: 0 });
  });

  it('a socket follows its selector to a class re-created under a new id (classified again once per window)', async () => {
    t().pacing.set(6, { rate_bps: 20_000_000 });
    t().cgroups.set(cgroupId(paced), 6);
    const port = await client(paced, (await peers.server(srv, server, '::')).port);
    await settlesAt(port, expectedCap(20_000_000), 'capped in class 6');
    // The class is deleted and created again: a new id, the same selector, another rate.
    t().pacing.set(7, { rate_bps: 5_000_000 });
    t().cgroups.set(cgroupId(paced), 7);
    t().pacing.delete(6);
    await settlesAt(port, expectedCap(5_000_000), 'capped in class 7, its new class');
  });

  it('an established socket follows a rate change at its next RTT sample, and is uncapped when its class is no longer paced', async () => {
    t().pacing.set(3, { rate_bps: 100_000_000 });
    t().cgroups.set(cgroupId(paced), 3);
    const port = await client(paced, (await peers.server(srv, server, '::')).port);
    await settlesAt(port, expectedCap(100_000_000), 'capped at 100 Mbit/s');
    t().pacing.set(3, { rate_bps: 5_000_000 });
    await settlesAt(port, expectedCap(5_000_000), 'capped at 5 Mbit/s after the change');
    t().pacing.delete(3);
    await settlesAt(port, undefined, 'uncapped once the class has no pacing entry');
    // The RTT callback stays on: when the class is paced again (an agent restart without fq, policing
    // back), the long-lived socket is capped again instead of running uncapped into the policer.
    t().pacing.set(3, { rate_bps: 5_000_000 });
    await settlesAt(port, expectedCap(5_000_000), 'capped again once the class is paced again');
  });

  it('a class with only a tuning entry is not paced (shaping mode costs no callback)', async () => {
    t().tuning.set(4, { rto_min_us: 20_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(paced), 4);
    const port = await client(paced, (await peers.server(srv, server, '::')).port);
    await sleep(300);
    assert.equal(await capOf(port), undefined);
    t().tuning.delete(4);
  });
});
