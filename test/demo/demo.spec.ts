/**
 * `pacer demo` as a user runs it, so the README's main job cannot rot: the real command as a child
 * process (root), with its real lab, API, agent and iperf3 traffic. On this kernel (no fq) the
 * demo polices and must say so; every class must achieve the rate the kernel enforced for it within
 * 10% (2% if this kernel had fq), and the budget changed midway must be followed. Then: nothing it
 * made is left, whether it ended by its duration, by SIGTERM, or because one of its processes died;
 * a second demo is refused while one runs; bad flags create nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../support/api-process.js';
import { probeFq } from '../../shaper-bpf/src/qdisc.js';
import { Lab, PIN_BASE } from '../../demo/lab.js';
import type { DemoSummary } from '../../demo/summary.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<Exit>;
}

function demo(args: readonly string[]): Running {
  const child = spawn(process.execPath, [CLI, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<Exit>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  return { child, stderr: () => stderr, exit };
}

async function waitFor(what: string, f: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a demo may leave behind; empty when it cleaned up. */
function leftovers(): string[] {
  const found: string[] = [];
  for (const ns of readdirSync('/run/netns', { withFileTypes: true }).map((d) => d.name)) if (ns.startsWith('pacer-demo-')) found.push(`netns ${ns}`);
  if (existsSync(PIN_BASE)) found.push(`pins ${PIN_BASE}`);
  if (existsSync('/run/pacer-demo')) found.push('/run/pacer-demo');
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) if (line.includes('pacer-demo')) found.push(`mount ${line}`);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // exited meanwhile
    }
    if (cmd.includes('pacer-demo') || (cmd.includes('iperf3') && cmd.includes('10.98.0.'))) found.push(`process ${pid}: ${cmd.trim()}`);
  }
  return found;
}

const mbit = (bps: number) => (bps / 1e6).toFixed(2);

describe('pacer demo: the README\'s main job, run as a user runs it (root; real namespaces, API, agent and iperf3)', function () {
  this.timeout(240_000);
  let summary: DemoSummary;
  let fq: boolean;
  let second: Exit;
  let suggested: { classLs: string; hostGet: string; dp: string } | undefined;

  before(async () => {
    fq = await probeFq().catch(() => false);
    await Lab.sweep(); // a demo killed by an earlier run of this suite
    const run = demo(['--duration', '20s', '--json']);
    // While it runs, a second demo is refused and changes nothing.
    await waitFor('the first demo to start its traffic', () => run.stderr().includes('iperf3 traffic started') || run.child.exitCode !== null, 150_000);
    second = await demo(['--duration', '20s', '--json']).exit;
    // The commands the demo suggests, from another shell, against the running demo.
    const env = /export PACER_API=(\S+) PACER_TOKEN=(\S+)/.exec(run.stderr());
    const stateDir = /agent's state: (\S+)/.exec(run.stderr());
    if (env && stateDir && run.child.exitCode === null) {
      const pacer = (args: string[]) => execFileSync(process.execPath, [CLI, ...args], { env: { ...process.env, PACER_API: env[1], PACER_TOKEN: env[2] }, encoding: 'utf8' });
      suggested = { classLs: pacer(['class', 'ls']), hostGet: pacer(['host', 'get', 'demo-sender']), dp: pacer(['dp', 'classes', '--pin-base', PIN_BASE, '--state-dir', stateDir[1]!]) };
    }
    const first = await run.exit;
    assert.equal(first.code, 0, `pacer demo exited ${first.code}:\n${first.stderr}\n${first.stdout}`);
    summary = JSON.parse(first.stdout) as DemoSummary;
  });

  after(async () => {
    await Lab.sweep();
  });

  it('says the mode this kernel allows (policing without fq) and judges with its tolerance', function () {
    this.test!.title += ` (${summary.mode}: ${summary.modeDetail}; ±${summary.tolerancePct}%)`;
    assert.equal(summary.mode, fq ? 'shaping' : 'policing');
    assert.equal(summary.tolerancePct, fq ? 2 : 10);
  });

  it('every class achieves the rate the kernel enforced for it, within the tolerance, before and after the change', function () {
    const seen = summary.phases.flatMap((p) => p.classes.map((c) => `${p.fromS}–${p.toS} s ${c.name} ${mbit(c.achievedBps)}/${mbit(c.effectiveBps)} (${c.errorPct}%)`));
    this.test!.title += ` (${seen.join('; ')})`;
    assert.equal(summary.phases.length, 2);
    for (const p of summary.phases) {
      assert.ok(p.steadySeconds >= 5, `${p.fromS}–${p.toS} s: ${p.steadySeconds} steady seconds`);
      assert.deepEqual(p.classes.map((c) => c.name).sort(), ['batch', 'rpc', 'web']);
      for (const c of p.classes) {
        assert.ok(c.effectiveBps > 0, `${c.name} had an effective rate in the kernel`);
        assert.ok(Math.abs(c.achievedBps - c.effectiveBps) <= (summary.tolerancePct / 100) * c.effectiveBps, `${c.name}: ${c.achievedBps} vs ${c.effectiveBps} bit/s`);
      }
    }
    assert.equal(summary.ok, true, summary.problems.join('\n'));
  });

  it('the budget changed through the API midway is the rate the kernel enforces after it; batch borrows its idle parent\'s rate up to its ceil', function () {
    const web = summary.phases.map((p) => p.classes.find((c) => c.name === 'web')!);
    const batch = summary.phases.map((p) => p.classes.find((c) => c.name === 'batch')!);
    this.test!.title += ` (web ${web.map((w) => mbit(w.effectiveBps)).join(' → ')} Mbit/s; batch ${batch.map((b) => mbit(b.effectiveBps)).join(', ')} Mbit/s)`;
    assert.deepEqual(summary.changes, [{ atS: 10, className: 'web', from: '20mbit', to: '10mbit' }]);
    assert.deepEqual(web.map((w) => w.effectiveBps), [20_000_000, 10_000_000]);
    // batch: 5mbit, ceil 20mbit, alone under a 20mbit parent.
    assert.deepEqual(batch.map((b) => b.effectiveBps), [20_000_000, 20_000_000]);
  });

  it('the commands it suggests work from another shell while it runs: class ls, host get, dp classes (with names)', function () {
    assert.ok(suggested, 'the demo printed PACER_API, PACER_TOKEN and the agent\'s state directory, and was still running');
    assert.match(suggested.classLs, /\bweb\b[\s\S]*\bbatch\b|\bbatch\b[\s\S]*\bweb\b/);
    assert.match(suggested.hostGet, /Mode:\s+(policing|shaping)/);
    for (const name of ['web', 'batch', 'rpc']) assert.match(suggested.dp, new RegExp(`\\b${name}\\b`), `pacer dp classes names ${name}:\n${suggested.dp}`);
  });

  it('a second demo while one runs says so and exits 1', function () {
    assert.equal(second.code, 1);
    assert.match(second.stderr, /a pacer demo is already running \(PID \d+/);
  });

  it('leaves nothing behind: namespaces, pins, cgroup, mounts, processes', function () {
    assert.deepEqual(leftovers(), []);
  });

  it('SIGTERM midway stops it, removes everything, and prints the verdict of what ran', async () => {
    const run = demo(['--duration', '60s', '--json']);
    await waitFor('the demo to start its traffic', () => run.stderr().includes('iperf3 traffic started') || run.child.exitCode !== null, 150_000);
    await waitFor('a few seconds of table', () => /\n5 s: /.test(run.stderr()) || run.child.exitCode !== null, 30_000);
    run.child.kill('SIGTERM');
    const r = await run.exit;
    assert.match(r.stderr, /SIGTERM: stopping and removing everything/);
    const s = JSON.parse(r.stdout) as DemoSummary;
    assert.equal(s.stoppedBy, 'SIGTERM');
    assert.ok(s.durationS < 60);
    assert.equal(r.code, s.ok ? 0 : 1);
    assert.deepEqual(leftovers(), []);
  });

  it('a process of the lab that dies (the agent, SIGKILL) stops the demo with its output, exit 1, and everything is removed', async () => {
    const run = demo(['--duration', '60s', '--json']);
    await waitFor('the demo to start its traffic', () => run.stderr().includes('iperf3 traffic started') || run.child.exitCode !== null, 150_000);
    const pids = readFileSync('/run/pacer-demo/pids', 'utf8').split('\n').filter(Boolean);
    const agent = pids.find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('agent');
      } catch {
        return false;
      }
    });
    assert.ok(agent, `the agent is among the demo's processes ${pids.join(', ')}`);
    process.kill(Number(agent), 'SIGKILL');
    const r = await run.exit;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /pacer agent exited \(SIGKILL\)/);
    const kept = /logs kept in (\/tmp\/pacer-demo-\w+)/.exec(r.stderr);
    assert.ok(kept, `the demo says where its logs are:\n${r.stderr}`);
    assert.match(readFileSync(join(kept[1]!, 'pacer-agent.log'), 'utf8'), /"msg"/, 'the agent\'s log was kept');
    rmSync(kept[1]!, { recursive: true, force: true });
    assert.deepEqual(leftovers(), []);
  });

  it('refuses to run without root, saying why, and creates nothing', async () => {
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'demo', '--duration', '10s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^pacer demo: run it as root \(sudo\)/);
    assert.deepEqual(leftovers(), []);
  });

  for (const bad of [['--duration', '5s'], ['--duration', 'soon'], ['--rate', '1mbit']]) {
    it(`refuses ${bad.join(' ')} with a clear error and creates nothing`, async () => {
      const r = await demo(bad).exit;
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /error: (option '--duration <time>' argument|unknown option)/);
      assert.deepEqual(leftovers(), []);
    });
  }
});
