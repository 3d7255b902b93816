/**
 * `pacer agent`: the composition root of the agent. The inversify container is built here, once;
 * nothing below looks things up in it.
 */
import 'reflect-metadata';
import { Command } from 'commander';
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { PIN_BASE } from '../shaper-bpf/src/interface.js';
import { Container } from 'inversify';
import { Agent } from './agent.js';
import { agentModule } from './module.js';
import { apiClientModule } from './api-client/module.js';
import { configModule, LOGGER, type Logger } from './config/module.js';
import { signalled, stopWithin } from './shutdown.js';
import { kernelDatapathModule } from './datapath/module.js';
import { resolveAgentConfig } from './config/config.js';
import { DEFAULT_STATE_DIR } from './reconciler/snapshot-names.js';
import { createLogger, LOG_FORMAT_HELP } from '../api/cli/logger.js';
import { KernelInstaller } from './datapath/installer.js';
import { TCP_PIN_DIR, uninstallTcp } from './datapath/tcp-tuner.js';
import { KernelRouteTuner } from './datapath/route-tuner.js';
import { parseDuration } from '../api/contract/units.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];
/** A duration flag ("1s", "250ms") in whole milliseconds. */
const millis = (v: string) => Math.round(parseDuration(v) / 1e6);

export function buildContainer(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Container {
  const container = new Container();
  const config = resolveAgentConfig(flags, env);
  const { logLevel, logFormat } = config.settings;
  container.load(configModule(config, createLogger({ level: logLevel }, logFormat)), apiClientModule, kernelDatapathModule, agentModule);
  return container;
}

export function agentCommand(): Command {
  const cmd = new Command('agent')
    .description('run the per-host agent: follow the API\'s classes for this host and enforce them on each interface')
    .option('--api <url>', 'budgets API base URL (env PACER_API)')
    .option('--iface <name>', 'interface to enforce on; repeat for several (env PACER_IFACE, comma-separated)', collect)
    .option('--label <k=v>', 'label of this host, selects classes by hosts.matchLabels; repeatable (env PACER_LABEL)', collect)
    .option('--state-dir <dir>', 'where the last-known-good snapshot and qdisc records live (env PACER_STATE_DIR; default /var/lib/pacer)')
    .option('--metrics-listen <addr>', 'serve Prometheus /metrics on host:port (env PACER_METRICS_LISTEN)')
    .option('--influx <url>', 'write per class metrics every second to InfluxDB 1.x, database in the path, e.g. http://127.0.0.1:8086/pacer (env PACER_INFLUX)')
    .option('--host <name>', 'host name registered with the API; the token must be bound to it (env PACER_HOST; default hostname)')
    .option('--netns <path>', 'network namespace of the interfaces (env PACER_NETNS)')
    .option('--pin-base <dir>', 'bpffs directory for pins (env PACER_PIN_BASE; default /sys/fs/bpf/pacer)')
    .option('--cgroup-root <dir>', 'cgroup v2 directory: sock_ops (TCP tuning, and TCP pacing under policing) is attached there through a pinned link, and class cgroup paths are resolved below it; default: the root of the cgroup v2 hierarchy, mounted at /run/pacer/cgroup2 if the host has no cgroup2 mount; "off": no sock_ops (env PACER_CGROUP_ROOT)')
    .option('--token-file <file>', 'file holding the agent token (else env PACER_TOKEN)')
    .option('--resync <duration>', 'how often the maps are compared with the desired state and drift repaired, e.g. 30s (env PACER_RESYNC_MS, in ms; default 30s)', millis)
    .option('--heartbeat <duration>', 'how often the status is sent to the API, e.g. 10s (env PACER_HEARTBEAT_MS, in ms; default 10s)', millis)
    .option('--borrow-interval <duration>', 'how often measured usage is read from the stats maps and borrowed rates recomputed, e.g. 1s; 0 turns borrowing off (env PACER_BORROW_INTERVAL_MS, in ms; default 1s)', millis)
    .option('--qdisc-check <duration>', 'how often each interface is checked: pacer\'s tc program still attached (re-attached if not: docs/agent.md "Lapses"), and fq at the root (without fq the interface polices, with fq back it shapes again); 0s checks only at start (env PACER_QDISC_CHECK_MS, in ms; default 1s)', millis)
    .option('--route-tuning <on|off>', 'TCP rto_min of classes selected by destination prefix as a route metric on pacer\'s own routes (proto 112) in the interfaces\' network namespace (env PACER_ROUTE_TUNING; default on)')
    .option('--backoff-max <duration>', 'longest wait between attempts to reach the API, e.g. 30s (default 30s)', millis)
    .option('--log-format <json|pretty>', `log format: ${LOG_FORMAT_HELP} (env PACER_LOG_FORMAT)`)
    .option('--config <file>', 'JSON or YAML file with any of these settings (camelCase keys; env PACER_CONFIG)')
    .action(async (opts: Record<string, unknown>) => {
      // Durations come in as flags with units; the settings hold them in milliseconds.
      const { resync, heartbeat, backoffMax, borrowInterval, qdiscCheck, ...rest } = opts;
      const container = buildContainer({ ...rest, resyncMs: resync, heartbeatMs: heartbeat, backoffMaxMs: backoffMax, borrowIntervalMs: borrowInterval, qdiscCheckMs: qdiscCheck });
      const agent = container.get(Agent);
      await agent.start();
      // SIGTERM/SIGINT: stop following the API, within a deadline; programs and maps stay attached and pinned.
      // A fatal error (the API refused the token) stops it the same way, then exits 1 with the fix.
      const why = await Promise.race([signalled(), agent.fatal]);
      const code = await stopWithin(agent, container.get<Logger>(LOGGER));
      if (why instanceof Error) {
        process.stderr.write(`pacer: ${why.message}\n`);
        process.exit(1);
      }
      process.exit(code);
    });
  cmd
    .command('teardown')
    .description('remove what the agent installed on the interfaces, restore their previous qdiscs, and delete pacer\'s rto_min routes (proto 112)')
    .option('--iface <name>', 'interface; repeatable (required)', collect)
    .option('--state-dir <dir>', 'state directory the agent used (default /var/lib/pacer)')
    .option('--netns <path>', 'network namespace of the interfaces')
    .option('--pin-base <dir>', 'bpffs directory for pins')
    .action(async (local: Record<string, unknown>, command: Command) => {
      // `agent` has the same flags and the root program does not use positional options, so
      // commander hands `pacer agent teardown --iface X …` flags to `agent`, not to teardown:
      // read them from both (teardown's own win).
      const defined = Object.fromEntries(Object.entries(local).filter(([, v]) => v !== undefined));
      const opts = { ...command.parent?.opts(), ...defined } as { iface?: string[]; stateDir?: string; netns?: string; pinBase?: string };
      if (!opts.iface?.length) throw new Error('agent teardown: --iface is required');
      const installer = new KernelInstaller({ stateDir: opts.stateDir ?? DEFAULT_STATE_DIR, netns: opts.netns, pinBase: opts.pinBase });
      const removed: string[] = [];
      for (const iface of opts.iface) removed.push(...(await installer.uninstall(iface)));
      // TCP tuning is host-wide: its pinned sock_ops link and maps go too.
      const pinBase = opts.pinBase ?? PIN_BASE;
      const tcp = uninstallTcp(pinBase, opts.stateDir ?? DEFAULT_STATE_DIR);
      if (tcp.pins) removed.push(`TCP tuning: the sock_ops link and its maps under ${join(pinBase, TCP_PIN_DIR)}`);
      if (tcp.unmounted) removed.push(`the cgroup v2 mount at ${tcp.unmounted} (the agent made it for sock_ops)`);
      // pacer's rto_min routes (proto 112) in the interfaces' network namespace.
      new KernelRouteTuner({ netns: opts.netns }).uninstall();
      // The pin directory, once nothing of pacer's is left in it.
      if (existsSync(pinBase) && readdirSync(pinBase).length === 0) {
        rmdirSync(pinBase);
        removed.push(`the empty pin directory ${pinBase}`);
      }
      process.stdout.write(removed.length === 0 ? 'nothing of pacer\'s was installed here\n' : `removed:\n${removed.map((r) => `- ${r}\n`).join('')}`);
    });
  return cmd;
}
