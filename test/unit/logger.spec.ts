/**
 * api/cli/logger.ts: JSON lines unless stdout is a terminal (then pino-pretty), --log-format forcing
 * either, and pino-pretty loaded only for a pretty log. Each case runs in a child process: whether
 * stdout is a terminal is the child's (script(1) gives it a pseudo-terminal), and so is its module cache.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN } from '../support/api-server.js';
import { freePort, isJsonLine as isJson, killed, startApiChild } from '../support/agent-processes.js';

const LOGGER = join(process.cwd(), 'dist/api/cli/logger.js');
/** Logs one message, then prints whether pino-pretty was loaded. */
const program = (format: string | undefined) =>
  `import { createRequire } from 'node:module';
   const { createLogger } = await import(${JSON.stringify(LOGGER)});
   createLogger({}, ${JSON.stringify(format)}).info({ iface: 'eth9' }, 'interface ready');
   const loaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/pino-pretty/'));
   process.stdout.write('pino-pretty loaded: ' + loaded + '\\n');`;

/** What the program prints, with stdout a pipe or (tty) a pseudo-terminal. */
function logged(format: string | undefined, tty: boolean): { log: string; prettyLoaded: boolean } {
  const node = [process.execPath, '--input-type=module', '-e', program(format)];
  const r = tty
    ? spawnSync('script', ['-qec', node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' '), '/dev/null'], { encoding: 'utf8' })
    : spawnSync(node[0]!, node.slice(1), { encoding: 'utf8' });
  if (r.error) throw new Error(`${tty ? 'script (util-linux, for a pseudo-terminal)' : 'node'}: ${r.error.message}`);
  assert.equal(r.status, 0, r.stderr);
  // pino may write its line after the program's own (its JSON destination flushes on exit).
  const lines = r.stdout.replace(/\r/g, '').trimEnd().split('\n');
  const loaded = lines.filter((l) => /^pino-pretty loaded: (true|false)$/.test(l));
  assert.equal(loaded.length, 1, r.stdout);
  return { log: lines.filter((l) => l !== loaded[0]).join('\n'), prettyLoaded: loaded[0]!.endsWith('true') };
}

describe('agent and API logs: JSON for machines, pretty for a person at a terminal', function () {
  this.timeout(60_000);

  it('stdout a pipe (log shippers, the tests): JSON lines, and pino-pretty is not loaded', () => {
    const { log, prettyLoaded } = logged(undefined, false);
    assert.ok(isJson(log), log);
    assert.deepEqual([JSON.parse(log).msg, JSON.parse(log).iface], ['interface ready', 'eth9']);
    assert.equal(prettyLoaded, false);
  });

  it('stdout a terminal: one readable line with the message and its fields, not JSON', () => {
    const { log, prettyLoaded } = logged(undefined, true);
    assert.equal(log.split('\n').length, 1, log);
    assert.ok(!isJson(log), log);
    assert.match(log, /INFO.*interface ready.*eth9/);
    assert.equal(prettyLoaded, true);
  });

  it('--log-format forces either: pretty into a pipe (no colours there), JSON on a terminal', () => {
    const pretty = logged('pretty', false).log;
    assert.ok(!isJson(pretty), pretty);
    assert.match(pretty, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: interface ready \{"iface":"eth9"\}$/);
    const json = logged('json', true);
    assert.ok(isJson(json.log), json.log);
    assert.equal(json.prettyLoaded, false);
  });

  describe('pacer api --log-format', () => {
    let dir = '';
    before(() => (dir = mkdtempSync(join(tmpdir(), 'pacer-log-format-'))));
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** The log of an API started with `args` and stopped by SIGTERM (its "shutting down" line). */
    async function apiLog(args: string[], env: Record<string, string> = {}): Promise<string> {
      const saved = { ...process.env };
      Object.assign(process.env, env);
      const api = await startApiChild(join(dir, 'pacer.db'), await freePort(), args).finally(() => (process.env = saved));
      let out = '';
      api.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await killed(api.child, 'SIGTERM');
      return out.trim().split('\n').at(-1)!;
    }

    it('pretty: a readable line; the default into a pipe: JSON; PACER_LOG_FORMAT works as the flag', async () => {
      const pretty = await apiLog(['--log-format', 'pretty']);
      assert.ok(!isJson(pretty), pretty);
      assert.match(pretty, /INFO \(pacer-api\): shutting down \{"signal":"SIGTERM"\}/);
      const json = await apiLog([]);
      assert.deepEqual([JSON.parse(json).msg, JSON.parse(json).name], ['shutting down', 'pacer-api']);
      assert.match(await apiLog([], { PACER_LOG_FORMAT: 'pretty' }), /INFO \(pacer-api\): shutting down/);
    });

    it('an unknown format is refused before anything starts, naming the choices', () => {
      const r = spawnSync(process.execPath, [join(process.cwd(), 'dist/api/cli/pacer.js'), 'api', '--db', join(dir, 'refused.db'), '--log-format', 'xml'], { encoding: 'utf8', env: { ...process.env, PACER_ADMIN_TOKEN: ADMIN_TOKEN } });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /argument 'xml' is invalid\. Allowed choices are json, pretty/);
    });
  });
});
