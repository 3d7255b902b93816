/**
 * The enforcement lab, INSIDE the VM (vm/runner.ts boots it): two network namespaces joined
 * by a veth pair, pacer's API (`pacer api`, its embedded SQLite store) and pacer's agent
 * (`pacer agent --netns …`) as real child processes in the guest's root namespace, iperf3 servers
 * on the receiving side, and readers of what the kernel holds (pacer's pinned maps through pacer's
 * binding, the tc filter's program id).
 *
 * Budgets only ever come from REST calls to the API, and only the agent writes the maps: the lab
 * never configures the data plane itself. Used by guest-enforcement.ts (the test tier) and
 * bench/enforcement-guest.ts (the benchmark).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { Datapath, type DelayHistogram } from '../../shaper-bpf/src/datapath.js';
import { run } from '../../shaper-bpf/src/exec.js';
import { filterOf } from '../../shaper-bpf/src/interface.js';
import { tcQuery } from '../../shaper-bpf/src/libbpf/index.js';
import type { ClassConfig, ClassStats } from '../../shaper-bpf/src/layout.js';
import { ADMIN_TOKEN, request } from '../support/api-server.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { CLI, freePort, killed, startAgentChild, startApiChild, until, type AgentChild, type ApiChild } from '../support/agent-processes.js';
import { execIn, TestNetns } from '../support/netns.js';

/** The sending end (pacer enforces on its egress) and the receiving end of the veth pair. */
export const IFACE = 'pe0';
const PEER_IFACE = 'pe1';
const SENDER_ADDR = '10.96.0.1/24';
/** Receiver addresses; each class selects one of them by a /32 destination prefix. */
export const RECEIVERS = ['10.96.0.2', '10.96.0.3', '10.96.0.4', '10.96.0.5', '10.96.0.6', '10.96.0.7', '10.96.0.8'] as const;
export const HOST = 'enforcement-1';
const LABELS = { tier: 'enforcement' };
/** Every wait in the guest is long: node runs 10–20× slower under TCG (machine.md). */
export const GUEST_WAIT_MS = 60_000;

/** Monotonic milliseconds since the lab started: all timings in a report share this clock. */
const t0 = performance.now();
const t0Ns = process.hrtime.bigint();
export const now = (): number => Math.round(performance.now() - t0);
/** A CLOCK_MONOTONIC reading (process.hrtime.bigint(), in any process of the guest) on the lab's clock. */
export const labMs = (monotonicNs: bigint): number => Math.round(Number(monotonicNs - t0Ns) / 1e5) / 10;

export interface IperfRun {
  to: string;
  /** Lab clock when the client was spawned and when it exited. */
  spawnedAtMs: number;
  exitedAtMs: number;
  /** Receiver-side throughput of each 1 s interval, Mbit/s (the server's own intervals). */
  receiverMbps: number[];
  /** Sender-side throughput of each interval, Mbit/s (what was written into the socket). */
  senderMbps: number[];
  /** The whole run as the receiver counted it: payload bytes and Mbit/s. */
  receivedBytes: number;
  receivedMbps: number;
  retransmits: number;
  /** The sender's largest congestion window during the run, bytes (iperf3's max_snd_cwnd). */
  maxCwndBytes: number;
  /** The connection's MSS (payload bytes of a full segment). */
  mss: number;
  /**
   * Wire bytes per payload byte of full segments: pacer's budgets are wire rates (wire_len: the
   * Ethernet frame, as tc counts), iperf3 counts TCP payload. (MSS + 66) / MSS, 66 = Ethernet 14
   * + IPv4 20 + TCP 20 + timestamps 12; the rate50 scenario checks it against the receiving
   * interface's own byte counter.
   */
  wireFactor: number;
}

/** Ethernet + IPv4 + TCP headers with the timestamp option: a full segment's bytes beyond its payload. */
export const TCP_FRAME_OVERHEAD = 14 + 20 + 20 + 12;

const mbps = (bitsPerSecond: number): number => Math.round(bitsPerSecond / 1e4) / 100;

export class Lab {
  readonly nets = new TestNetns();
  sender = '';
  receiver = '';
  netnsPath = '';
  pinBase = '';
  private stateDir = '';
  private apiDir = '';
  api: ApiChild | undefined;
  agent: AgentChild | undefined;
  private readonly servers: ChildProcess[] = [];
  private reader: { egress: EgressObject; datapath: Datapath } | undefined;

  /** Namespaces, veth, addresses, the API and a registered agent. Throws with the agent's output on failure. */
  async start(log: (msg: string) => void = () => {}): Promise<void> {
    // The API starts while the namespaces are made: node's start-up is the slow part under TCG.
    this.apiDir = mkdtempSync(join(tmpdir(), 'pacer-enf-api-'));
    // The guest's own root namespace: the API and the agent talk over its loopback.
    await run('ip', ['link', 'set', 'lo', 'up']);
    const port = await freePort();
    const api = startApiChild(join(this.apiDir, 'pacer.db'), port);
    api.catch(() => {}); // awaited below
    this.sender = await this.nets.createTestNetns();
    this.receiver = await this.nets.createTestNetns();
    this.netnsPath = `/run/netns/${this.sender}`;
    await this.nets.vethPair({ a: { ns: this.sender, name: IFACE, addr: SENDER_ADDR }, b: { ns: this.receiver, name: PEER_IFACE, addr: `${RECEIVERS[0]}/24` } });
    for (const addr of RECEIVERS.slice(1)) await execIn(this.receiver, 'ip', ['addr', 'add', `${addr}/24`, 'dev', PEER_IFACE]);
    this.pinBase = makePinDir();
    this.stateDir = mkdtempSync(join(tmpdir(), 'pacer-enf-state-'));
    log(`namespaces and veth ready (${now()} ms)`);
    // The agent starts while the API is still starting (it retries until the API answers), so it
    // authenticates with the admin token: an agent token can only be made through the running API,
    // and waiting for it costs 30–60 s of node start-up under TCG. (Agent tokens bound to a host
    // are tested by test/agent/agent-kernel.spec.ts.)
    this.startAgent(`http://127.0.0.1:${port}`);
    this.api = await api;
    log(`API listening at ${this.api.url} (${now()} ms)`);
    await this.withAgentLog(until('the agent to install and heartbeat', async () => ((await this.host())?.status?.mode ? true : undefined), 2 * GUEST_WAIT_MS, 200));
    log(`agent installed and heartbeating (${now()} ms)`);
  }

  startAgent(apiUrl = this.api!.url): AgentChild {
    const args = [
      '--api', apiUrl, '--iface', IFACE, '--netns', this.netnsPath, '--host', HOST,
      ...Object.entries(LABELS).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      '--state-dir', this.stateDir, '--pin-base', this.pinBase, '--backoff-max', '1s',
      // No sock_ops here: the scenarios prove fq pacing, and the control's policer must meet unpaced
      // TCP (sock_ops' default attach at the cgroup v2 root is tested on the host kernel).
      '--cgroup-root', 'off',
      // Every heartbeat wakes two node processes in a 2-vCPU guest; the agent also heartbeats at
      // once on every apply and mode change, which is what the scenarios wait for.
      '--heartbeat', '5s',
    ];
    this.agent = startAgentChild(args, ADMIN_TOKEN);
    return this.agent;
  }

  /** Runs `p`; on failure, adds the end of the agent's output to the error. */
  async withAgentLog<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${this.agent?.tail() ?? '(no agent)'}`);
    }
  }

  /** The host record, status included, as the API has it. */
  async host(): Promise<any> {
    return (await request(this.api!.url, 'GET', `/v1/hosts/${HOST}`)).body;
  }

  /** POST /v1/classes; resolves with the created class (its id). Selects the lab's host by label. */
  async createClass(body: Record<string, unknown>): Promise<{ id: number; revision: number }> {
    const r = await request(this.api!.url, 'POST', '/v1/classes', { body: { hosts: { matchLabels: LABELS }, ...body } });
    if (r.status !== 201) throw new Error(`POST /v1/classes ${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** PATCH a class with its current ETag (the API requires If-Match). */
  async patchClass(name: string, patch: Record<string, unknown>): Promise<{ id: number; revision: number }> {
    const got = await request(this.api!.url, 'GET', `/v1/classes/${name}`);
    const r = await request(this.api!.url, 'PATCH', `/v1/classes/${name}`, { body: patch, headers: { 'if-match': got.body.etag } });
    if (r.status !== 200) throw new Error(`PATCH /v1/classes/${name}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async deleteClass(name: string): Promise<void> {
    const got = await request(this.api!.url, 'GET', `/v1/classes/${name}`);
    const r = await request(this.api!.url, 'DELETE', `/v1/classes/${name}`, { headers: { 'if-match': got.body.etag } });
    if (r.status !== 204 && r.status !== 200) throw new Error(`DELETE /v1/classes/${name}: ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** pacer's pinned maps, read through pacer's binding (opened once, on the agent's pins). */
  private kernel(): Datapath {
    if (!this.reader) {
      const egress = EgressObject.load({ pinRoot: join(this.pinBase, IFACE) });
      this.reader = { egress, datapath: new Datapath(egress) };
    }
    return this.reader.datapath;
  }

  /** The class as the kernel's class_config holds it now (undefined: not in the maps). */
  kernelClass(id: number): ClassConfig | undefined {
    return this.kernel().read().classes.get(id);
  }

  /** The rate the kernel enforces for a class now, bits/s (undefined: not in the maps). */
  kernelRate(id: number): number | undefined {
    return this.kernelClass(id)?.rate_bps;
  }

  /** Resolves once the kernel's class_config holds `rateBps` for the class; returns the lab time. */
  async kernelRateIs(id: number, rateBps: number): Promise<number> {
    await this.withAgentLog(until(`class ${id} at ${rateBps} bit/s in class_config`, () => (this.kernelRate(id) === rateBps ? true : undefined), GUEST_WAIT_MS, 20));
    return now();
  }

  /** The settings flags of the interface's maps (SETTINGS_POLICING is set by the agent under policing). */
  kernelSettingsFlags(): number {
    return this.kernel().read().settings.flags;
  }

  /** Per-class counters as the data plane has them (summed over CPUs). */
  stats(id: number): ClassStats {
    const s = this.kernel().stats().classes.get(id);
    if (!s) throw new Error(`class ${id} has no slot in the data plane`);
    return s;
  }

  /** The class's queueing-delay histogram in the data plane (every packet since its slot was made). */
  delayHistogram(id: number): DelayHistogram {
    const h = this.kernel().delayHistogram(id);
    if (!h) throw new Error(`class ${id} has no delay histogram in the data plane`);
    return h;
  }

  /**
   * Bytes the sender's root qdisc (fq) has sent: the kernel's qdisc_pkt_len, which counts a GSO
   * packet as the frames it becomes on the wire (the veth's own rx counter counts it as one).
   */
  async sentWireBytes(): Promise<number> {
    const qdiscs = JSON.parse(await execIn(this.sender, 'tc', ['-s', '-j', 'qdisc', 'show', 'dev', IFACE, 'root'])) as Array<{ kind: string; bytes: number }>;
    return qdiscs[0]!.bytes;
  }

  /** The id of the BPF program attached as pacer's tc egress filter (undefined: none). */
  programId(): number | undefined {
    return tcQuery(filterOf({ iface: IFACE, netns: this.netnsPath }));
  }

  /** Runs a command in the sender's namespace (fault injection: replacing the root qdisc). */
  inSender(cmd: string, args: readonly string[]): Promise<string> {
    return execIn(this.sender, cmd, args);
  }

  /** An iperf3 server in the receiver's namespace with JSON output (so clients get its intervals). */
  async iperfServer(port: number): Promise<void> {
    const child = spawn('nsenter', [`--net=/run/netns/${this.receiver}`, 'iperf3', '-s', '-J', '-p', String(port)], { stdio: 'ignore' });
    this.servers.push(child);
    await until(`iperf3 -s on port ${port}`, async () => {
      if (child.exitCode !== null) throw new Error(`iperf3 -s -p ${port} exited with ${child.exitCode}`);
      return (await execIn(this.receiver, 'ss', ['-Hltn', `sport = :${port}`])).trim() ? true : undefined;
    }, GUEST_WAIT_MS, 100);
  }

  /**
   * TCP from the sender's namespace for `seconds`, 1 s intervals. Resolves with the receiver's
   * intervals too (`--get-server-output`), which measure what arrived rather than what was written.
   * `extra`: more client options (e.g. `-C reno`).
   */
  iperf(to: string, port: number, seconds: number, extra: readonly string[] = []): Promise<IperfRun> {
    const spawnedAtMs = now();
    const child = spawn('nsenter', [`--net=${this.netnsPath}`, 'iperf3', '-c', to, '-p', String(port), '-t', String(seconds), '-i', '1', '-J', '--get-server-output', '--connect-timeout', '10000', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      let exitedAtMs = NaN;
      child.once('exit', () => (exitedAtMs = now()));
      // 'close', not 'exit': the process may exit before its stdout has all been read.
      child.once('close', (code) => {
        let report: any;
        try {
          report = JSON.parse(out);
        } catch {
          return reject(new Error(`iperf3 -c ${to}:${port} exited ${code}, output is not JSON: ${err || out.slice(0, 500)}`));
        }
        if (code !== 0 || report.error) return reject(new Error(`iperf3 -c ${to}:${port} exited ${code}: ${report.error ?? err}`));
        const server = report.server_output_json;
        if (!server?.intervals) return reject(new Error(`iperf3 -c ${to}:${port}: no server JSON (is the server started with -J?)`));
        resolve({
          to,
          spawnedAtMs,
          exitedAtMs,
          receiverMbps: server.intervals.map((i: any) => mbps(i.sum.bits_per_second)),
          senderMbps: report.intervals.map((i: any) => mbps(i.sum.bits_per_second)),
          receivedBytes: report.end.sum_received.bytes,
          receivedMbps: mbps(report.end.sum_received.bits_per_second),
          retransmits: report.end.sum_sent.retransmits ?? 0,
          maxCwndBytes: report.end.streams?.[0]?.sender?.max_snd_cwnd ?? NaN,
          mss: report.start.tcp_mss_default,
          wireFactor: (report.start.tcp_mss_default + TCP_FRAME_OVERHEAD) / report.start.tcp_mss_default,
        });
      });
    });
  }

  /**
   * Stops everything the lab started and removes what it made. The guest powers off after the
   * run anyway; this keeps a run on a host (for debugging) clean too.
   */
  async stop(): Promise<void> {
    for (const s of this.servers) s.kill('SIGKILL');
    this.reader?.egress.close();
    await killed(this.agent?.child, 'SIGTERM');
    await killed(this.api?.child);
    if (this.pinBase && this.netnsPath) {
      await run(process.execPath, [CLI, 'agent', 'teardown', '--iface', IFACE, '--state-dir', this.stateDir, '--netns', this.netnsPath, '--pin-base', this.pinBase], GUEST_WAIT_MS);
    }
    removePinDir(this.pinBase);
    for (const dir of [this.stateDir, this.apiDir]) if (dir) rmSync(dir, { recursive: true, force: true });
    await sleep(100); // the SIGKILLed servers leave their namespace
    await this.nets.cleanup();
  }
}
