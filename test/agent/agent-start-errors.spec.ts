/**
 * Errors at the API that retrying cannot fix (issue 11, "friction found on first contact"): an agent
 * whose token is bound to another host used to retry forever. It now stops, exits 1, and says the
 * fix. An interface that is not where the agent looks is found where it is ("pass --netns …"). And
 * an unreachable API is named with the reason, not "fetch failed" (issue 17).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, ApiError } from '../../controller/api-client/api-client.js';
import { refusedTokenFix } from '../../controller/agent.js';
import { tokenFor } from '../support/api-server.js';
import { removePinDir } from '../support/bpffs.js';

const PIN_BASES = ['/sys/fs/bpf/pacer-token-refused', '/sys/fs/bpf/pacer-netns-hint'] as const;
import { useTestNetns } from '../support/netns.js';
import { freePort, killed, startAgentChild, startApiChild, type AgentChild, type ApiChild } from '../support/agent-processes.js';

describe('the agent and an API that refuses it or cannot be reached', function () {
  this.timeout(90_000);
  let api: ApiChild | undefined;
  let agent: AgentChild | undefined;
  let dir: string | undefined;
  // The refused agent exits as any agent does, leaving what it installed (enforcement stays): its
  // pins go here; its tc filter and fq go with the test's namespaces.
  after(async () => {
    await killed(agent?.child);
    await killed(api?.child);
    if (dir) rmSync(dir, { recursive: true, force: true });
    for (const pins of PIN_BASES) removePinDir(pins);
  });
  const nets = useTestNetns();

  it('a token bound to another host: the agent exits 1 saying "pass --host <that host>" instead of retrying forever', async () => {
    const sender = await nets.createTestNetns();
    const receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: 'tr0', addr: '10.93.9.1/24' }, b: { ns: receiver, name: 'tr1', addr: '10.93.9.2/24' } });
    dir = mkdtempSync(join(tmpdir(), 'pacer-token-refused-'));
    api = await startApiChild(join(dir, 'pacer.db'), await freePort());
    const token = await tokenFor(api.url, 'agent', 'nc-host-a');
    agent = startAgentChild(['--api', api.url, '--iface', 'tr0', '--netns', `/run/netns/${sender}`, '--host', 'vm', '--state-dir', join(dir, 'state'), '--pin-base', PIN_BASES[0], '--cgroup-root', 'off'], token);
    const exit = await agent.exited;
    assert.equal(exit.code, 1, agent.tail());
    assert.match(agent.tail(), /the token is bound to host "nc-host-a", and this agent runs as "vm": pass --host nc-host-a/);
    assert.equal(agent.lines.filter((l) => l.msg === 'registration failed; retrying').length, 0, 'no retry');
  });

  it('an interface that exists only in another network namespace: the agent says which --netns to pass', async () => {
    const ns = await nets.createTestNetns();
    const peer = await nets.createTestNetns();
    await nets.vethPair({ a: { ns, name: 'tn0', addr: '10.93.10.1/24' }, b: { ns: peer, name: 'tn1', addr: '10.93.10.2/24' } });
    const lost = startAgentChild(['--api', 'http://127.0.0.1:9', '--iface', 'tn0', '--host', 'vm', '--state-dir', join(dir!, 'state-ns'), '--pin-base', PIN_BASES[1], '--cgroup-root', 'off'], 'any-token');
    const exit = await lost.exited;
    assert.equal(exit.code, 1, lost.tail());
    assert.match(lost.tail(), new RegExp(`there is no interface named "tn0" in the current network namespace; an interface named tn0 exists elsewhere: pass --netns /run/netns/${ns}`));
  });

  it('the fix for each refusal; other errors are not refusals', () => {
    assert.match(refusedTokenFix(new ApiError(401, 'PUT /v1/hosts/x: 401 unauthorized'), 'x')!, /not valid .* `pacer token create --role agent --host x/);
    assert.match(refusedTokenFix(new ApiError(403, 'PUT /v1/hosts/x: 403 role viewer may not write hosts'), 'x')!, /use an agent token for "x"/);
    assert.equal(refusedTokenFix(new ApiError(503, 'unavailable'), 'x'), undefined);
    assert.equal(refusedTokenFix(new Error('ECONNREFUSED'), 'x'), undefined);
  });

  it('an unreachable API is named with the reason (not "fetch failed")', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const client = new ApiClient({ baseUrl: url, token: 't', host: 'h', backoff: { minMs: 10, maxMs: 10 } });
    await assert.rejects(client.register({}), (err: Error) => {
      assert.equal(err.message, `cannot reach the API at ${url} (PUT /v1/hosts/h): ECONNREFUSED`);
      return true;
    });
  });
});
