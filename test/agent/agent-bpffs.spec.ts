/**
 * The agent on a freshly booted host, where nothing has mounted bpffs: it mounts it, says so, and
 * enforces. Run in a mount namespace of its own with /sys/fs/bpf unmounted, so the host's bpffs
 * is never touched (the private bpffs and its pins go away with the namespace).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBpffsMounted } from '../../shaper-bpf/src/bpffs.js';
import { request, tokenFor } from '../support/api-server.js';
import { useTestNetns } from '../support/netns.js';
import { freePort, killed, startAgentChild, startApiChild, until, type AgentChild, type ApiChild } from '../support/agent-processes.js';

const HOST = 'fresh-boot-node';
/** Unmounts every bpffs at /sys/fs/bpf in a new private mount namespace, then runs the agent there. */
const FRESH_BOOT = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'while findmnt -n /sys/fs/bpf >/dev/null; do umount /sys/fs/bpf || exit 1; done; exec "$@"', 'sh'];

describe('pacer agent on a host without bpffs (real API, real agent, veth in test namespaces)', function () {
  this.timeout(60_000);
  let api: ApiChild | undefined;
  let agent: AgentChild | undefined;
  let dir: string;

  after(async () => {
    await killed(agent?.child);
    await killed(api?.child);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const nets = useTestNetns();

  it('mounts bpffs, logs that it did, and enforces', async () => {
    const hostHadBpffs = isBpffsMounted();
    const sender = await nets.createTestNetns();
    const receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: 'bf0', addr: '10.97.0.1/24' }, b: { ns: receiver, name: 'bf1', addr: '10.97.0.2/24' } });
    dir = mkdtempSync(join(tmpdir(), 'pacer-agent-bpffs-'));
    api = await startApiChild(join(dir, 'pacer.db'), await freePort());
    const token = await tokenFor(api.url, 'agent', HOST);
    const args = ['--api', api.url, '--iface', 'bf0', '--netns', `/run/netns/${sender}`, '--host', HOST, '--state-dir', join(dir, 'state'), '--pin-base', '/sys/fs/bpf/pacer-fresh-boot', '--heartbeat', '1s'];
    agent = startAgentChild(args, token, FRESH_BOOT);
    const withLog = async <T>(p: Promise<T>) => p.catch((err: Error) => Promise.reject(new Error(`${err.message}\n--- agent output ---\n${agent!.tail()}`)));

    const mounted = await withLog(until('the agent to mount bpffs', () => agent!.find('bpffs was not mounted: pacer mounted it (mount -t bpf bpf /sys/fs/bpf) to pin its maps'), 20_000, 20));
    assert.equal(mounted.level, 40, 'a warning');
    await withLog(until('the interface to be ready', () => agent!.find('interface ready'), 20_000, 20));
    const status = await withLog(until('a heartbeat', async () => (await request(api!.url, 'GET', `/v1/hosts/${HOST}`)).body?.status?.mode as string | undefined, 20_000, 50));
    assert.match(status, /^(shaping|policing)$/);
    assert.equal(isBpffsMounted(), hostHadBpffs, 'the host\'s own mounts are untouched');
  });
});
