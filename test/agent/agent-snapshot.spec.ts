/**
 * The last-known-good snapshot against what the kernel holds, with a real API, a real agent and
 * the real data plane: an agent SIGKILLed while writing its snapshot leaves the snapshot one state
 * behind the kernel, and a restart (the API unreachable) must not roll the host back to it; a
 * corrupt snapshot is logged and set aside, and the agent runs on.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from '../support/api-server.js';
import { useAgentRig } from '../support/agent-rig.js';
import { killed, until } from '../support/agent-processes.js';

const IFACE = 'sn0';

describe('a restarted agent and its snapshot on disk (real API, real agent, veth in test namespaces)', function () {
  this.timeout(90_000);
  const rig = useAgentRig({ iface: IFACE, peerIface: 'sn1', subnet: '10.96.0', peers: 1, host: 'snapshot-node', labels: { zone: 'sn' }, agentArgs: ['--borrow-interval', '0s'] });
  const snapshotFile = () => join(rig.stateDir, `${IFACE}.last-known-good.json`);
  const snapshotRevision = () => (existsSync(snapshotFile()) ? (JSON.parse(readFileSync(snapshotFile(), 'utf8')) as { revision: number }).revision : 0);
  const rateOf = (id: number) => rig.kernel.read().classes.get(id)?.rate_bps;
  let id: number;

  /** Restarts the agent with the API down; resolves once start() is over (its first registration attempt failed). */
  const restartWithoutApi = async () => {
    const agent = await rig.restartAgent();
    await rig.withLog(until('the agent to try the API', () => agent.find('registration failed; retrying'), 20_000, 20));
    return agent;
  };

  it('a snapshot older than the kernel (agent killed before its rename) does not roll the host back', async () => {
    id = await rig.createClass({ name: 'snap', rate: '10mbit', match: { dst: [`${rig.peer(0)}/32`] } });
    await rig.withLog(until('10 Mbit/s in the kernel and its snapshot', () => (rateOf(id) === 10e6 && snapshotRevision() > 0 ? true : undefined), 15_000, 20));
    const older = readFileSync(snapshotFile(), 'utf8');
    const olderRevision = snapshotRevision();
    const got = await request(rig.api.url, 'GET', '/v1/classes/snap');
    assert.equal((await request(rig.api.url, 'PATCH', '/v1/classes/snap', { body: { rate: '20mbit' }, headers: { 'if-match': got.body.etag } })).status, 200);
    await rig.withLog(until('20 Mbit/s in the kernel and its snapshot', () => (rateOf(id) === 20e6 && snapshotRevision() > olderRevision ? true : undefined), 15_000, 20));

    // The API goes away; the agent is killed while writing its snapshot: the older file stays, with a temporary file beside it.
    await killed(rig.api.child);
    await killed(rig.agent.child);
    writeFileSync(snapshotFile(), older);
    writeFileSync(`${snapshotFile()}.999999.7.tmp`, older.slice(0, 20));

    const agent = await restartWithoutApi();
    assert.equal(rateOf(id), 20e6, 'the kernel keeps the newer rate');
    assert.equal(agent.find('applied'), undefined, 'the agent applied nothing before the API answers');
    assert.deepEqual(readdirSync(rig.stateDir).filter((f) => f.endsWith('.tmp')), [], 'the interrupted write\'s temporary file was removed');
  });

  it('a corrupt snapshot is logged and set aside; the agent runs on and the kernel keeps its state', async () => {
    writeFileSync(snapshotFile(), '{"revision": 4, "state": {"classes": {"$map": [[1, {"rate_');
    const agent = await restartWithoutApi();
    assert.ok(agent.running, 'the agent did not crash');
    const logged = agent.lines.find((l) => l.level >= 50 && /last-known-good snapshot .* cannot be read/.test(l.msg));
    assert.ok(logged, `the unreadable snapshot is logged as an error:\n${agent.tail()}`);
    assert.ok(existsSync(`${snapshotFile()}.unreadable`), 'kept for a look');
    assert.equal(rateOf(id), 20e6);
  });
});
