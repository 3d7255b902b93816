/**
 * One real API process and one real `pacer agent` process enforcing on the sending end of a veth
 * pair between two namespaces the test makes, with the kernel's maps read back through pacer's
 * binding on the same pins (never from the agent). For agent tests with real traffic:
 *
 *   const rig = useAgentRig({ iface: 'bt0', peerIface: 'bt1', subnet: '10.94.0', peers: 2, host: 'h', labels: { zone: 'b' }, agentArgs: ['--borrow-interval', '1s'] });
 *   it('…', async () => { const id = await rig.createClass({ name: 'a', rate: '10mbit', match: { dst: [`${rig.peer(0)}/32`] } }); … rig.kernel.read() … });
 *
 * Call inside describe(): before() starts everything and waits for the agent's first heartbeat;
 * after() (even when a test or the before hook failed) kills both processes, runs `pacer agent
 * teardown`, and removes the pins, the cgroup, the temp dirs and the namespaces.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Datapath } from '../../shaper-bpf/src/datapath.js';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { CLI, freePort, killed, startAgentChild, startApiChild, until, type AgentChild, type ApiChild } from './agent-processes.js';
import { request, tokenFor } from './api-server.js';
import { makePinDir, removePinDir } from './bpffs.js';
import { PrivateCgroup2 } from './cgroup2.js';
import { useTestNetns } from './netns.js';

export interface AgentRigOptions {
  /** The shaped interface, in the sender's namespace. */
  iface: string;
  /** Its peer, in the receiver's namespace. */
  peerIface: string;
  /** The first three octets of a /24 inside 10.0.0.0/8: the sender is .1, the receiver holds .2, .3, … */
  subnet: string;
  /** How many receiver addresses (peer(0) … peer(peers - 1)). */
  peers: number;
  host: string;
  labels: Record<string, string>;
  /**
   * The agent's --cgroup-root: a private cgroup v2 root of the rig's (the default, so sock_ops never
   * attaches anywhere another test uses), or 'agent-default' for none: the agent then attaches at the
   * host's cgroup v2 root (controller/datapath/cgroup-root.ts).
   */
  cgroupRoot?: 'private' | 'agent-default';
  /** Flags added to the agent's (e.g. --borrow-interval, --influx); a function is called when the agent starts. */
  agentArgs?: readonly string[] | (() => readonly string[]);
}

export interface AgentRig {
  readonly sender: string;
  readonly receiver: string;
  readonly api: ApiChild;
  readonly agent: AgentChild;
  /** The kernel's maps, through an EgressObject loaded on the agent's pins. */
  readonly kernel: Datapath;
  /** The agent's --state-dir (snapshots, qdisc records). */
  readonly stateDir: string;
  /** The agent's --pin-base (a private directory on bpffs). */
  readonly pinBase: string;
  /** The API's store (its --db). */
  readonly dbFile: string;
  /** The i-th receiver address (no prefix length). */
  peer(i: number): string;
  /** POSTs a class (hosts defaults to this host's labels) and returns its id; throws with the API's answer otherwise. */
  createClass(body: Record<string, unknown>): Promise<number>;
  /** GET /v1/hosts/NAME: registration, labels and the last heartbeat's status. */
  hostRecord(): Promise<any>;
  /** p, or its error with the agent's last output appended. */
  withLog<T>(p: Promise<T>): Promise<T>;
  /**
   * SIGKILLs the agent and starts it again with the same flags; resolves once it logged that its
   * interface is ready (within readyWithinMs: a busy host can take long to start node).
   */
  restartAgent(readyWithinMs?: number): Promise<AgentChild>;
}

export function useAgentRig(o: AgentRigOptions): AgentRig {
  let sender = '';
  let receiver = '';
  let api: ApiChild | undefined;
  let agent: AgentChild | undefined;
  let egress: EgressObject | undefined;
  let kernel: Datapath | undefined;
  let pinBase: string | undefined;
  let stateDir: string | undefined;
  let apiDir: string | undefined;
  let cg: PrivateCgroup2 | undefined;
  let agentArgs: string[] = [];
  let token = '';
  const netnsPath = () => `/run/netns/${sender}`;

  const rig: AgentRig = {
    get sender() {
      return sender;
    },
    get receiver() {
      return receiver;
    },
    get api() {
      return api!;
    },
    get agent() {
      return agent!;
    },
    get kernel() {
      return kernel!;
    },
    get stateDir() {
      return stateDir!;
    },
    get pinBase() {
      return pinBase!;
    },
    get dbFile() {
      return join(apiDir!, 'pacer.db');
    },
    peer: (i) => {
      if (!(Number.isInteger(i) && i >= 0 && i < o.peers)) throw new RangeError(`peer(${i}): the rig has ${o.peers} receiver addresses`);
      return `${o.subnet}.${i + 2}`;
    },
    createClass: async (body) => {
      const created = await request(api!.url, 'POST', '/v1/classes', { body: { hosts: { matchLabels: o.labels }, ...body } });
      if (created.status !== 201) throw new Error(`creating class ${JSON.stringify(body)}: ${created.status} ${JSON.stringify(created.body)}`);
      return created.body.id as number;
    },
    hostRecord: async () => (await request(api!.url, 'GET', `/v1/hosts/${o.host}`)).body,
    withLog: async (p) => {
      try {
        return await p;
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- agent output ---\n${agent?.tail() ?? '(no agent)'}`);
      }
    },
    restartAgent: async (readyWithinMs = 20_000) => {
      await killed(agent?.child);
      agent = startAgentChild(agentArgs, token);
      await rig.withLog(until('the restarted agent\'s interface to be ready', () => {
        if (!agent!.running) throw new Error('the agent exited');
        return agent!.find('interface ready');
      }, readyWithinMs, 20));
      return agent;
    },
  };

  // Registered before useTestNetns, so it runs first: the interface still exists for teardown.
  after(async function () {
    this.timeout(30_000);
    await killed(agent?.child);
    await killed(api?.child);
    egress?.close();
    if (pinBase && sender && existsSync(join(pinBase, o.iface))) {
      await promisify(execFile)(process.execPath, [CLI, 'agent', 'teardown', '--iface', o.iface, '--state-dir', stateDir!, '--netns', netnsPath(), '--pin-base', pinBase]).catch((err: Error) =>
        console.error(`teardown: ${err.message}`),
      );
    }
    removePinDir(pinBase);
    await cg?.cleanup();
    for (const dir of [stateDir, apiDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const nets = useTestNetns();

  before(async function () {
    // Generous: with the host's cores busy, node (API and agent) takes far longer to start.
    this.timeout(180_000);
    sender = await nets.createTestNetns();
    receiver = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: sender, name: o.iface, addr: `${o.subnet}.1/24` }, b: { ns: receiver, name: o.peerIface, addr: `${rig.peer(0)}/24` } });
    for (let i = 1; i < o.peers; i++) await promisify(execFile)('ip', ['-n', receiver, 'addr', 'add', `${rig.peer(i)}/24`, 'dev', o.peerIface]);
    pinBase = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-agent-state-'));
    apiDir = mkdtempSync(join(tmpdir(), 'pacer-agent-api-'));
    // A private cgroup v2 root, so the agent's sock_ops never attaches anywhere another test uses.
    cg = await PrivateCgroup2.create();
    api = await startApiChild(join(apiDir, 'pacer.db'), await freePort());
    token = await tokenFor(api.url, 'agent', o.host);
    const labels = Object.entries(o.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    const extra = typeof o.agentArgs === 'function' ? o.agentArgs() : (o.agentArgs ?? []);
    agentArgs = ['--api', api.url, '--iface', o.iface, '--netns', netnsPath(), '--host', o.host, ...labels, '--state-dir', stateDir, '--pin-base', pinBase, ...(o.cgroupRoot === 'agent-default' ? [] : ['--cgroup-root', cg.base]), '--heartbeat', '1s', '--backoff-max', '1s', ...extra];
    agent = startAgentChild(agentArgs, token);
    // Installed and registered: the pins exist and the host has heartbeated once.
    await rig.withLog(
      until('the agent to install and heartbeat', async () => {
        if (!agent!.running) throw new Error('the agent exited');
        return (await rig.hostRecord())?.status?.mode ? true : undefined;
      }, 120_000, 50),
    );
    egress = EgressObject.load({ pinRoot: join(pinBase, o.iface) });
    kernel = new Datapath(egress);
  });

  return rig;
}
