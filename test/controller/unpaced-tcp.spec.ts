/** The rule that reports classes policed without a socket cap (controller/datapath/unpaced-tcp.ts), and the cgroup2 mount list it relies on. */
import assert from 'node:assert/strict';
import { UnpacedTcpWatch, unpacedTcpError } from '../../controller/datapath/unpaced-tcp.js';
import { cgroup2Mounts } from '../../controller/datapath/cgroup-root.js';
import { busyPacedSockets } from '../../shaper-bpf/src/sockops.js';

const iface = (policing: boolean, drops: Array<[number, number]>) => ({ iface: 'eth0', policing, drops: new Map(drops) });

describe('UnpacedTcpWatch: classes policed without a socket cap', () => {
  it('reports drops since the previous check in a class with no busy capped socket, on a policing interface only', () => {
    const w = new UnpacedTcpWatch();
    assert.deepEqual(w.check([iface(true, [[1, 5], [2, 5], [3, 5]])], new Map([[2, 1]])), [], 'the first check only records');
    const found = w.check([iface(true, [[1, 9], [2, 9], [3, 5]])], new Map([[2, 1]]));
    assert.deepEqual(found, [{ iface: 'eth0', classId: 1, drops: 4 }], 'class 2 has a paced socket, class 3 dropped nothing');
    assert.deepEqual(w.check([iface(true, [[1, 9]])], new Map()), [], 'no new drops: cleared');
    assert.deepEqual(w.check([iface(false, [[1, 20]])], undefined), [], 'shaping: fq holds packets, drops mean something else');
  });

  it('without sock_ops every policed class with drops is reported; a reset counter (slot reused) starts again', () => {
    const w = new UnpacedTcpWatch();
    w.check([iface(true, [[1, 10]])], undefined);
    assert.deepEqual(w.check([iface(true, [[1, 12]])], undefined), [{ iface: 'eth0', classId: 1, drops: 2 }]);
    assert.deepEqual(w.check([iface(true, [[1, 3]])], undefined), []);
    assert.deepEqual(w.check([iface(true, [[1, 4]])], undefined), [{ iface: 'eth0', classId: 1, drops: 1 }]);
  });

  it('the message names the cause and the fix for each reach of sock_ops', () => {
    const u = { iface: 'eth0', classId: 1, drops: 3 };
    assert.match(unpacedTcpError(u, 'web', { cgroupRoot: '/cg/pacer', whole: false }).error, /sees only sockets created below \/cg\/pacer.*Fix: run the TCP senders below \/cg\/pacer, or start the agent without --cgroup-root/);
    assert.match(unpacedTcpError(u, 'web', { cgroupRoot: undefined, whole: false }).error, /sock_ops is not attached.*Fix: start the agent without --cgroup-root off/);
    assert.match(unpacedTcpError(u, 'web', { cgroupRoot: '/run/pacer/cgroup2', whole: true }).error, /opened before the agent started.*Fix: restart long-lived TCP connections, or install sch_fq/);
    assert.ok(unpacedTcpError(u, 'web', { cgroupRoot: '/sys/fs/cgroup/'.padEnd(200, 'x'), whole: false }).error.length < 1024, 'fits the heartbeat\'s 1024 characters with a 200-character root');
  });

  it('busyPacedSockets: the larger of the window counts while current, the last count for one window more, then 0', () => {
    const at = (w: number) => BigInt(w) << 28n;
    assert.equal(busyPacedSockets({ window: 10, prev: 2, cur: 1 }, at(10)), 2);
    assert.equal(busyPacedSockets({ window: 10, prev: 2, cur: 1 }, at(11)), 1);
    assert.equal(busyPacedSockets({ window: 10, prev: 2, cur: 1 }, at(12)), 0);
    assert.equal(busyPacedSockets(undefined, at(12)), 0);
  });

  it('cgroup2Mounts reads cgroup2 mount points from /proc/self/mounts, not cgroup v1', () => {
    const mounts = 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\nnone /run/pacer/cgroup2 cgroup2 rw 0 0\nnone /tmp/a\\040b cgroup2 rw 0 0\n';
    assert.deepEqual(cgroup2Mounts(mounts), ['/run/pacer/cgroup2', '/tmp/a b']);
  });
});
