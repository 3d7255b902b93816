/**
 * The agent and the kernel probe (shaper-bpf/src/kernel-features.ts), with the probe swapped in
 * the container: a kernel without what the tc program needs is refused before anything is
 * installed; one without a sock_ops feature runs without TCP tuning and says so in its status.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import pino from 'pino';
import sinon from 'sinon';
import { Agent } from '../../controller/agent.js';
import { agentModule } from '../../controller/module.js';
import { apiClientModule } from '../../controller/api-client/module.js';
import { configModule } from '../../controller/config/module.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { INTERFACE_INSTALLER, MemoryInstaller } from '../../controller/datapath/installer.js';
import { TCP_TUNER, type TcpTuner } from '../../controller/datapath/tcp-tuner.js';
import { checkKernelFeatures, KERNEL_FEATURES, KERNEL_PROBE, KernelTooOldError, type KernelProbe } from '../../shaper-bpf/src/kernel-features.js';

describe('Agent: the kernel probe at start', () => {
  let dir: string;
  let agent: Agent | undefined;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'pacer-probe-'))));
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const build = (probe: KernelProbe, tcpTuner?: TcpTuner) => {
    const installer = new MemoryInstaller(true);
    const install = sinon.spy(installer, 'install');
    const container = new Container();
    // Port 9: nothing answers; the agent retries in the background, which these tests do not need.
    const config = resolveAgentConfig({ api: 'http://127.0.0.1:9', iface: ['eth0'], host: 'probe-node', stateDir: dir, heartbeatMs: '60000' }, { PACER_TOKEN: 'pacer_test' });
    container.load(configModule(config, pino({ level: 'silent' })), apiClientModule, agentModule);
    container.bind(INTERFACE_INSTALLER).toConstantValue(installer);
    container.bind(KERNEL_PROBE).toConstantValue(probe);
    if (tcpTuner) container.bind(TCP_TUNER).toConstantValue(tcpTuner);
    return { agent: container.get(Agent), install };
  };
  /** The real probes, with the named ones made to fail. */
  const failing = (...names: RegExp[]): KernelProbe => () => checkKernelFeatures(KERNEL_FEATURES.map((f) => (names.some((n) => n.test(f.name)) ? { ...f, present: () => false } : f)));

  it('refuses to start on a kernel without BPF atomics, naming Linux 5.12, and installs nothing', async () => {
    const built = build(failing(/atomic/));
    await assert.rejects(built.agent.start(), (err: Error) => err instanceof KernelTooOldError && /Linux 5\.12 or later/.test(err.message));
    sinon.assert.notCalled(built.install);
  });

  it('without a sock_ops feature: shapes, does not install TCP tuning, and the status says why with the kernel it needs', async () => {
    const tuner = { install: sinon.stub().returns(undefined) } as unknown as TcpTuner;
    const built = build(failing(/cgroup pointer/), tuner);
    agent = built.agent;
    await agent.start();
    sinon.assert.calledOnce(built.install);
    sinon.assert.notCalled(tuner.install as sinon.SinonStub);
    const status = agent.status();
    assert.equal(status.mode, 'shaping');
    assert.match(status.lastError ?? '', /^tcp: TCP tuning not installed: this kernel lacks the cgroup pointer in struct sock_cgroup_data \(kernel BTF\) \(Linux 5\.15 or later\); no TCP tuning/);
  });
});
