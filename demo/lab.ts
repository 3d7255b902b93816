/**
 * The demo's lab on this host: two network namespaces joined by a veth pair (the sender, whose
 * egress pacer enforces, and the receiver with one address per class), a private cgroup v2
 * directory the traffic runs in (sock_ops sees only it, so no socket of the host is touched), and
 * the processes: pacer's API on an SQLite file in a temp directory, pacer's agent on the sender's
 * interface, iperf3 servers and clients.
 *
 * Every name is fixed (one demo per host: command.ts takes a lock first), so whatever a killed demo
 * left behind is recognised and removed by the next one (`sweep`), and `remove` undoes exactly what
 * `build` made, in reverse, whatever failed in between.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BPFFS, ensureBpffs } from '../shaper-bpf/src/bpffs.js';
import { run, runIn } from '../shaper-bpf/src/exec.js';
import { DemoError } from './demo-error.js';
import { SENDER_ADDR } from './plan.js';

export const SENDER_NS = 'pacer-demo-send';
export const RECEIVER_NS = 'pacer-demo-recv';
export const IFACE = 'pd0';
const PEER_IFACE = 'pd1';
export const PIN_BASE = `${BPFFS}/pacer-demo`;
/** The demo's own bookkeeping: the PIDs of its children and its mounts, for the next demo's sweep. */
const RUN_DIR = '/run/pacer-demo';
const PIDS_FILE = join(RUN_DIR, 'pids');
const CGROUP_MOUNT = join(RUN_DIR, 'cgroup2');
const CGROUP_NAME = 'pacer-demo';
/** The pacer CLI this process runs (dist/api/cli/pacer.js). */
const CLI = fileURLToPath(new URL('../api/cli/pacer.js', import.meta.url));


async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args, 30_000);
  if (r.code !== 0) throw new DemoError(`\`${cmd} ${args.join(' ')}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

async function mustIn(ns: string, cmd: string, args: readonly string[]): Promise<string> {
  const r = await runIn(ns, cmd, args);
  if (r.code !== 0) throw new DemoError(`in ${ns}: \`${cmd} ${args.join(' ')}\` exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A child process of the lab, its output kept in a log file and its last lines in memory. */
export class LabProcess {
  private tailText = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    log: WriteStream,
  ) {
    const keep = (d: Buffer) => {
      log.write(d);
      this.tailText = (this.tailText + d.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.once('error', (err) => keep(Buffer.from(`${name}: ${err.message}\n`)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines it printed, for an error message. */
  tail(lines = 15): string {
    return this.tailText.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Stops it (SIGTERM, then SIGKILL after `graceMs`) and waits for its exit. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export class Lab {
  /** Temp directory: the API's store, the agent's state, every process's log. */
  readonly workDir = mkdtempSync(join(tmpdir(), 'pacer-demo-'));
  readonly processes: LabProcess[] = [];
  readonly adminToken = `pacer_demo_${randomBytes(24).toString('base64url')}`;
  /** The cgroup the traffic runs in (the agent's --cgroup-root). */
  cgroup = '';
  private mountedBpffs = false;
  private readonly undo: Array<() => Promise<void>> = [];

  /** Removes what a demo that was killed (SIGKILL, power loss) left behind. Call with the lock held. */
  static async sweep(): Promise<string[]> {
    const removed: string[] = [];
    if (existsSync(PIDS_FILE)) {
      for (const pid of readFileSync(PIDS_FILE, 'utf8').split('\n').filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
          removed.push(`process ${pid}`);
        } catch {
          // gone already
        }
      }
      rmSync(PIDS_FILE, { force: true });
    }
    for (const ns of [SENDER_NS, RECEIVER_NS]) {
      if (existsSync(`/run/netns/${ns}`) && (await run('ip', ['netns', 'del', ns])).code === 0) removed.push(`network namespace ${ns}`);
    }
    if (existsSync(PIN_BASE)) {
      rmSync(PIN_BASE, { recursive: true, force: true });
      removed.push(`pins ${PIN_BASE}`);
    }
    if (existsSync(join(CGROUP_MOUNT, CGROUP_NAME))) {
      await Lab.emptyCgroup(join(CGROUP_MOUNT, CGROUP_NAME));
      removed.push(`cgroup ${CGROUP_NAME}`);
    }
    if ((await run('umount', [CGROUP_MOUNT])).code === 0) removed.push(`mount ${CGROUP_MOUNT}`);
    return removed;
  }

  /** Moves any process left in `dir` to the hierarchy's root and removes the cgroup. */
  private static async emptyCgroup(dir: string): Promise<void> {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    // A killed process leaves its cgroup only once it has exited.
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    rmdirSync(dir);
  }

  /** Namespaces, veth, addresses, bpffs and the cgroup. `receivers`: the receiver's addresses. */
  async build(receivers: readonly string[]): Promise<void> {
    mkdirSync(RUN_DIR, { recursive: true });
    this.undo.push(async () => rmSync(RUN_DIR, { recursive: true, force: true }));
    for (const ns of [SENDER_NS, RECEIVER_NS]) {
      await must('ip', ['netns', 'add', ns]);
      this.undo.push(async () => void (await run('ip', ['netns', 'del', ns])));
      await mustIn(ns, 'ip', ['link', 'set', 'lo', 'up']);
    }
    await must('ip', ['link', 'add', IFACE, 'netns', SENDER_NS, 'type', 'veth', 'peer', 'name', PEER_IFACE, 'netns', RECEIVER_NS]);
    await mustIn(SENDER_NS, 'ip', ['addr', 'add', `${SENDER_ADDR}/24`, 'dev', IFACE]);
    for (const addr of receivers) await mustIn(RECEIVER_NS, 'ip', ['addr', 'add', `${addr}/24`, 'dev', PEER_IFACE]);
    await mustIn(SENDER_NS, 'ip', ['link', 'set', IFACE, 'up']);
    await mustIn(RECEIVER_NS, 'ip', ['link', 'set', PEER_IFACE, 'up']);

    this.mountedBpffs = ensureBpffs();
    this.undo.push(async () => {
      rmSync(PIN_BASE, { recursive: true, force: true });
      if (this.mountedBpffs && readdirSync(BPFFS).length === 0) await run('umount', [BPFFS]);
    });

    // A cgroup v2 mount of our own (the host may have only cgroup v1 at /sys/fs/cgroup): the same
    // hierarchy as any other cgroup2 mount, and unmounting it touches nothing else.
    mkdirSync(CGROUP_MOUNT, { recursive: true });
    await must('mount', ['-t', 'cgroup2', 'none', CGROUP_MOUNT]);
    this.undo.push(async () => {
      await run('umount', [CGROUP_MOUNT]);
      rmSync(CGROUP_MOUNT, { recursive: true, force: true });
    });
    this.cgroup = join(CGROUP_MOUNT, CGROUP_NAME);
    mkdirSync(this.cgroup);
    this.undo.push(() => Lab.emptyCgroup(this.cgroup));
  }

  /** Starts a child; its output goes to <workDir>/<name>.log. `spawn` errors surface as its exit. */
  start(name: string, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): LabProcess {
    // Detached: a Ctrl-C in the terminal reaches the demo only, which stops its children in order.
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const p = new LabProcess(name, child, createWriteStream(join(this.workDir, `${name.replace(/\W+/g, '-')}.log`)));
    this.processes.push(p);
    this.recordPids();
    return p;
  }

  /** `pacer <args>` as a child of the lab. */
  pacer(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): LabProcess {
    return this.start(name, process.execPath, [CLI, ...args], env);
  }

  /** An iperf3 server in the receiver's namespace. */
  iperfServer(port: number): LabProcess {
    return this.start(`iperf3 server :${port}`, 'nsenter', [`--net=/run/netns/${RECEIVER_NS}`, 'iperf3', '-s', '-p', String(port)]);
  }

  /** An iperf3 client in the sender's namespace, inside the demo's cgroup (the shell joins it, then becomes iperf3). */
  iperfClient(to: string, port: number): LabProcess {
    const script = `echo $$ > ${this.cgroup}/cgroup.procs && exec nsenter --net=/run/netns/${SENDER_NS} iperf3 -c "$0" -p "$1" -t 86400 -i 0 --connect-timeout 5000`;
    return this.start(`iperf3 client → ${to}`, 'sh', ['-c', script, to, String(port)]);
  }

  /** Waits until something listens on `port` in the receiver's namespace. */
  async listening(port: number, server: LabProcess, withinMs = 10_000): Promise<void> {
    const end = Date.now() + withinMs;
    while (Date.now() < end) {
      if (!server.running) throw new DemoError(`${server.name} exited: ${server.tail()}`);
      if ((await runIn(RECEIVER_NS, 'ss', ['-Hltn', `sport = :${port}`])).stdout.trim()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new DemoError(`${server.name} did not listen within ${withinMs} ms`);
  }

  /**
   * Once the processes have stopped, `remove` runs `pacer agent teardown` for the demo's interface
   * (an agent that stops leaves its programs attached, so an upgrade has no gap: docs/agent.md).
   */
  teardownAgentOnRemove(stateDir: string): void {
    this.undo.push(async () => {
      await run(process.execPath, [CLI, 'agent', 'teardown', '--iface', IFACE, '--netns', `/run/netns/${SENDER_NS}`, '--state-dir', stateDir, '--pin-base', PIN_BASE], 60_000);
    });
  }

  private recordPids(): void {
    writeFileSync(PIDS_FILE, this.processes.map((p) => p.child.pid).filter((pid) => pid !== undefined).join('\n') + '\n');
  }

  /** Stops every process (newest first), then removes what build made, in reverse. Never throws. */
  async remove(): Promise<void> {
    for (const p of [...this.processes].reverse()) await p.stop().catch(() => {});
    rmSync(PIDS_FILE, { force: true });
    for (const step of this.undo.reverse()) await step().catch(() => {});
    this.undo.length = 0;
  }

  /** Deletes the work directory (the API's store and the logs). */
  removeWorkDir(): void {
    rmSync(this.workDir, { recursive: true, force: true });
  }
}
