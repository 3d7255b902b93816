/**
 * Classification by cgroup v2 on real traffic: the one path of the tc egress program that
 * BPF_PROG_TEST_RUN cannot reach, since its packets have no socket (bpf_skb_cgroup_id reads the
 * cgroup of skb->sk, recorded when the socket was created).
 *
 * Two network namespaces joined by a veth pair; pacer installed (installInterface: load, attach,
 * qdisc) on the sender's end inside its namespace; two sibling cgroups in a private cgroup2 mount.
 * Each sending process is moved into its cgroup, then into the sender namespace, and only then
 * creates its socket (as tcp-peer.ts does). The Datapath holds a destination-prefix class that
 * matches all of this traffic, and a cgroup class selecting one of the two cgroups only:
 *
 *   - UDP from the selected cgroup lands in the cgroup class, ahead of the prefix;
 *   - the same UDP from the sibling cgroup lands in the prefix class, none in the cgroup class;
 *   - after a second apply without the cgroup selector (settings.cgroup_selectors back to 0),
 *     the selected cgroup's UDP falls back to the prefix class;
 *   - a TCP connection from the selected cgroup is counted in the cgroup class, from the sibling
 *     in the prefix class.
 *
 * Counts are exact for UDP: permanent neighbours mean no ARP or neighbour discovery on the wire,
 * and nothing else on the sender's end is sent to the receiver's address.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Datapath, ShaperState } from '../../shaper-bpf/src/datapath.js';
import type { EgressObject } from '../../shaper-bpf/src/egress.js';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import { installInterface, uninstallInterface, type InstallOptions, filterOf } from '../../shaper-bpf/src/interface.js';
import type { ClassConfig, ClassStats } from '../../shaper-bpf/src/layout.js';
import { tcQuery } from '../../shaper-bpf/src/libbpf/index.js';
import { cgroupId } from '../../shaper-bpf/src/sockops.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { PrivateCgroup2 } from '../support/cgroup2.js';
import { execIn, listNetns, TestNetns } from '../support/netns.js';
import { TcpPeers } from '../support/tcp-peer.js';
import { cleanupSteps } from '../support/cleanup.js';

const SEND_IF = 'pgs0';
const RECV_IF = 'pgr0';
const SRC4 = '10.78.0.1';
const DST4 = '10.78.0.2';
const UDP_PORT = 9; // nothing listens: the receiver's "port unreachable" leaves on its own, unhooked, egress
const PAYLOAD = 1000;
const WIRE4 = PAYLOAD + 8 + 20 + 14; // UDP, IPv4, Ethernet: tc egress sees the whole frame
const CGROUP_CLASS = 10;
const PREFIX_CLASS = 20;

const roomy = (): ClassConfig => ({ rate_bps: 10_000_000_000, burst_ns: 0, horizon_ns: 1_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 });
const ZERO: ClassStats = { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 };

/**
 * Run by a child process that is already in its cgroup and the sender namespace: prints its
 * cgroup v2 path (/proc/self/cgroup, "0::PATH"), then sends COUNT datagrams of SIZE bytes from one
 * fresh unconnected UDP socket, each after the previous one left, and prints "sent COUNT".
 */
const UDP_SENDER = `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
const [to, port, size, count] = process.argv.slice(1);
const line = readFileSync('/proc/self/cgroup', 'utf8').split('\\n').find((l) => l.startsWith('0::'));
console.log('cgroup ' + line.slice(3));
const sock = dgram.createSocket('udp4');
const payload = Buffer.alloc(Number(size), 0x5a);
let sent = 0;
const next = () => {
  if (sent === Number(count)) { console.log('sent ' + sent); sock.close(); return; }
  sock.send(payload, Number(port), to, (err) => {
    if (err) { console.error(err.message); process.exit(1); }
    sent++;
    next();
  });
};
next();
`;

describe('tc egress program: classification by cgroup v2 on real traffic', function () {
  this.timeout(60_000);
  const nets = new TestNetns();
  const peers = new TcpPeers();
  const children = new Set<ChildProcess>();
  let cg: PrivateCgroup2 | undefined;
  let pinRoot: string | undefined;
  let stateDir: string | undefined;
  let options: InstallOptions | undefined;
  let egress: EgressObject | undefined;
  let dp: Datapath | undefined;
  let sender: string;
  let receiver: string;
  let selected: string; // the cgroup with a selector
  let sibling: string; // its sibling, without one
  let server: string; // the TCP echo server's cgroup (in the receiver namespace)

  const datapath = (): Datapath => {
    if (!dp) throw new Error('pacer is not installed');
    return dp;
  };
  const stateWith = (cgroups: Map<bigint, number>): ShaperState => ({
    classes: new Map([
      [CGROUP_CLASS, roomy()],
      [PREFIX_CLASS, roomy()],
    ]),
    marks: new Map(),
    cgroups,
    dst4: new Map([[`${DST4}/32`, PREFIX_CLASS]]),
    dst6: new Map(),
    // Keep the flags installInterface set (policing, without fq).
    settings: { default_class: 0, flags: datapath().read().settings.flags },
  });
  const snapshot = () => {
    const { classes, unclassified } = datapath().stats();
    return { cgroup: classes.get(CGROUP_CLASS) ?? ZERO, prefix: classes.get(PREFIX_CLASS) ?? ZERO, unclassified };
  };
  /** Packets and bytes each class gained since `before`. */
  const growth = (before: ReturnType<typeof snapshot>) => {
    const now = snapshot();
    const d = (a: ClassStats, b: ClassStats) => ({ packets: a.packets - b.packets, bytes: a.bytes - b.bytes, horizon_drops: a.horizon_drops - b.horizon_drops });
    return { cgroup: d(now.cgroup, before.cgroup), prefix: d(now.prefix, before.prefix) };
  };
  const udp = (count: number) => ({ packets: count, bytes: count * WIRE4, horizon_drops: 0 });
  const none = udp(0);

  /** Moves a shell into `cgroup`, then execs node in the sender namespace, where it sends `count` datagrams to DST4. */
  const sendFrom = (cgroup: string, count: number): Promise<{ cgroupPath: string }> => {
    const script = 'echo $$ > "$1/cgroup.procs" && ns=$2 && shift 2 && exec nsenter --net="$ns" "$@"';
    const child = spawn(
      'sh',
      ['-c', script, 'sh', cgroup, netnsPath(sender), process.execPath, '--input-type=module', '-e', UDP_SENDER, DST4, String(UDP_PORT), String(PAYLOAD), String(count)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`UDP sender in ${cgroup}: not done within 10 s; stdout: ${stdout}; stderr: ${stderr}`));
      }, 10_000);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        children.delete(child);
        const cgroupPath = /^cgroup (.*)$/m.exec(stdout)?.[1];
        if (code !== 0 || cgroupPath === undefined || !new RegExp(`^sent ${count}$`, 'm').test(stdout)) {
          return reject(new Error(`UDP sender in ${cgroup} exited ${code ?? signal}; stdout: ${stdout.trim()}; stderr: ${stderr.trim()}`));
        }
        resolve({ cgroupPath });
      });
    });
  };
  /** The cgroup2 path /proc/PID/cgroup shows for a directory of the private mount. */
  const procPath = (dir: string) => `/${basename(cg!.base)}/${basename(dir)}`;

  before(async () => {
    cg = await PrivateCgroup2.create();
    selected = cg.child('selected');
    sibling = cg.child('sibling');
    server = cg.child('server');
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: SEND_IF, addr: `${SRC4}/24` }, b: { ns: receiver, name: RECV_IF, addr: `${DST4}/24` } });
    // Permanent neighbours both ways: no ARP on the wire, so the counts below are exact.
    const mac = async (ns: string, dev: string) => (JSON.parse(await execIn(ns, 'ip', ['-j', 'link', 'show', dev])) as Array<{ address: string }>)[0]!.address;
    await execIn(sender, 'ip', ['neigh', 'replace', DST4, 'lladdr', await mac(receiver, RECV_IF), 'dev', SEND_IF, 'nud', 'permanent']);
    await execIn(receiver, 'ip', ['neigh', 'replace', SRC4, 'lladdr', await mac(sender, SEND_IF), 'dev', RECV_IF, 'nud', 'permanent']);

    pinRoot = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-state-'));
    options = { iface: SEND_IF, netns: netnsPath(sender), pinRoot, stateDir };
    const installed = await installInterface(options);
    egress = installed.egress;
    dp = installed.datapath;
    assert.equal(tcQuery(filterOf({ iface: SEND_IF, netns: netnsPath(sender) })), installed.programId, 'our program is attached');
  });

  afterEach(() => peers.killAll());

  // Everything, in dependency order, even after failures: processes (out of the cgroups and the
  // namespaces), pacer off the interface and its pins, the state dir, the namespaces, the cgroups.
  after(async () => {
    const { step, done } = cleanupSteps();
    await step(() => peers.killAll());
    await step(() =>
      Promise.all(
        [...children].map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGKILL');
            }),
        ),
      ),
    );
    await step(() => egress?.close());
    await step(() => options && uninstallInterface(options));
    await step(() => removePinDir(pinRoot));
    await step(() => stateDir && rmSync(stateDir, { recursive: true, force: true }));
    const mine = nets.created;
    await step(() => nets.cleanup());
    await step(async () => assert.deepEqual((await listNetns()).filter((n) => mine.includes(n)), []));
    await step(() => cg?.cleanup());
    done('egress-cgroup cleanup');
  });

  it('UDP from the selected cgroup lands in its class ahead of the prefix; from the sibling, in the prefix class', async () => {
    const id = cgroupId(selected);
    assert.notEqual(id, cgroupId(sibling));
    datapath().apply(stateWith(new Map([[id, CGROUP_CLASS]])));
    assert.equal(egress!.settings.get(0)!.cgroup_selectors, 1, 'the Datapath turned the cgroup lookup on');
    assert.deepEqual([...egress!.cgroups.entries().keys()], [id]);

    let before = snapshot();
    const a = await sendFrom(selected, 40);
    assert.equal(a.cgroupPath, procPath(selected), 'the sender ran in the selected cgroup');
    assert.deepEqual(growth(before), { cgroup: udp(40), prefix: none }, 'selected cgroup → cgroup class');

    before = snapshot();
    const b = await sendFrom(sibling, 30);
    assert.equal(b.cgroupPath, procPath(sibling), 'the sender ran in the sibling cgroup');
    assert.deepEqual(growth(before), { cgroup: none, prefix: udp(30) }, 'sibling cgroup → prefix class, nothing in the cgroup class');
  });

  it('with the cgroup selector removed by a second apply, the selected cgroup falls back to the prefix class', async () => {
    datapath().apply(stateWith(new Map([[cgroupId(selected), CGROUP_CLASS]])));
    let before = snapshot();
    await sendFrom(selected, 10);
    assert.deepEqual(growth(before), { cgroup: udp(10), prefix: none }, 'still selected before the second apply');

    datapath().apply(stateWith(new Map()));
    assert.equal(egress!.settings.get(0)!.cgroup_selectors, 0);
    assert.deepEqual(datapath().read().cgroups, new Map());
    before = snapshot();
    await sendFrom(selected, 25);
    assert.deepEqual(growth(before), { cgroup: none, prefix: udp(25) }, 'no selector → prefix class');

    // And back: selecting the sibling instead moves only the sibling's traffic.
    datapath().apply(stateWith(new Map([[cgroupId(sibling), CGROUP_CLASS]])));
    before = snapshot();
    await sendFrom(selected, 5);
    await sendFrom(sibling, 7);
    assert.deepEqual(growth(before), { cgroup: udp(7), prefix: udp(5) });
  });

  it('a TCP connection is counted by its socket\'s cgroup: selected → cgroup class, sibling → prefix class', async () => {
    datapath().apply(stateWith(new Map([[cgroupId(selected), CGROUP_CLASS]])));
    const port = (await peers.server(receiver, server, DST4)).port;
    // Handshake and the first rounds included: every segment the client sends leaves the hooked end.
    let before = snapshot();
    await peers.client(sender, selected, DST4, port, { rounds: 20 });
    await sleep(100);
    let g = growth(before);
    assert.ok(g.cgroup.packets >= 20 && g.cgroup.bytes >= 20 * (1 + 20 + 14), `cgroup class: ${JSON.stringify(g.cgroup)}`);
    assert.deepEqual(g.prefix, none, 'nothing from the selected cgroup in the prefix class');
    await peers.killAll(); // its FIN goes out now; the ACK after it leaves a time-wait socket (no cgroup): not measured

    await sleep(100);
    const port2 = (await peers.server(receiver, server, DST4)).port;
    before = snapshot();
    await peers.client(sender, sibling, DST4, port2, { rounds: 20 });
    await sleep(100);
    g = growth(before);
    assert.ok(g.prefix.packets >= 20, `prefix class: ${JSON.stringify(g.prefix)}`);
    assert.deepEqual(g.cgroup, none, 'nothing from the sibling cgroup in the cgroup class');
  });
});
