/**
 * The agent's settings: flags, then PACER_* environment variables, then a JSON or YAML file
 * (--config), then defaults. One zod schema checks the merged result, so every source gets the
 * same error messages.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { LOG_FORMATS } from '../../api/cli/logger.js';
import { DEFAULT_STATE_DIR } from '../reconciler/snapshot-names.js';

const labels = z.union([z.array(z.string()), z.record(z.string(), z.string())]).transform((v, ctx) => {
  if (!Array.isArray(v)) return v;
  const out: Record<string, string> = {};
  for (const kv of v) {
    const eq = kv.indexOf('=');
    if (eq <= 0) ctx.addIssue({ code: 'custom', message: `label "${kv}" is not k=v` });
    else out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
});

export const agentConfigSchema = z.strictObject({
  api: z.string().url(),
  iface: z.array(z.string().min(1)).min(1, 'at least one --iface'),
  label: labels.default({}),
  stateDir: z.string().default(DEFAULT_STATE_DIR),
  metricsListen: z.string().optional(),
  /** InfluxDB 1.x URL with the database as path, e.g. http://127.0.0.1:8086/pacer: per class metrics every second. */
  influx: z.string().url().refine((u) => /^https?:\/\/[^/]+\/[^/]+/.test(u), 'must be http(s)://host:port/database').optional(),
  host: z.string().default(hostname()),
  netns: z.string().optional(),
  tokenFile: z.string().optional(),
  pinBase: z.string().optional(),
  /** cgroup v2 directory for TCP tuning (sock_ops attaches there) and where class cgroup paths are resolved. */
  cgroupRoot: z.string().optional(),
  resyncMs: z.coerce.number().int().min(100).default(30_000),
  heartbeatMs: z.coerce.number().int().min(100).default(10_000),
  /** Every API request but the watch (heartbeat, registration, list) is given up after this long; one heartbeat is in flight at a time. */
  requestTimeoutMs: z.coerce.number().int().min(100).default(10_000),
  /** How often the stats maps are read and borrowed rates recomputed; 0 = no borrowing (every class at its rate). */
  borrowIntervalMs: z.coerce.number().int().refine((v) => v === 0 || v >= 100, 'must be 0 (off) or at least 100 ms').default(1_000),
  /** How often each interface's root qdisc is checked for fq (policing without it); 0 = only at start. */
  qdiscCheckMs: z.coerce.number().int().refine((v) => v === 0 || v >= 100, 'must be 0 (off) or at least 100 ms').default(1_000),
  /** TCP rto_min for prefix-matched classes as a route metric on pacer's own routes (docs/agent.md). */
  routeTuning: z.union([z.boolean(), z.enum(['on', 'off', 'true', 'false'])], { message: 'must be on or off' }).transform((v) => v === true || v === 'on' || v === 'true').default(true),
  backoffMinMs: z.coerce.number().int().min(1).default(500),
  backoffMaxMs: z.coerce.number().int().min(1).default(30_000),
  logLevel: z.string().default('info'),
  /** json | pretty; absent: pretty when stdout is a terminal, else json (api/cli/logger.ts). */
  logFormat: z.enum(LOG_FORMATS).optional(),
});
export type AgentSettings = z.output<typeof agentConfigSchema>;

/** The resolved configuration; a class so it is its own injection token. */
export class AgentConfig {
  constructor(
    readonly settings: AgentSettings,
    readonly token: string,
  ) {}
}

const ENV: Record<string, keyof AgentSettings> = {
  PACER_API: 'api',
  PACER_IFACE: 'iface',
  PACER_LABEL: 'label',
  PACER_STATE_DIR: 'stateDir',
  PACER_METRICS_LISTEN: 'metricsListen',
  PACER_INFLUX: 'influx',
  PACER_HOST: 'host',
  PACER_NETNS: 'netns',
  PACER_TOKEN_FILE: 'tokenFile',
  PACER_PIN_BASE: 'pinBase',
  PACER_CGROUP_ROOT: 'cgroupRoot',
  PACER_BACKOFF_MAX_MS: 'backoffMaxMs',
  PACER_RESYNC_MS: 'resyncMs',
  PACER_HEARTBEAT_MS: 'heartbeatMs',
  PACER_REQUEST_TIMEOUT_MS: 'requestTimeoutMs',
  PACER_BORROW_INTERVAL_MS: 'borrowIntervalMs',
  PACER_QDISC_CHECK_MS: 'qdiscCheckMs',
  PACER_ROUTE_TUNING: 'routeTuning',
  PACER_LOG_LEVEL: 'logLevel',
  PACER_LOG_FORMAT: 'logFormat',
};
const LISTS = new Set<string>(['iface', 'label']);

export function resolveAgentConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const configFile = (flags.config as string | undefined) ?? env.PACER_CONFIG;
  const file = configFile ? (parseYaml(readFileSync(configFile, 'utf8')) as Record<string, unknown>) ?? {} : {}; // YAML is a superset of JSON
  const fromEnv: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') fromEnv[key] = LISTS.has(key) ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  }
  const fromFlags = Object.fromEntries(Object.entries(flags).filter(([k, v]) => k !== 'config' && v !== undefined && !(Array.isArray(v) && v.length === 0)));
  const parsed = agentConfigSchema.safeParse({ ...file, ...fromEnv, ...fromFlags });
  if (!parsed.success) throw new Error(`agent configuration: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ')}`);
  const s = parsed.data;
  const token = env.PACER_TOKEN || (s.tokenFile ? readFileSync(s.tokenFile, 'utf8').trim() : '');
  if (!token) throw new Error('no API token: set PACER_TOKEN or pass --token-file FILE (an agent token bound to this host)');
  return new AgentConfig(s, token);
}
