/**
 * A socket that paces itself, on real traffic: a veth pair between two namespaces this test makes,
 * pacer's tc program on the sender's end, one class for one destination. A UDP socket with
 * SO_TXTIME stamps its datagrams a second ahead (what TCP's EDT does for a socket paced at a low
 * SO_MAX_PACING_RATE under fq); a bulk UDP flow of the same class follows.
 *
 * This kernel has no fq, so departure times are not waited for and the class is policed by its
 * horizon: what is seen is the schedule. The socket's own time must not enter the class's
 * schedule: before, t_last took max(next, tstamp), so one self-paced datagram pushed the class a
 * second ahead and every bulk datagram after it was dropped beyond the 20 ms horizon. Nor is the
 * socket's own wait pacer's delay (the delayed counter, delay_ns, the histogram).
 */
import assert from 'node:assert/strict';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { netnsPath } from '../../shaper-bpf/src/exec.js';
import type { ClassConfig } from '../../shaper-bpf/src/layout.js';
import { tcAttach, tcDetach, tcHookCreate, tcHookDestroy, type TcFilterRef } from '../../shaper-bpf/src/libbpf/index.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { TestClasses } from '../support/slots.js';
import { execIn, useTestNetns } from '../support/netns.js';
import { rxCounters, sendUdp } from '../support/traffic.js';
import { sendUdpAt } from '../support/txtime.js';

const SEND_IF = 'pct0';
const RECV_IF = 'pcu0';
const DST = '10.78.0.2';
const PORT = 9;
const PAYLOAD = 1000;
const WIRE = PAYLOAD + 8 + 20 + 14;
const AHEAD = 1_000_000_000n; // the self-paced socket's datagrams leave 1 s from now
// 200 Mbit/s, policed at a 20 ms horizon: room for 500 KB queued, far more than the 200 KB sent here.
const CLASS: ClassConfig = { rate_bps: 200_000_000, burst_ns: 0, horizon_ns: 20_000_000, ecn_ns: 0, parent_id: 0, flags: 0 };

describe('tc egress program: a self-paced socket (SO_TXTIME) beside a bulk flow in one class, on real traffic', function () {
  this.timeout(60_000);
  let sender: string;
  let receiver: string;
  let pinRoot: string | undefined;
  let eg: EgressObject | undefined;
  let tc: TestClasses | undefined;
  let filter: TcFilterRef | undefined;
  let hooked = false;

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
    if (filter) attempt(() => tcDetach(filter!));
    if (hooked) attempt(() => tcHookDestroy({ iface: SEND_IF, netns: netnsPath(sender) }));
    attempt(() => eg?.close());
    attempt(() => pinRoot && removePinDir(pinRoot));
    if (errors.length) throw new AggregateError(errors, 'cleanup failed');
  });
  const nets = useTestNetns();

  before(async () => {
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: SEND_IF, addr: '10.78.0.1/24' }, b: { ns: receiver, name: RECV_IF, addr: `${DST}/24` } });
    const mac = async (ns: string, dev: string) => (JSON.parse(await execIn(ns, 'ip', ['-j', 'link', 'show', dev])) as Array<{ address: string }>)[0]!.address;
    await execIn(sender, 'ip', ['neigh', 'replace', DST, 'lladdr', await mac(receiver, RECV_IF), 'dev', SEND_IF, 'nud', 'permanent']);
    pinRoot = makePinDir();
    eg = EgressObject.load({ pinRoot });
    tc = new TestClasses(eg);
    tc.set(1, CLASS);
    tc.dst4([[`${DST}/32`, 1]]);
    const netns = netnsPath(sender);
    hooked = tcHookCreate({ iface: SEND_IF, netns });
    const attached = tcAttach({ iface: SEND_IF, netns, program: eg.program, direction: 'egress' });
    filter = { iface: SEND_IF, netns, direction: 'egress', handle: attached.handle, priority: attached.priority };
  });

  it('the socket\'s own departure time stays out of the class\'s schedule: the bulk flow after it is not dropped, and pacer counts no delay for the socket\'s own wait', async () => {
    const rx = await rxCounters(receiver, RECV_IF);
    const sentAt = process.hrtime.bigint(); // CLOCK_MONOTONIC, like bpf_ktime_get_ns and SO_TXTIME
    sendUdpAt(sender, { to: DST, port: PORT, size: PAYLOAD, count: 5, txtime: (i) => sentAt + AHEAD + BigInt(i) * 1_000_000n });
    sendUdp(sender, { to: DST, port: PORT, size: PAYLOAD, count: 200 });
    const rxAfter = await rxCounters(receiver, RECV_IF);
    const s = tc!.stats(1)!;
    assert.equal(s.horizon_drops, 0, 'no bulk datagram dropped behind the self-paced socket');
    assert.equal(s.packets, 205);
    assert.ok(rxAfter.packets - rx.packets >= 205, `the receiver got ${rxAfter.packets - rx.packets} packets`);
    const tLast = BigInt(tc!.state(1)!.t_last);
    assert.ok(tLast < sentAt + AHEAD, `t_last ${tLast} is pacer's schedule, not the socket's ${sentAt + AHEAD}`);
    // 205 datagrams at 200 Mbit/s hold at most 205 x 41.7 us ≈ 8.5 ms each; the socket's own
    // second (5 x 1 s) is not pacer's delay.
    assert.ok(s.delay_ns < 205 * 10_000_000, `delay_ns ${s.delay_ns}`);
    assert.equal(s.bytes, 205 * WIRE);
  });
});
