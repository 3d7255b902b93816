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
import { parsePrometheusText } from '../support/prometheus-text.js';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';

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
      assert.match(metrics, new RegExp(`pacer_class_effective_rate_bps\\{iface="eth0",class="web",class_id="${id}"\\} 10000000`));
      assert.match(metrics, /pacer_interface_mode\{iface="eth0",mode="policing"\} 1/);
      assert.match(metrics, /pacer_interface_mode\{iface="eth0",mode="shaping"\} 0/);
    } finally {
      await agent.stop();
    }
  });

  it('/metrics: the kernel counters as counters, and each class\'s delay histogram as a Prometheus histogram of its recorded delays', async () => {
    const token = await tokenFor(api.url, 'agent', 'node-h');
    const installer = new MemoryInstaller(true);
    const container = new Container();
    const config = resolveAgentConfig({ api: api.url, iface: ['eth0'], host: 'node-h', label: ['zone=h'], stateDir: dir, metricsListen: '127.0.0.1:0', heartbeatMs: '60000' }, { PACER_TOKEN: token });
    container.load(configModule(config, pino({ level: 'silent' })), apiClientModule, agentModule);
    container.bind(INTERFACE_INSTALLER).toConstantValue(installer);
    const agent = container.get(Agent);
    await agent.start();
    try {
      const created = await request(api.url, 'POST', '/v1/classes', { body: { name: 'hist', rate: '20mbit', match: { marks: [6] }, hosts: { matchLabels: { zone: 'h' } } } });
      assert.equal(created.status, 201);
      const id = created.body.id as number;
      const tables = installer.tables.get('eth0')!;
      const slot = await until(() => tables.slots.entries().get(id));
      // What the program does per passed packet: count its delay in the histogram and in class_stats.
      const counters = new Map<number, ClassStats>();
      tables.stats = { get: (s) => counters.get(s) ?? { packets: 0, bytes: 0, delayed: 0, delay_ns: 0, horizon_drops: 0, ce_marks: 0, contended: 0 }, zeroMany: () => {} };
      const pass = (delayNs: number, n: number) => {
        const c = { ...tables.stats.get(slot)! };
        for (let i = 0; i < n; i++) tables.hists.record(slot, delayNs);
        c.packets += n;
        c.bytes += 1500 * n;
        if (delayNs > 0) c.delayed += n;
        c.delay_ns += delayNs * n;
        counters.set(slot, c);
      };
      pass(0, 90); // not delayed
      pass(50_000, 9); // 50 µs
      pass(20_000_000, 1); // 20 ms
      const scrape = async () => parsePrometheusText(await (await fetch(`http://${agent.metricsAddress()}/metrics`)).text());
      const labels = { iface: 'eth0', class: 'hist', class_id: String(id) };
      let m = await scrape();
      for (const name of ['pacer_class_bytes_total', 'pacer_class_packets_total', 'pacer_class_delayed_packets_total', 'pacer_class_horizon_drops_total', 'pacer_class_ce_marks_total', 'pacer_class_contended_total']) {
        assert.equal(m.types.get(name), 'counter', name);
      }
      assert.equal(m.types.get('pacer_class_delay_seconds'), 'histogram');
      assert.deepEqual([m.value('pacer_class_packets_total', labels), m.value('pacer_class_bytes_total', labels), m.value('pacer_class_delayed_packets_total', labels)], [100, 150_000, 10]);
      let h = m.histogram('pacer_class_delay_seconds', labels)!;
      assert.equal(h.count, 100);
      assert.ok(Math.abs(h.sum - (9 * 50e-6 + 20e-3)) < 1e-12, `_sum ${h.sum} s is the class's delay_ns`);
      // le: every power of two from 2^10 ns to 2^34 ns, in seconds, then +Inf.
      assert.deepEqual(h.buckets.map((b) => b.le), [...Array.from({ length: 25 }, (_, i) => 2 ** (10 + i) / 1e9), Infinity]);
      const at = (hist: typeof h, ns: number) => hist.buckets.find((b) => b.le === ns / 1e9)!.count;
      assert.deepEqual([at(h, 2 ** 10), at(h, 2 ** 15), at(h, 2 ** 16), at(h, 2 ** 24), at(h, 2 ** 25), at(h, 2 ** 34)], [90, 90, 99, 99, 100, 100]);

      // More packets: the next scrape reads the histogram again and counts only go up.
      pass(3_000_000, 50); // 3 ms
      m = await scrape();
      h = m.histogram('pacer_class_delay_seconds', labels)!;
      assert.equal(h.count, 150);
      assert.equal(m.value('pacer_class_packets_total', labels), 150);
      assert.deepEqual([at(h, 2 ** 21), at(h, 2 ** 22)], [99, 149]);
    } finally {
      await agent.stop();
    }
  });
  it('/metrics says when the API is out of reach, and the class stays enforced', async () => {
    const own = await startTestApi(); // this test stops it
    const token = await tokenFor(own.url, 'agent', 'node-u');
    const installer = new MemoryInstaller(true);
    const container = new Container();
    const config = resolveAgentConfig(
      { api: own.url, iface: ['eth0'], host: 'node-u', stateDir: dir, metricsListen: '127.0.0.1:0', heartbeatMs: '60000', backoffMinMs: '50', backoffMaxMs: '100' },
      { PACER_TOKEN: token },
    );
    container.load(configModule(config, pino({ level: 'silent' })), apiClientModule, agentModule);
    container.bind(INTERFACE_INSTALLER).toConstantValue(installer);
    const agent = container.get(Agent);
    await agent.start();
    const scrape = async () => parsePrometheusText(await (await fetch(`http://${agent.metricsAddress()}/metrics`)).text());
    try {
      const created = await request(own.url, 'POST', '/v1/classes', { body: { name: 'kept', rate: '10mbit', match: { marks: [7] } } });
      const id = created.body.id as number;
      await until(() => installer.tables.get('eth0')!.slots.entries().get(id));
      let m = await until(async () => {
        const s = await scrape();
        return s.value('pacer_agent_api_connected', {}) === 1 ? s : undefined;
      });
      assert.equal(m.value('pacer_agent_api_unreachable_seconds', {}), 0);
      assert.equal(m.types.get('pacer_agent_api_failures_total'), 'counter');
      await own.close();
      m = await until(async () => {
        const s = await scrape();
        return s.value('pacer_agent_api_connected', {}) === 0 ? s : undefined;
      });
      assert.ok(m.value('pacer_agent_api_failures_total', {})! >= 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.ok((await scrape()).value('pacer_agent_api_unreachable_seconds', {})! > 0);
      assert.ok(installer.tables.get('eth0')!.slots.entries().get(id), 'the class is still enforced');
    } finally {
      await agent.stop();
      await own.close().catch(() => {});
    }
  });
});
