/**
 * A worker thread of bench:agent's fleet part: runs a share of the agents, each a real Agent built
 * by its own inversify container (the agent's config, API client and agent modules, with a
 * MemoryInstaller bound as the interface installer, as test/controller/agent.spec.ts does), each
 * registered as its own host with its own agent token, all against one API child process.
 *
 * It reports when each agent's in-memory class_config receives the watched class's entry: the
 * table's setMany is wrapped, so the stamp is taken the moment the Datapath writes it. Times are
 * process.hrtime() in ms (bench/stats.ts nowMs), the same clock in every thread of the process.
 */
import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Container, ContainerModule } from 'inversify';
import pino from 'pino';
import { Agent } from '../controller/agent.js';
import { apiClientModule } from '../controller/api-client/module.js';
import { AgentConfig, agentConfigSchema } from '../controller/config/config.js';
import { configModule } from '../controller/config/module.js';
import { INTERFACE_INSTALLER, MemoryInstaller } from '../controller/datapath/installer.js';
import { agentModule } from '../controller/module.js';
import { memoryTables } from '../shaper-bpf/src/datapath.js';
import { nowMs } from './stats.js';

export interface FleetWorkerData {
  api: string;
  stateDir: string;
  classId: number;
  agents: Array<{ host: string; token: string }>;
}

export type FleetToWorker = { type: 'measure' } | { type: 'report' } | { type: 'stop' };
export type FleetFromWorker =
  | { type: 'ready' }
  | { type: 'failed'; error: string }
  | { type: 'applied'; writes: Array<{ host: string; rate: number; at: number }> }
  | { type: 'report'; eventLoopUtilization: number }
  | { type: 'stopped' };

export const IFACE = 'mem0';

if (parentPort) {
  const port = parentPort;
  const { api, stateDir, classId, agents } = workerData as FleetWorkerData;
  const post = (m: FleetFromWorker) => port.postMessage(m);
  // Errors only: 200 agents' info lines would cost more than what is measured.
  const logger = pino({ level: 'error' }, pino.destination(2));
  const running: Agent[] = [];
  // Stamped at the write, posted in batches: one postMessage per write would cost the thread more than the agents' own work.
  let writes: Array<{ host: string; rate: number; at: number }> = [];
  const stamp = (host: string, rate: number) => {
    if (writes.length === 0) setTimeout(() => void (post({ type: 'applied', writes }), (writes = [])), 20);
    writes.push({ host, rate, at: nowMs() });
  };

  const startOne = async ({ host, token }: { host: string; token: string }) => {
    const installer = new MemoryInstaller(true);
    const tables = memoryTables();
    const write = tables.config.setMany.bind(tables.config);
    tables.config.setMany = (entries) => {
      write(entries);
      for (const [, c] of entries) if (c.class_id === classId) stamp(host, c.rate_bps);
    };
    installer.tables.set(IFACE, tables);
    const settings = agentConfigSchema.parse({ api, iface: [IFACE], host, stateDir: join(stateDir, host), label: { fleet: 'bench' } });
    mkdirSync(settings.stateDir, { recursive: true });
    const container = new Container();
    container.load(
      configModule(new AgentConfig(settings, token), logger),
      apiClientModule,
      new ContainerModule(({ bind }) => void bind(INTERFACE_INSTALLER).toConstantValue(installer)),
      agentModule,
    );
    const agent = container.get(Agent);
    await agent.start();
    running.push(agent);
  };

  let elu = performance.eventLoopUtilization();
  port.on('message', (m: FleetToWorker) => {
    if (m.type === 'measure') elu = performance.eventLoopUtilization();
    else if (m.type === 'report') post({ type: 'report', eventLoopUtilization: performance.eventLoopUtilization(elu).utilization });
    else if (m.type === 'stop') {
      void Promise.allSettled(running.map((a) => a.stop())).then(() => {
        post({ type: 'stopped' });
        port.close();
      });
    }
  });
  Promise.all(agents.map(startOne)).then(
    () => post({ type: 'ready' }),
    (err: unknown) => post({ type: 'failed', error: (err as Error).stack ?? String(err) }),
  );
}
