/**
 * The agent's log (issue 11): readable with --log-format pretty, JSON lines by default when stdout
 * is not a terminal (what log shippers and every other agent test parse). A real agent on a veth in
 * test namespaces, with an API that cannot be reached: it installs, says so, and retries.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, isJsonLine as isJson, killed, startAgentChild, until, type AgentChild } from '../support/agent-processes.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { useTestNetns } from '../support/netns.js';

const IFACE = 'lf0';

describe('the agent\'s log format (real agent, veth in test namespaces)', function () {
  this.timeout(120_000);
  let agent: AgentChild | undefined;
  let pinBase = '';
  let stateDir = '';
  let args: string[] = [];
  after(async function () {
    this.timeout(30_000);
    await killed(agent?.child);
    if (args.length > 0) await promisify(execFile)(process.execPath, [CLI, 'agent', 'teardown', '--iface', IFACE, '--state-dir', stateDir, '--netns', args[args.indexOf('--netns') + 1]!, '--pin-base', pinBase]).catch(() => {});
    removePinDir(pinBase);
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });
  const nets = useTestNetns();

  before(async function () {
    this.timeout(60_000);
    const a = await nets.createTestNetns();
    const b = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: a, name: IFACE, addr: '10.93.11.1/24' }, b: { ns: b, name: 'lf1', addr: '10.93.11.2/24' } });
    pinBase = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-log-format-'));
    args = ['--api', 'http://127.0.0.1:9', '--iface', IFACE, '--netns', `/run/netns/${a}`, '--host', 'log-node', '--state-dir', stateDir, '--pin-base', pinBase, '--cgroup-root', 'off'];
  });

  /** Runs the agent until its output matches `ready`, then stops it (SIGTERM) and returns its stdout lines. */
  async function agentOutput(extra: string[], ready: (a: AgentChild) => boolean): Promise<string[]> {
    agent = startAgentChild([...args, ...extra], 'any-token');
    const a = agent;
    await until('the agent to install and log it', () => {
      if (!a.running) throw new Error(`the agent exited:\n${a.tail()}`);
      return ready(a) || undefined;
    }, 60_000, 50);
    await killed(a.child, 'SIGTERM');
    return a.tail(10_000).split('\n').filter(Boolean);
  }

  it('--log-format pretty: one readable line per message, none of them JSON', async () => {
    const lines = await agentOutput(['--log-format', 'pretty'], (a) => a.tail(10_000).includes('interface ready'));
    assert.deepEqual(lines.filter(isJson), [], 'no JSON line');
    assert.ok(lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: interface ready \{.*"iface":"lf0"/.test(l)), lines.join('\n'));
  });

  it('by default, stdout being a pipe: JSON lines', async () => {
    const lines = await agentOutput([], (a) => a.find('interface ready') !== undefined);
    const ready = lines.filter(isJson).map((l) => JSON.parse(l)).find((l) => l.msg === 'interface ready');
    assert.equal(ready?.iface, IFACE, lines.join('\n'));
  });
});
