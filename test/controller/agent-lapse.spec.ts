/**
 * The agent's side of a lapse (pacer's tc program found not attached at a qdisc check), on the
 * in-memory installer with sinon's fake clock: what the host status, the heartbeats, the log and
 * the mode say while the program cannot be re-attached, after it was, and 10 minutes later. The
 * kernel side (real filters, clsact and veth) is test/agent/filter-lapse.spec.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import sinon from 'sinon';
import { BehaviorSubject } from 'rxjs';
import { Agent } from '../../controller/agent.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { MemoryInstaller } from '../../controller/datapath/installer.js';
import { REPAIRED_VISIBLE_MS } from '../../controller/datapath/attachment-watch.js';
import type { ApiClient } from '../../controller/api-client/api-client.js';
import type { HostStatus } from '../../api/contract/host.js';
import { hostStatusSchema } from '../../api/contract/host.js';
import { record } from './fixtures.js';

describe('Agent: lapses of the tc program (in-memory installer, fake clock)', () => {
  let clock: sinon.SinonFakeTimers;
  let dir: string;
  let agent: Agent;
  let installer: MemoryInstaller;
  let heartbeats: HostStatus[];
  let logs: Array<{ level: number; msg: string; [k: string]: unknown }>;

  beforeEach(async () => {
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    dir = mkdtempSync(join(tmpdir(), 'pacer-agent-lapse-'));
    installer = new MemoryInstaller(false);
    heartbeats = [];
    logs = [];
    const api = {
      budgets$: () => new BehaviorSubject({ revision: 3, classes: [record('web', 7, { match: { marks: [5], cgroups: [], dst: [] } })] }),
      register: async () => {},
      heartbeat: async (s: HostStatus) => void heartbeats.push(s),
      close: () => {},
    } as unknown as ApiClient;
    const config = resolveAgentConfig({ api: 'http://127.0.0.1:1', iface: ['eth0'], host: 'h', stateDir: dir, heartbeatMs: '600000', borrowIntervalMs: '0' }, { PACER_TOKEN: 't' });
    agent = new Agent(config, api, installer, pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) }));
    await agent.start();
    await clock.tickAsync(0);
  });
  afterEach(async () => {
    await agent.stop();
    clock.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  it('missing interface: error (mode, lastError, attachments) with a heartbeat at once and one log line; re-created: repaired for 10 minutes, then attached', async () => {
    assert.deepEqual(agent.status().attachments, [{ iface: 'eth0', state: 'attached', lapses: 0 }]);
    installer.setLapse('eth0', Object.assign(new Error('there is no interface named "eth0"'), { errno: constants.errno.ENODEV }));
    const before = heartbeats.length;
    await clock.tickAsync(1000);
    const failed = agent.status();
    assert.equal(failed.mode, 'error');
    assert.match(failed.lastError!, /^eth0: pacer's tc program is not attached to eth0, so nothing leaving it is shaped or policed: there is no interface named eth0/);
    assert.equal(failed.attachments![0]!.state, 'error');
    assert.equal(failed.attachments![0]!.lapses, 1);
    assert.ok(heartbeats.slice(before).some((h) => h.mode === 'error'), 'heartbeated at once (the interval is 10 minutes)');
    assert.equal(hostStatusSchema.safeParse(failed).success, true, 'the API accepts it');
    await clock.tickAsync(5000);
    assert.equal(logs.filter((l) => l.level === 50 && /not attached/.test(l.msg)).length, 1, 'logged once, not every check');

    installer.setLapse('eth0', { cause: 'interface re-created', detail: 'eth0 was deleted and re-created (ifindex 3 → 9)', programId: 11, ifindex: 9, mode: 'policing', modeDetail: 'policing (fq unavailable)' });
    await clock.tickAsync(1000);
    const repaired = agent.status();
    assert.equal(repaired.mode, 'policing');
    assert.equal(repaired.lastError, null);
    assert.deepEqual({ ...repaired.attachments![0], lastLapseAt: undefined, repairedAt: undefined }, { iface: 'eth0', state: 'repaired', lapses: 1, lastLapse: 'eth0 was deleted and re-created (ifindex 3 → 9)', lastLapseAt: undefined, repairedAt: undefined });
    assert.ok(Date.parse(repaired.attachments![0]!.repairedAt!) > Date.parse(repaired.attachments![0]!.lastLapseAt!));
    assert.equal(heartbeats.at(-1)?.attachments?.[0]?.state, 'repaired');
    assert.equal(logs.filter((l) => l.level === 40 && l.msg === 'pacer\'s tc program was not attached: re-attached').length, 1);

    await clock.tickAsync(REPAIRED_VISIBLE_MS - 2000);
    assert.equal(agent.status().attachments![0]!.state, 'repaired');
    await clock.tickAsync(2000);
    assert.equal(agent.status().attachments![0]!.state, 'attached');
    assert.equal(agent.status().attachments![0]!.lapses, 1, 'the count stays');
  });

  it('a re-created interface that got fq when it was installed again shapes', async () => {
    installer.setLapse('eth0', { cause: 'interface re-created', detail: 'eth0 was deleted and re-created (ifindex 3 → 9)', programId: 11, ifindex: 9, mode: 'shaping', modeDetail: 'shaping (fq)' });
    installer.setRootQdisc('eth0', 'fq');
    await clock.tickAsync(1000);
    assert.equal(agent.status().mode, 'shaping');
    assert.equal(agent.status().modeDetail, 'shaping (fq)');
  });
});
