/**
 * An agent whose token expires while it runs (issue 11): the API ends its watch, refuses the
 * reconnection with 401, and the agent logs, as an error, that the token expired and the fix
 * (a new token, and a restart with it). Enforcement stays as it was meanwhile.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Container } from 'inversify';
import pino from 'pino';
import { Agent, refusedTokenFix } from '../../controller/agent.js';
import { ApiError } from '../../controller/api-client/api-client.js';
import { agentModule } from '../../controller/module.js';
import { apiClientModule } from '../../controller/api-client/module.js';
import { configModule } from '../../controller/config/module.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { INTERFACE_INSTALLER, MemoryInstaller } from '../../controller/datapath/installer.js';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

interface LogLine {
  level: number;
  msg: string;
  fix?: string;
  err?: string;
}

describe('an agent whose token expires', function () {
  this.timeout(20_000);
  let api: TestApi;
  let dir: string;
  before(async () => {
    api = await startTestApi({ watchHeartbeatMs: 50 });
    dir = mkdtempSync(join(tmpdir(), 'pacer-agent-expiry-'));
  });
  after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the fix for an expired token names the expiry and says to make a new token and restart; other 401s keep their fix', () => {
    const expired = refusedTokenFix(new ApiError(401, 'GET /v1/watch: 401 this token (tok_0123456789ab) expired at 2027-01-01T00:00:00.000Z: an admin creates a new one'), 'web-1');
    assert.equal(
      expired,
      'the token expired at 2027-01-01T00:00:00.000Z: create a new token (an admin runs `pacer token create --role agent --host web-1 --name web-1`, with --ttl if it should expire too) and restart the agent with it in PACER_TOKEN or --token-file',
    );
    assert.match(refusedTokenFix(new ApiError(401, 'GET /v1/watch: 401 unknown token, or a revoked one'), 'web-1')!, /^the token is not valid \(unknown, revoked or mistyped\)/);
  });

  it('logs the expiry and the fix as an error once the API refuses it, and goes on enforcing', async () => {
    const token = (await request(api.url, 'POST', '/v1/tokens', { body: { name: 'node-x', role: 'agent', host: 'node-x', ttlSeconds: 2 } })).body;
    assert.ok(token.expiresAt);
    const lines: LogLine[] = [];
    let logged: (line: LogLine) => void = () => {};
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const text of chunk.toString().split('\n').filter(Boolean)) {
            const line = JSON.parse(text) as LogLine;
            lines.push(line);
            logged(line);
          }
          done();
        },
      }),
    );
    const fixLogged = new Promise<LogLine>((resolve) => (logged = (line) => line.fix !== undefined && resolve(line)));
    const installer = new MemoryInstaller(false);
    const container = new Container();
    const config = resolveAgentConfig({ api: api.url, iface: ['eth0'], host: 'node-x', stateDir: dir, heartbeatMs: '60000', backoffMinMs: '50', backoffMaxMs: '200' }, { PACER_TOKEN: token.token });
    container.load(configModule(config, log), apiClientModule, agentModule);
    container.bind(INTERFACE_INSTALLER).toConstantValue(installer);
    const agent = container.get(Agent);
    await agent.start();
    try {
      const line = await fixLogged;
      assert.ok(lines.some((l) => l.msg === 'watching the API'), 'it was at work before the token expired');
      assert.equal(line.level, 50, 'an error, not a warning');
      assert.match(line.err!, new RegExp(`401 this token \\(${token.id}\\) expired at ${token.expiresAt.replace(/\./g, '\\.')}`));
      assert.match(line.msg, /the API refused this agent's token: the token expired at .*: create a new token .*pacer token create --role agent --host node-x --name node-x.* restart the agent with it/);
      assert.ok(installer.tables.has('eth0'), 'the data plane stays installed');
      const fatal = await Promise.race([agent.fatal, new Promise((r) => setImmediate(() => r('running')))]);
      assert.equal(fatal, 'running', 'the agent does not stop: what it enforces stays enforced');
    } finally {
      await agent.stop();
    }
  });
});
