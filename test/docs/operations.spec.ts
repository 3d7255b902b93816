/**
 * Every shell block the operator guide (and the README) marks runnable is run here, in a lab this
 * test builds, so the pages cannot drift from the commands (the marker: test/docs/runnable-blocks.ts).
 *
 * The lab: a real `pacer api` process on a temp SQLite file, a real `pacer agent` enforcing on
 * the sending end of a veth pair in test namespaces (test/support/agent-rig.ts), a real influxd,
 * and `pacer` on the PATH as a shim that runs this build. Each block runs in its own
 * `bash -euo pipefail`, in one lab directory (so a file one block writes, the next can read), with
 * PACER_API and PACER_TOKEN (admin) set. What the pages write for a real host is replaced by the
 * lab's, exactly as LAB_NAMES says; nothing else is changed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useAgentRig } from '../support/agent-rig.js';
import { CLI, freePort } from '../support/agent-processes.js';
import { ADMIN_TOKEN } from '../support/api-server.js';
import { startInfluxd, type RunningInfluxd } from '../support/influxd.js';
import { runnableBlocks, type RunnableBlock } from './runnable-blocks.js';

/** The pages whose runnable blocks are run, in this order. */
const PAGES = ['docs/operations.md', 'README.md'];
const IFACE = 'ops0';
const HOST = 'node-1';

interface Lab {
  apiUrl: string;
  dbFile: string;
  pinBase: string;
  metricsAddr: string;
  influxUrl: string;
  backupDir: string;
}

/**
 * What the pages write → what the lab has. The guide's example host is `node-1` with label
 * rack=r7 and interface eth0, as the lab's agent is (host and label need no replacing).
 */
const LAB_NAMES = (lab: Lab): Array<[string | RegExp, string]> => [
  ['http://API:8080', lab.apiUrl],
  ['/var/lib/pacer-api/pacer.db', lab.dbFile],
  ['/var/backups/pacer', lab.backupDir],
  ['/sys/fs/bpf/pacer', lab.pinBase],
  ['127.0.0.1:9464', lab.metricsAddr],
  ['http://127.0.0.1:8086', lab.influxUrl],
  [/\beth0\b/g, IFACE],
];

function inLab(text: string, lab: Lab): string {
  return LAB_NAMES(lab).reduce((t, [from, to]) => (typeof from === 'string' ? t.split(from).join(to) : t.replace(from, to)), text);
}

/** Runs a script with bash; resolves with its exit code and everything it printed. */
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

const pages = PAGES.map((page) => ({ page, blocks: runnableBlocks(page, readFileSync(page, 'utf8')) }));

describe('the runnable commands of the operator guide and the README (real API, agent on a veth, influxd; `pacer` on the PATH)', function () {
  this.timeout(120_000);
  let metricsPort = 0;
  let influxd: RunningInfluxd | undefined;
  let labDir = '';
  let lab: Lab;
  let env: NodeJS.ProcessEnv;

  // Before the rig's own before(): the agent's flags are read when it starts.
  before(async () => {
    metricsPort = await freePort();
  });
  const rig = useAgentRig({
    iface: IFACE,
    peerIface: 'ops1',
    subnet: '10.97.0',
    peers: 1,
    host: HOST,
    labels: { rack: 'r7' },
    agentArgs: () => ['--metrics-listen', `127.0.0.1:${metricsPort}`],
  });

  before(async () => {
    influxd = await startInfluxd();
    labDir = mkdtempSync(join(tmpdir(), 'pacer-docs-lab-'));
    lab = {
      apiUrl: rig.api.url,
      dbFile: rig.dbFile,
      pinBase: rig.pinBase,
      metricsAddr: `127.0.0.1:${metricsPort}`,
      influxUrl: influxd.url,
      backupDir: join(labDir, 'backups'),
    };
    mkdirSync(lab.backupDir);
    // Relative paths of the pages (sim/examples/…) resolve as in a clone of the repository.
    symlinkSync(join(process.cwd(), 'sim'), join(labDir, 'sim'));
    // `pacer` is this build. The lab's agent pins under a private directory (never a real agent's
    // /sys/fs/bpf/pacer), so the commands that read pins are pointed at it.
    const bin = join(labDir, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'pacer'),
      `#!/bin/sh\ncase "$1" in\n  dp|doctor) exec "${process.execPath}" "${CLI}" "$@" --pin-base "${lab.pinBase}" ;;\n  *) exec "${process.execPath}" "${CLI}" "$@" ;;\nesac\n`,
    );
    chmodSync(join(bin, 'pacer'), 0o755);
    // PACER_STATE_DIR: `pacer dp` names the classes from the lab agent's snapshots.
    env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, PACER_API: rig.api.url, PACER_TOKEN: ADMIN_TOKEN, PACER_STATE_DIR: rig.stateDir };
  });
  after(async () => {
    await influxd?.stop();
    if (labDir) rmSync(labDir, { recursive: true, force: true });
  });

  it('docs/operations.md marks its commands runnable (the marker is in use, and understood)', () => {
    assert.ok(pages[0]!.blocks.length >= 10, `${pages[0]!.blocks.length} runnable blocks`);
  });

  for (const { blocks } of pages) {
    for (const block of blocks) {
      const first = block.script.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('#')) ?? '';
      it(`${block.where}: ${first}`, async () => runBlock(block));
    }
  }

  async function runBlock(block: RunnableBlock): Promise<void> {
    const script = inLab(block.script, lab);
    const { code, output } = await bash(script, labDir, env);
    const shown = `--- script (in the lab) ---\n${script}\n--- output ---\n${output}`;
    assert.ok(code !== null && block.exits.includes(code), `${block.where} exited ${code}, expected ${block.exits.join(' or ')}\n${shown}`);
    for (const line of block.expected.map((l) => inLab(l, lab))) {
      assert.ok(output.includes(line), `${block.where}: the output lacks ${JSON.stringify(line)}\n${shown}`);
    }
  }
});
