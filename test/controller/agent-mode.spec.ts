/**
 * The interface mode while the agent runs: the root qdisc is checked every second; fq gone →
 * policing (policing horizons, SETTINGS_POLICING, a warning, a heartbeat at once), fq back →
 * shaping. On the in-memory installer, whose root qdisc the test changes as an operator would,
 * with sinon's fake clock. The kernel side (reading the real root qdisc) is in
 * test/agent/agent-qdisc.spec.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import sinon from 'sinon';
import { BehaviorSubject } from 'rxjs';
import { Agent } from '../../controller/agent.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { MemoryInstaller } from '../../controller/datapath/installer.js';
import { modeAfterCheck, SHAPING_DETAIL } from '../../controller/datapath/fq-watch.js';
import type { ApiClient } from '../../controller/api-client/api-client.js';
import type { HostStatus } from '../../api/contract/host.js';
import { Datapath, SETTINGS_POLICING } from '../../shaper-bpf/src/datapath.js';
import { fqPresence } from '../../shaper-bpf/src/qdisc.js';
import { POLICING_DETAIL } from '../../shaper-bpf/src/interface.js';
import { policingDepthNs } from '../../controller/desired/desired-state.js';
import { record } from './fixtures.js';

describe('fqPresence and modeAfterCheck (pure)', () => {
  const q = (kind: string, parent?: string) => ({ kind, handle: parent ? '0:' : '1:', ...(parent ? { parent } : {}), options: {} });

  it('fq at the root, or mq with fq on every queue, is fq; anything else says what is there', () => {
    assert.deepEqual(fqPresence({ ...q('fq'), children: [] }), { fq: true });
    assert.deepEqual(fqPresence({ ...q('mq'), children: [q('fq', '1:1'), q('fq', '1:2')] }), { fq: true });
    assert.deepEqual(fqPresence({ ...q('mq'), children: [q('fq', '1:1'), q('pfifo', '1:2'), q('pfifo', '1:a')] }), { fq: false, found: 'mq with pfifo on tx queues 2, 10' });
    assert.deepEqual(fqPresence({ ...q('pfifo'), children: [] }), { fq: false, found: 'pfifo' });
    assert.deepEqual(fqPresence(null), { fq: false, found: 'no qdisc' });
  });

  it('shaping → policing names the interface and the qdisc; policing stays with its first reason; fq back → shaping', () => {
    const shaping = { mode: 'shaping' as const, modeDetail: SHAPING_DETAIL };
    const policing = modeAfterCheck('veth0', shaping, { fq: false, found: 'pfifo' });
    assert.deepEqual(policing, { mode: 'policing', modeDetail: 'policing (fq unavailable: the root qdisc of veth0 was replaced by pfifo after pacer installed fq)' });
    assert.equal(modeAfterCheck('veth0', shaping, { fq: true }), undefined);
    assert.equal(modeAfterCheck('veth0', policing!, { fq: false, found: 'prio' }), undefined);
    assert.equal(modeAfterCheck('veth0', { mode: 'policing', modeDetail: POLICING_DETAIL }, { fq: false, found: 'noqueue' }), undefined);
    assert.deepEqual(modeAfterCheck('veth0', policing!, { fq: true }), shaping);
  });
});

describe('Agent: the mode follows the root qdisc while it runs (in-memory installer, fake clock)', () => {
  let clock: sinon.SinonFakeTimers;
  let dir: string;
  let agent: Agent;
  let installer: MemoryInstaller;
  let heartbeats: HostStatus[];
  let logs: Array<{ level: number; msg: string; [k: string]: unknown }>;
  const ID = 7;
  const HORIZON = 2_000_000_000;

  beforeEach(async () => {
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    dir = mkdtempSync(join(tmpdir(), 'pacer-agent-mode-'));
    installer = new MemoryInstaller(true);
    heartbeats = [];
    logs = [];
    const api = {
      budgets$: () => new BehaviorSubject({ revision: 3, classes: [record('web', ID, { horizon: HORIZON, match: { marks: [5], cgroups: [], dst: [] } })] }),
      register: async () => {},
      heartbeat: async (s: HostStatus) => void heartbeats.push(s),
      close: () => {},
    } as unknown as ApiClient;
    // InfluxDB on a port nobody listens on: the sink queues its points, which the test reads.
    const config = resolveAgentConfig({ api: 'http://127.0.0.1:1', iface: ['eth0'], host: 'h', stateDir: dir, heartbeatMs: '600000', borrowIntervalMs: '0', influx: 'http://127.0.0.1:1/pacer' }, { PACER_TOKEN: 't' });
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    agent = new Agent(config, api, installer, log);
    await agent.start();
    await clock.tickAsync(0);
  });
  afterEach(async () => {
    await agent.stop();
    clock.restore();
    rmSync(dir, { recursive: true, force: true });
  });

  const enforced = () => new Datapath(installer.tables.get('eth0')!).read();

  it('fq replaced by pfifo → policing within a second: policing horizons, SETTINGS_POLICING, a warning and a heartbeat at once; fq back → shaping', async () => {
    assert.equal(agent.status().mode, 'shaping');
    assert.equal(enforced().classes.get(ID)?.horizon_ns, HORIZON);
    assert.equal(enforced().settings.flags & SETTINGS_POLICING, 0);

    installer.setRootQdisc('eth0', 'pfifo');
    const before = heartbeats.length;
    await clock.tickAsync(1000);
    const status = agent.status();
    assert.equal(status.mode, 'policing');
    assert.equal(status.modeDetail, 'policing (fq unavailable: the root qdisc of eth0 was replaced by pfifo after pacer installed fq)');
    assert.equal(enforced().classes.get(ID)?.horizon_ns, policingDepthNs(10_000_000, 0, HORIZON), 'the class got the policing depth (two GSO packets at its 10 Mbit/s)');
    assert.equal(enforced().settings.flags & SETTINGS_POLICING, SETTINGS_POLICING, 'the maps say policing');
    assert.ok(heartbeats.slice(before).some((h) => h.mode === 'policing' && h.modeDetail?.startsWith('policing (fq unavailable')), 'heartbeated at once (the interval is 10 minutes)');
    const warning = logs.find((l) => l.msg.startsWith('fq is gone'));
    assert.equal(warning?.level, 40);
    assert.equal(warning?.iface, 'eth0');

    // Checks go on; nothing is re-installed or changed while the root stays pfifo.
    const writes = heartbeats.length;
    await clock.tickAsync(5000);
    assert.equal(agent.status().modeDetail, status.modeDetail);
    assert.equal(heartbeats.length, writes, 'no mode change, no extra heartbeat');

    installer.setRootQdisc('eth0', 'fq');
    await clock.tickAsync(1000);
    assert.equal(agent.status().mode, 'shaping');
    assert.equal(agent.status().modeDetail, SHAPING_DETAIL);
    assert.equal(enforced().classes.get(ID)?.horizon_ns, HORIZON, 'shaping horizon again');
    assert.equal(enforced().settings.flags & SETTINGS_POLICING, 0);
    assert.equal(heartbeats.at(-1)?.mode, 'shaping');
    assert.ok(logs.some((l) => l.msg.startsWith('fq is back')));
  });

  it('the InfluxDB points carry the mode the interface has now', async () => {
    const sink = agent.influxSink()!;
    const modes = async () => {
      await clock.tickAsync(100);
      sink.sample();
      return (sink as unknown as { buffer: Array<{ tags: Record<string, string> }> }).buffer.map((p) => p.tags.mode);
    };
    sink.sample(); // the first sample only sets the baseline
    assert.deepEqual((await modes()).slice(-1), ['shaping']);
    installer.setRootQdisc('eth0', 'pfifo');
    await clock.tickAsync(1000);
    assert.deepEqual((await modes()).slice(-1), ['policing']);
  });

  it('mq with a queue that lost fq polices; a qdisc that cannot be read keeps the mode and warns once', async () => {
    const installed = (agent as unknown as { ifaces: Array<{ installed: { checkQdisc: () => Promise<unknown> } }> }).ifaces[0]!.installed;
    const real = installed.checkQdisc;
    installed.checkQdisc = async () => {
      throw new Error('no interface eth0 in netns (the host network namespace)');
    };
    await clock.tickAsync(3000);
    assert.equal(agent.status().mode, 'shaping', 'unreadable is not evidence that fq is gone');
    assert.equal(logs.filter((l) => l.msg.startsWith('could not read the root qdisc')).length, 1);

    installed.checkQdisc = async () => fqPresence({ kind: 'mq', handle: '1:', options: {}, children: [{ kind: 'fq', handle: '0:', parent: '1:1', options: {} }, { kind: 'pfifo', handle: '0:', parent: '1:2', options: {} }] });
    await clock.tickAsync(1000);
    assert.equal(agent.status().modeDetail, 'policing (fq unavailable: the root qdisc of eth0 was replaced by mq with pfifo on tx queue 2 after pacer installed fq)');
    installed.checkQdisc = real;
  });
});
