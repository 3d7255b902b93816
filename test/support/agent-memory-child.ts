/**
 * `pacer agent` as the CLI runs it (start, wait for SIGTERM/SIGINT, stopWithin), with an
 * in-memory datapath instead of the kernel's: for controller tests that need a real agent
 * process (signals, exit codes, files left behind) without bpffs or root.
 *
 * Env: PACER_API, PACER_TOKEN, PACER_STATE_DIR, PACER_HOST; prints pino lines on stdout.
 */
import 'reflect-metadata';
import { Container } from 'inversify';
import pino from 'pino';
import { Agent } from '../../controller/agent.js';
import { apiClientModule } from '../../controller/api-client/module.js';
import { resolveAgentConfig } from '../../controller/config/config.js';
import { configModule } from '../../controller/config/module.js';
import { INTERFACE_INSTALLER, MemoryInstaller } from '../../controller/datapath/installer.js';
import { agentModule } from '../../controller/module.js';
import { signalled, stopWithin } from '../../controller/shutdown.js';

const log = pino({ level: 'info' });
const config = resolveAgentConfig({ iface: ['mem0'], borrowIntervalMs: '0', qdiscCheckMs: '0', routeTuning: 'off' });
const container = new Container();
container.load(configModule(config, log), apiClientModule, agentModule);
container.bind(INTERFACE_INSTALLER).toConstantValue(new MemoryInstaller(true));
const agent = container.get(Agent);
await agent.start();
log.info('agent started');
await signalled();
process.exit(await stopWithin(agent, log));
