/**
 * pacer_sockops on the real kernel, with real TCP connections between two network namespaces
 * this test creates, from processes placed in cgroups of a private cgroup2 mount.
 *
 * The RTO is read with `ss -tin` (ms). On an idle veth, RTO = srtt + max(rttvar, RTOmin) ≈ RTOmin
 * plus a jiffy or two (HZ=250: 20 ms shows as 24 ms); an untuned socket shows 200 ms or more.
 * The program is attached at the test's own cgroup (`cg.base`), so it sees only the test's
 * sockets: both the clients and the servers run in child cgroups of it.
 */
import assert from 'node:assert/strict';
import { existsSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../shaper-bpf/src/exec.js';
import { cgroupId, describeTcpError, pinnedLinkInfo, TcpTuningObject, TCP_BPF_DELACK_MAX, TCP_BPF_RTO_MIN } from '../../shaper-bpf/src/sockops.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { PrivateCgroup2 } from '../support/cgroup2.js';
import { listNetns, TestNetns } from '../support/netns.js';
import { rtoMs, TcpPeers } from '../support/tcp-peer.js';
import { cleanupSteps } from '../support/cleanup.js';

const EINVAL = -22;
// Client and server ends. A second address on each side gives an unclassified control peer.
const SRV4 = '10.213.77.1';
const SRV4_OTHER = '10.213.77.3';
const CLI4 = '10.213.77.2';
const CLI4_OTHER = '10.213.77.4';
const SRV6 = 'fd00:213:77::1';

const UNTUNED_MS = 200; // TCP_RTO_MIN
const TUNED_CEILING_MS = 100; // far below the default, far above RTOmin + a few jiffies + srtt

async function bpftool(...args: string[]): Promise<string> {
  const r = await run('bpftool', args);
  if (r.code !== 0) throw new Error(`bpftool ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe('sock_ops TCP tuning on the real kernel', function () {
  this.timeout(60_000);
  const nets = new TestNetns();
  const peers = new TcpPeers();
  let cg: PrivateCgroup2 | undefined;
  let pinRoot: string | undefined;
  let tcp: TcpTuningObject | undefined;
  let linkPin: string;
  let progId: number;
  let cli: string; // client namespace
  let srv: string; // server namespace
  let tuned: string;
  let plain: string;
  let server: string;
  const t = (): TcpTuningObject => tcp!;

  before(async () => {
    cg = await PrivateCgroup2.create();
    tuned = cg.child('tuned');
    plain = cg.child('plain');
    server = cg.child('server');
    cli = await nets.createTestNetns();
    srv = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: cli, name: 'vc', addr: `${CLI4}/24` }, b: { ns: srv, name: 'vs', addr: `${SRV4}/24` } });
    await nets.vethPair({ a: { ns: cli, name: 'vc6', addr: 'fd00:213:77::2/64' }, b: { ns: srv, name: 'vs6', addr: `${SRV6}/64` } });
    await run('nsenter', [`--net=/run/netns/${cli}`, 'ip', 'addr', 'add', `${CLI4_OTHER}/24`, 'dev', 'vc']);
    await run('nsenter', [`--net=/run/netns/${srv}`, 'ip', 'addr', 'add', `${SRV4_OTHER}/24`, 'dev', 'vs']);
    pinRoot = makePinDir();
    linkPin = join(pinRoot, 'sockops-link');
    tcp = TcpTuningObject.load({ pinRoot });
    progId = tcp.program.id;
    assert.equal(tcp.attach(cg.base, linkPin), 'attached');
  });

  afterEach(async () => {
    await peers.killAll();
    if (!tcp) return;
    for (const m of [tcp.cgroups, tcp.dst4, tcp.dst6, tcp.tuning, tcp.stats]) m.deleteMany([...m.entries().keys()] as never[]);
  });

  // Everything, in dependency order, even after failures: processes out of the cgroups and
  // namespaces, then the link, the pins, the namespaces, the cgroups and the mount.
  after(async () => {
    const { step, done } = cleanupSteps();
    await step(() => peers.killAll());
    await step(() => existsSync(linkPin) && t().detach(linkPin));
    await step(async () => {
      if (cg && progId !== undefined) assert.doesNotMatch(await bpftool('cgroup', 'tree', cg.mountPoint), new RegExp(`^\\s*${progId}\\s`, 'm'));
    });
    await step(() => tcp?.close());
    await step(() => removePinDir(pinRoot));
    const mine = nets.created;
    await step(() => nets.cleanup());
    await step(async () => assert.deepEqual((await listNetns()).filter((n) => mine.includes(n)), []));
    await step(() => cg?.cleanup());
    done('sockops cleanup');
  });

  const startServer = async (cgroup = server, host = '::') => (await peers.server(srv, cgroup, host)).port;
  const clientRto = async (cgroup: string, host: string, port: number) => rtoMs(cli, `sport = :${(await peers.client(cli, cgroup, host, port)).port}`);

  it('cgroupId is the id the program reads: a tuned cgroup gets RTOmin 20 ms, a plain one keeps 200 ms', async () => {
    t().tuning.set(1, { rto_min_us: 20_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(tuned), 1);
    const port = await startServer();
    const rtoTuned = await clientRto(tuned, SRV4, port);
    const rtoPlain = await clientRto(plain, SRV4, port);
    assert.ok(rtoTuned >= 20 && rtoTuned < TUNED_CEILING_MS, `tuned rto ${rtoTuned} ms`);
    assert.ok(rtoPlain >= UNTUNED_MS, `plain rto ${rtoPlain} ms`);
    // One socket tuned, nothing else classified (the server's listener and its accepted sockets are not).
    assert.deepEqual([...t().stats.entries()], [[1, { applied: 1, failed: 0, last_error: 0, last_option: 0 }]]);
  });

  it('cgroupId is the inode of a cgroup2 directory and refuses anything else', () => {
    assert.notEqual(cgroupId(tuned), cgroupId(plain));
    assert.equal(typeof cgroupId(cg!.base), 'bigint');
    assert.throws(() => cgroupId(tmpdir()), /is not on a cgroup v2 file system/);
  });

  it('an RTOmin below 2 jiffies is refused with EINVAL: counted, explained, and the socket keeps 200 ms', async () => {
    // 4 ms is 1 jiffy at HZ=250.
    t().tuning.set(2, { rto_min_us: 4_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(tuned), 2);
    const rto = await clientRto(tuned, SRV4, await startServer());
    assert.ok(rto >= UNTUNED_MS, `rto ${rto} ms`);
    assert.deepEqual(t().stats.get(2), { applied: 0, failed: 1, last_error: EINVAL, last_option: TCP_BPF_RTO_MIN });
    assert.equal(
      describeTcpError(EINVAL, TCP_BPF_RTO_MIN),
      'the kernel refused TCP_BPF_RTO_MIN: Invalid argument (EINVAL): below 2 jiffies (8 ms at HZ=250; microseconds are rounded up to whole jiffies) or above 200 ms',
    );
  });

  it('applies TCP_BPF_DELACK_MAX (seen in the stats; ss does not show it) and reports a refused one as option 1003', async () => {
    t().tuning.set(3, { rto_min_us: 0, delack_max_us: 40_000 });
    t().tuning.set(4, { rto_min_us: 0, delack_max_us: 1_000 }); // 1 jiffy
    t().cgroups.set(cgroupId(tuned), 3);
    t().cgroups.set(cgroupId(plain), 4);
    const port = await startServer();
    // Delayed-ACK max alone leaves the RTO alone.
    assert.ok((await clientRto(tuned, SRV4, port)) >= UNTUNED_MS);
    await clientRto(plain, SRV4, port);
    assert.deepEqual(t().stats.get(3), { applied: 1, failed: 0, last_error: 0, last_option: 0 });
    assert.deepEqual(t().stats.get(4), { applied: 0, failed: 1, last_error: EINVAL, last_option: TCP_BPF_DELACK_MAX });
    assert.match(describeTcpError(EINVAL, TCP_BPF_DELACK_MAX), /^the kernel refused TCP_BPF_DELACK_MAX: Invalid argument \(EINVAL\)/);
    assert.equal(describeTcpError(-1, 1004), 'the kernel refused TCP_BPF_RTO_MIN: Operation not permitted (EPERM)');
  });

  it('classifies by destination prefix (IPv4 and IPv6) when the cgroup has none, and the cgroup first', async () => {
    t().tuning.set(1, { rto_min_us: 20_000, delack_max_us: 0 });
    t().tuning.set(2, { rto_min_us: 40_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(tuned), 1);
    t().dst4.set(`${SRV4}/32`, 2);
    const port = await startServer();
    const toPrefix = await clientRto(plain, SRV4, port);
    const toOther = await clientRto(plain, SRV4_OTHER, port);
    const v6Before = await clientRto(plain, SRV6, port);
    t().dst6.set(`${SRV6}/128`, 2); // not /64: that holds the client too, and would tune the accepted side
    const v6After = await clientRto(plain, SRV6, port);
    const cgroupFirst = await clientRto(tuned, SRV4, port);
    assert.ok(toPrefix >= 40 && toPrefix < TUNED_CEILING_MS, `to ${SRV4}: ${toPrefix} ms`);
    assert.ok(toOther >= UNTUNED_MS, `to ${SRV4_OTHER}: ${toOther} ms`);
    assert.ok(v6Before >= UNTUNED_MS, `IPv6 before its prefix: ${v6Before} ms`);
    assert.ok(v6After >= 40 && v6After < TUNED_CEILING_MS, `IPv6 after: ${v6After} ms`);
    assert.ok(cgroupFirst >= 20 && cgroupFirst < 40, `cgroup class over prefix class: ${cgroupFirst} ms`);
    assert.equal(t().stats.get(2)?.applied, 2);
    assert.equal(t().stats.get(1)?.applied, 1);
  });

  it('tunes accepted sockets by their peer prefix, also IPv4 peers of a dual-stack (::) listener', async () => {
    t().tuning.set(2, { rto_min_us: 40_000, delack_max_us: 0 });
    t().dst4.set(`${CLI4}/32`, 2);
    const port = await startServer(server, '::');
    const fromPrefix = await peers.client(cli, plain, SRV4, port, { localAddress: CLI4 });
    const fromOther = await peers.client(cli, plain, SRV4, port, { localAddress: CLI4_OTHER });
    const tunedRto = await rtoMs(srv, `dport = :${fromPrefix.port}`);
    const otherRto = await rtoMs(srv, `dport = :${fromOther.port}`);
    assert.ok(tunedRto >= 40 && tunedRto < TUNED_CEILING_MS, `accepted from ${CLI4}: ${tunedRto} ms`);
    assert.ok(otherRto >= UNTUNED_MS, `accepted from ${CLI4_OTHER}: ${otherRto} ms`);
    // Only the accepted socket: the clients' own sockets have the server as their peer.
    assert.deepEqual(t().stats.get(2), { applied: 1, failed: 0, last_error: 0, last_option: 0 });
    // The kernel limit behind listener tuning: an accepted socket's first RTO comes from its
    // handshake, before PASSIVE_ESTABLISHED applies RTOmin, so after one round trip it is still high.
    // The client stops after that round trip: a client that kept pinging gave the socket more
    // round trips the longer `ss` took to start, and on a busy host the RTO had converged (flaky).
    const early = await peers.client(cli, plain, SRV4, port, { localAddress: CLI4, rounds: 1, stop: true });
    assert.ok((await rtoMs(srv, `dport = :${early.port}`)) >= TUNED_CEILING_MS);
  });

  it('tunes a listener in a tuned cgroup, so its accepted sockets have the low RTO from their first round trip', async () => {
    t().tuning.set(1, { rto_min_us: 20_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(server), 1);
    const port = await startServer(server, '::');
    assert.equal(t().stats.get(1)?.applied, 1, 'the listener');
    const c = await peers.client(cli, plain, SRV4, port, { rounds: 1 });
    const rto = await rtoMs(srv, `dport = :${c.port}`);
    assert.ok(rto >= 20 && rto < TUNED_CEILING_MS, `accepted after one round trip: ${rto} ms`);
    assert.ok((await rtoMs(cli, `sport = :${c.port}`)) >= UNTUNED_MS, 'the client (plain cgroup) is untuned');
    assert.equal(t().stats.get(1)?.applied, 2, 'listener + accepted socket');
  });

  it('the pinned link outlives the object that attached it; loading and attaching again adopts link and maps', async () => {
    t().tuning.set(1, { rto_min_us: 20_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(tuned), 1);
    t().close(); // the agent goes away
    tcp = undefined;
    const port = await startServer();
    const whileGone = await clientRto(tuned, SRV4, port);
    assert.ok(whileGone < TUNED_CEILING_MS, `tuned with no agent: ${whileGone} ms`);
    tcp = TcpTuningObject.load({ pinRoot: pinRoot! });
    assert.equal(t().attach(cg!.base, linkPin), 'adopted');
    const listed = await bpftool('cgroup', 'show', cg!.base);
    assert.equal(listed.match(/\bpacer_sockops\b/g)?.length, 1, listed);
    assert.deepEqual(t().stats.get(1), { applied: 1, failed: 0, last_error: 0, last_option: 0 }, 'the pinned maps were adopted');
    // The pin is on the test's cgroup: attaching it elsewhere is refused, not silently moved.
    assert.throws(() => t().attach(tuned, linkPin), /pins a sock_ops link on cgroup id \d+, not/);
  });

  it('replaces a pin whose link went defunct (its cgroup was removed) instead of adopting it', async () => {
    const gone = cg!.child('gone');
    const pin = join(pinRoot!, 'defunct-link');
    assert.equal(t().attach(gone, pin), 'attached');
    rmdirSync(gone);
    // The kernel releases the cgroup's programs from a workqueue, then reports the link's cgroup as 0.
    for (let i = 0; i < 100 && pinnedLinkInfo(pin).cgroupId !== 0n; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(pinnedLinkInfo(pin).cgroupId, 0n);
    const other = cg!.child('other');
    assert.equal(t().attach(other, pin), 'attached');
    assert.equal(pinnedLinkInfo(pin).cgroupId, cgroupId(other));
    t().detach(pin);
    assert.equal(existsSync(pin), false);
  });

  it('detaching removes the program: bpftool lists nothing and new connections are untuned', async () => {
    t().tuning.set(1, { rto_min_us: 20_000, delack_max_us: 0 });
    t().cgroups.set(cgroupId(tuned), 1);
    const port = await startServer();
    assert.ok((await clientRto(tuned, SRV4, port)) < TUNED_CEILING_MS, 'tuned while attached');
    t().detach(linkPin);
    assert.equal(existsSync(linkPin), false);
    assert.equal((await bpftool('cgroup', 'show', cg!.base)).trim(), '');
    const after = await clientRto(tuned, SRV4, port);
    assert.ok(after >= UNTUNED_MS, `after detach: ${after} ms`);
    assert.equal(t().stats.get(1)?.applied, 1);
    t().detach(linkPin); // nothing pinned any more: a no-op
  });
});
