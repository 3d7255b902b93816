/**
 * One agent per interface (issue 17): a second agent on an interface that an agent enforces on is
 * refused before it touches anything, with the first one's PID, whatever its state directory, pin
 * base or labels; `pacer agent teardown` is refused the same way; and the lock dies with its owner
 * (SIGKILL leaves nothing stale). The lock itself (controller/datapath/interface-lock.ts) is tested
 * first, in this process and across processes.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InterfaceLockedError, lockInterface, lockName } from '../../controller/datapath/interface-lock.js';
import { tokenFor } from '../support/api-server.js';
import { CLI, killed, startAgentChild, until } from '../support/agent-processes.js';
import { useAgentRig } from '../support/agent-rig.js';

const LOCK_MODULE = new URL('../../controller/datapath/interface-lock.js', import.meta.url).href;

describe('the interface lock (abstract Unix socket per network namespace and interface)', () => {
  it('a second lock of the same interface is refused with the owner\'s PID; another interface is free; release frees it', async () => {
    const first = await lockInterface({ iface: 'lk-test0' });
    try {
      await assert.rejects(lockInterface({ iface: 'lk-test0' }), (err: InterfaceLockedError) => {
        assert.ok(err instanceof InterfaceLockedError);
        assert.equal(err.owner?.pid, process.pid);
        assert.match(err.message, new RegExp(`another pacer agent \\(PID ${process.pid}, since .*\\) already enforces on lk-test0: .*Stop that agent first \\(kill ${process.pid}\\)`));
        return true;
      });
      // The same namespace named by a path is the same lock.
      await assert.rejects(lockInterface({ iface: 'lk-test0', netns: '/proc/self/ns/net' }), InterfaceLockedError);
      assert.equal(lockName('lk-test0', undefined), lockName('lk-test0', `/proc/${process.pid}/ns/net`));
      const other = await lockInterface({ iface: 'lk-test1' });
      await other.release();
    } finally {
      await first.release();
    }
    const again = await lockInterface({ iface: 'lk-test0' });
    await again.release();
  });

  it('across processes: the holder\'s PID is named, and a SIGKILLed holder leaves no stale lock', async function () {
    this.timeout(30_000);
    const script = `const { lockInterface } = await import(${JSON.stringify(LOCK_MODULE)}); await lockInterface({ iface: 'lk-test2' }); console.log('locked'); setInterval(() => {}, 1000);`;
    const holder = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
        holder.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
      });
      await assert.rejects(lockInterface({ iface: 'lk-test2' }), (err: InterfaceLockedError) => err.owner?.pid === holder.pid);
    } finally {
      await killed(holder, 'SIGKILL');
    }
    const mine = await lockInterface({ iface: 'lk-test2' });
    await mine.release();
  });
});

describe('pacer agent: one agent per interface (real API, real agents, veth in test namespaces)', function () {
  this.timeout(120_000);
  const rig = useAgentRig({ iface: 'oa0', peerIface: 'oa1', subnet: '10.95.7', peers: 1, host: 'one-agent-node', labels: { zone: 'oa' } });
  let dir: string | undefined;
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('a second agent on the interface (other state dir, pin base, host and labels) is refused, names the first one\'s PID, and changes nothing', async () => {
    const id = await rig.createClass({ name: 'oa-30', rate: '30mbit', match: { dst: [`${rig.peer(0)}/32`] } });
    await rig.withLog(until('the class in the kernel', () => (rig.kernel.read().classes.get(id)?.rate_bps === 30_000_000 ? true : undefined), 20_000, 50));
    const classesBefore = rig.kernel.read().classes.size;
    dir = mkdtempSync(join(tmpdir(), 'pacer-second-agent-'));
    const token = await tokenFor(rig.api.url, 'agent', 'second-node');
    const second = startAgentChild(['--api', rig.api.url, '--iface', 'oa0', '--netns', `/run/netns/${rig.sender}`, '--host', 'second-node', '--label', 'zone=other', '--state-dir', join(dir, 'state'), '--pin-base', '/sys/fs/bpf/pacer-second-agent', '--cgroup-root', 'off'], token);
    const exit = await second.exited;
    assert.equal(exit.code, 1, `the second agent exits 1:\n${second.tail()}`);
    assert.match(second.tail(), new RegExp(`another pacer agent \\(PID ${rig.agent.child.pid}, since [^)]*\\) already enforces on oa0`));
    assert.ok(rig.agent.running, 'the first agent runs on');
    assert.equal(rig.kernel.read().classes.get(id)?.rate_bps, 30_000_000, 'the class is still enforced as the first agent wrote it');
    assert.equal(rig.kernel.read().classes.size, classesBefore);
    assert.equal(existsSync('/sys/fs/bpf/pacer-second-agent'), false, 'the second agent pinned nothing');
  });

  it('pacer agent teardown is refused while the agent runs, naming it; the pins stay', () => {
    const r = spawnSync(process.execPath, [CLI, 'agent', 'teardown', '--iface', 'oa0', '--netns', `/run/netns/${rig.sender}`, '--state-dir', rig.stateDir], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`another pacer agent \\(PID ${rig.agent.child.pid}, since [^)]*\\) already enforces on oa0`));
    assert.ok(rig.kernel.read().classes.size > 0, 'the agent\'s maps are still there');
  });

  it('a SIGKILLed agent leaves no stale lock: its replacement starts at once', async () => {
    const restarted = await rig.restartAgent();
    assert.ok(restarted.find('interface ready'));
  });
});
