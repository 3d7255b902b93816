import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import pino from 'pino';
import { Agent } from '../../controller/agent.js';
import { agentModule } from '../../controller/module.js';
import { apiClientModule } from '../../controller/api-client/module.js';
import { configModule } from '../../controller/config/module.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { INTERFACE_INSTALLER, MemoryInstaller } from '../../controller/datapath/installer.js';
import { startTestApi, request, tokenFor, type TestApi } from '../support/api-server.js';

async function until<T>(f: () => Promise<T | undefined> | T | undefined, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Agent (in-memory datapath, real API)', () => {
  let api: TestApi;
  let dir: string;
  before(async () => {
    api = await startTestApi();
    dir = mkdtempSync(join(tmpdir(), 'pacer-agent-'));
  });
  after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('config: flags over env over file; token from PACER_TOKEN', () => {
    const c = resolveAgentConfig({ api: 'http://a:1', iface: ['eth0'], label: ['zone=a'] }, { PACER_TOKEN: 't', PACER_IFACE: 'x,y', PACER_STATE_DIR: '/s' });
    assert.deepEqual([c.settings.iface, c.settings.label, c.settings.stateDir, c.token], [['eth0'], { zone: 'a' }, '/s', 't']);
    assert.throws(() => resolveAgentConfig({ api: 'http://a:1', iface: ['eth0'] }, {}), /no API token/);
  });

  it('registers, enforces a class created through REST, heartbeats policing, serves /metrics', async () => {
    const token = await tokenFor(api.url, 'agent', 'node-a');
    const installer = new MemoryInstaller(false);
    const container = new Container();
    const config = resolveAgentConfig({ api: api.url, iface: ['eth0'], host: 'node-a', label: ['zone=a'], stateDir: dir, metricsListen: '127.0.0.1:0', heartbeatMs: '60000' }, { PACER_TOKEN: token });
    container.load(configModule(config, pino({ level: 'silent' })), apiClientModule, agentModule);
    container.bind(INTERFACE_INSTALLER).toConstantValue(installer);
    const agent = container.get(Agent);
    await agent.start();
    try {
      await until(async () => ((await request(api.url, 'GET', '/v1/hosts/node-a')).status === 200 ? true : undefined));
      const created = await request(api.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '10mbit', match: { marks: [5] }, hosts: { matchLabels: { zone: 'a' } } } });
      assert.equal(created.status, 201);
      const id = created.body.id as number;
      const cfg = await until(() => installer.tables.get('eth0')!.slots.entries().get(id));
      assert.ok(cfg > 0);
      const host = await until(async () => {
        const h = (await request(api.url, 'GET', '/v1/hosts/node-a')).body;
        return h.status?.appliedRevision >= created.body.revision ? h : undefined;
      });
      assert.equal(host.status.mode, 'policing');
      assert.equal(host.status.modeDetail, 'policing (fq unavailable)');
      const metrics = await (await fetch(`http://${agent.metricsAddress()}/metrics`)).text();
      assert.match(metrics, new RegExp(`pacer_class_effective_rate_bps\\{iface="eth0",class_id="${id}"\\} 10000000`));
      assert.match(metrics, /pacer_interface_mode\{iface="eth0",mode="policing"\} 1/);
      assert.match(metrics, /pacer_interface_mode\{iface="eth0",mode="shaping"\} 0/);
    } finally {
      await agent.stop();
    }
  });
});
