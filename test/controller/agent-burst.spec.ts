/**
 * The agent under a burst of changes (issue 17): heartbeats one at a time over a few reused
 * connections, and SIGTERM in the middle of a burst ends the process cleanly with no temporary
 * snapshot file. No timing is asserted: the test timeouts are the only clocks.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Container } from 'inversify';
import pino from 'pino';
import { Agent } from '../../controller/agent.js';
import { agentModule } from '../../controller/module.js';
import { apiClientModule } from '../../controller/api-client/module.js';
import { configModule } from '../../controller/config/module.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { INTERFACE_INSTALLER, MemoryInstaller } from '../../controller/datapath/installer.js';
import { classToJson } from '../../api/contract/class.js';
import type { HostStatus } from '../../api/contract/host.js';
import { AgentChild, until } from '../support/agent-processes.js';
import { startTestApi, request, tokenFor, type TestApi } from '../support/api-server.js';
import { record } from './fixtures.js';

const MAX_CONNECTIONS = 4; // ApiClient's default: the watch, a heartbeat, a list, one spare
const LAST = 400;

/** Just enough of the API for an agent, with heartbeat answers delayed (the 3rd one past the client's timeout). */
class SlowHeartbeatApi {
  readonly statuses: HostStatus[] = [];
  open = 0;
  mostOpen = 0;
  heartbeatsInFlight = 0;
  mostHeartbeatsInFlight = 0;
  private readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      if (req.method === 'GET' && req.url!.startsWith('/v1/classes')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ revision: 1, items: [], next: null }));
      if (req.method === 'GET' && req.url === '/v1/watch') return void this.watch(res);
      if (req.method === 'PUT' && req.url === '/v1/hosts/h/status') {
        let body = '';
        req.on('data', (d) => (body += d)).on('end', () => {
          this.statuses.push(JSON.parse(body) as HostStatus);
          this.mostHeartbeatsInFlight = Math.max(this.mostHeartbeatsInFlight, ++this.heartbeatsInFlight);
          res.once('close', () => this.heartbeatsInFlight--); // answered, or given up by the client
          setTimeout(() => res.writeHead(200).end('{}'), this.statuses.length === 3 ? 3_000 : 150);
        });
        return;
      }
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    this.server.on('connection', (socket) => {
      this.mostOpen = Math.max(this.mostOpen, ++this.open);
      socket.once('close', () => this.open--);
    });
  }

  /** ready, then LAST - 1 class events, a few at a time: each is applied, and each apply asks for a heartbeat. */
  private watch(res: import('node:http').ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: ready\ndata: {}\n\n');
    let revision = 1;
    const tick = setInterval(() => {
      for (let k = 0; k < 5 && revision < LAST; k++) {
        revision++;
        const c = record(`c${revision}`, revision, { match: { marks: [revision], cgroups: [], dst: [] } });
        res.write(`id: ${revision}\nevent: class\ndata: ${JSON.stringify({ revision, action: 'created', name: c.name, class: classToJson(c) })}\n\n`);
      }
      if (revision >= LAST) clearInterval(tick);
    }, 5);
    res.once('close', () => clearInterval(tick));
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('Agent under a burst of changes', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'pacer-burst-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it(`heartbeats never overlap (one times out) and the API sees at most ${MAX_CONNECTIONS} connections from the agent`, async function () {
    this.timeout(30_000);
    const api = new SlowHeartbeatApi();
    const url = await api.listen();
    const logs: Array<{ msg: string; err?: string }> = [];
    const config = resolveAgentConfig({ api: url, iface: ['eth0'], host: 'h', stateDir: dir, heartbeatMs: '100', requestTimeoutMs: '1000', borrowIntervalMs: '0', qdiscCheckMs: '0', routeTuning: 'off' }, { PACER_TOKEN: 't' });
    const container = new Container();
    container.load(configModule(config, pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l)) })), apiClientModule, agentModule);
    container.bind(INTERFACE_INSTALLER).toConstantValue(new MemoryInstaller(true));
    const agent = container.get(Agent);
    await agent.start();
    try {
      await until('a heartbeat with the last revision', () => (api.statuses.some((s) => s.appliedRevision === LAST) ? true : undefined), 25_000, 20);
    } finally {
      await agent.stop();
      await api.close();
    }
    assert.equal(api.mostHeartbeatsInFlight, 1, 'one heartbeat at a time');
    assert.ok(api.mostOpen <= MAX_CONNECTIONS, `at most ${MAX_CONNECTIONS} connections open at once, saw ${api.mostOpen}`);
    assert.ok(logs.some((l) => l.msg.startsWith('heartbeat failed') && /no answer within 1000 ms/.test(l.err ?? '')), 'the slow heartbeat was given up, saying why');
    assert.ok(api.statuses.length < LAST / 2, `far fewer heartbeats than applies: ${api.statuses.length}`);
  });

  describe('SIGTERM', () => {
    let testApi: TestApi;
    before(async () => (testApi = await startTestApi()));
    after(() => testApi.close());

    it('during a burst of creates: the agent exits cleanly (0) and leaves its snapshot and no *.tmp', async function () {
      this.timeout(60_000);
      const token = await tokenFor(testApi.url, 'agent', 'burst-node');
      const child = new AgentChild(
        spawn(process.execPath, [fileURLToPath(new URL('../support/agent-memory-child.js', import.meta.url))], {
          env: { ...process.env, PACER_API: testApi.url, PACER_TOKEN: token, PACER_STATE_DIR: dir, PACER_HOST: 'burst-node' },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      try {
        await until('the agent to watch the API', () => child.find('watching the API'), 15_000, 20);
        let created = 0;
        let stop = false;
        const creator = async (k: number) => {
          for (let i = k; !stop && i < 3000; i += 8) {
            const r = await request(testApi.url, 'POST', '/v1/classes', { body: { name: `b${i}`, rate: '10mbit', match: { marks: [i + 1] } } });
            assert.equal(r.status, 201);
            created++;
          }
        };
        const creators = Array.from({ length: 8 }, (_, k) => creator(k));
        await until('a burst under way, with applies', () => (created >= 600 && child.lines.filter((l) => l.msg === 'applied').length >= 2 ? true : undefined), 30_000, 10);
        child.child.kill('SIGTERM');
        const exit = await child.exited;
        stop = true;
        await Promise.all(creators);
        assert.deepEqual(exit, { code: 0, signal: null }, child.tail());
        assert.ok(child.find('stopped; enforcement stays in place'), child.tail());
        const files = readdirSync(dir);
        assert.deepEqual(files.filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
        assert.ok(files.includes('mem0.last-known-good.json'), `the snapshot is there: ${files.join(', ')}`);
      } finally {
        if (child.running) child.child.kill('SIGKILL');
      }
    });
  });
});
