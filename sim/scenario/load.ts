/**
 * Reads a scenario: YAML → zod (shape, units) → cross-references, then resolves it into what
 * run.ts builds from. Every error names the field's path and its line:column in the file, so a
 * planner can fix a 200-line scenario without guessing; anything that could be read two ways is
 * refused rather than guessed.
 */
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import ipaddr from 'ipaddr.js';
import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { toSpec, selectsHost, type ClassSpec } from '../../api/contract/class.js';
import { burstWarning, rateUnitWarnings } from '../../api/contract/class-warnings.js';
import { checkClassSet } from '../../api/contract/consistency.js';
import { bytesRateWarning } from '../../api/contract/units.js';
import type { EdtClassConfig } from '../../shaper-bpf/src/edt.js';
import type { DropTailConfig } from '../net/port.js';
import type { SharedBufferConfig } from '../net/shared-buffer.js';
import { tcpConfig, type TcpConfig } from '../tcp/tcp.js';
import type { LinkSpec } from '../topology/star.js';
import { CdfError, loadCdf, scenarioDir, type SizeCdf } from '../workload/cdf.js';
import type { PeriodKind } from '../workload/random.js';
import { scenarioSchema, type BulkInput, type RpcInput, type ScenarioInput } from './schema.js';

export type Path = ReadonlyArray<string | number>;

export interface ScenarioIssue {
  path: Path;
  line: number;
  col: number;
  message: string;
}

/** One issue as editors read it: file:line:col, then the field and what is wrong with it. */
export function issueText(file: string, i: ScenarioIssue): string {
  return `${file}:${i.line}:${i.col}: ${pathText(i.path)}: ${i.message}`;
}

export class ScenarioError extends Error {
  constructor(readonly file: string, readonly issues: ScenarioIssue[]) {
    super(issues.map((i) => issueText(file, i)).join('\n'));
    this.name = 'ScenarioError';
  }
}

export function pathText(path: Path): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s === '' ? '(top level)' : s;
}

export interface SimHost {
  name: string;
  address: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
  labels: Record<string, string>;
  link: LinkSpec;
  /** The pacer classes installed on this host (hosts.matchLabels), by id. */
  classes: Map<number, EdtClassConfig>;
}

export interface SimClass {
  id: number;
  spec: ClassSpec;
  edt: EdtClassConfig;
}

/** Which class a flow's packets get in each direction (0 = unclassified), and its TCP settings. */
interface Traffic {
  cls: number;
  /** ACKs (and incast requests) go the other way, classified by their own destination. */
  ackCls: number;
  tcp: TcpConfig;
  startNs: number;
  jitterNs: number;
}

/** One direction of an RPC between two hosts: its class, its ACKs' class and its TCP settings. */
export interface RpcRoute {
  cls: number;
  ackCls: number;
  tcp: TcpConfig;
}

/** A client–server pair of an RPC workload and how each direction is classified. */
export interface RpcPair {
  client: string;
  server: string;
  /** Server → client: the workload's selectors, or the client's destination prefix. */
  response: RpcRoute;
  /** Client → server: the server's destination prefix. */
  request: RpcRoute;
}

/** Default FCT buckets, bytes: (0, 100 KB], (100 KB, 10 MB], above — the pFabric and HOMA papers' split. */
export const DEFAULT_RPC_BUCKETS = [100_000, 10_000_000];

export type SimWorkload =
  | ({ kind: 'bulk'; index: number; from: string; to: string; flows: number; bytes: number | null } & Traffic)
  | ({ kind: 'incast'; index: number; client: string; servers: string[]; blockBytes: number; rounds: number } & Traffic)
  | ({
      kind: 'rpc';
      index: number;
      clients: string[];
      servers: string[];
      /** By client, in `clients` order: the pairs a request from that client may use. */
      pairs: RpcPair[][];
      cdf: SizeCdf;
      /** The load asked for (fraction of the clients' total link rate), or null when given as a rate. */
      load: number | null;
      arrivalsPerSecond: number;
      requestBytes: number;
      count: number | null;
      buckets: number[];
    } & Traffic)
  | ({ kind: 'onoff'; index: number; from: string; to: string; flows: number; rateBps: number; onNs: number; offNs: number; periods: PeriodKind } & Traffic);

export interface Scenario {
  name: string;
  description: string;
  seed: number;
  durationNs: number;
  binNs: number;
  switchPort: DropTailConfig;
  /** The switch's shared packet memory, if any (every port draws from it). */
  sharedBuffer: SharedBufferConfig | null;
  hosts: SimHost[];
  classes: SimClass[];
  workloads: SimWorkload[];
  /** Likely mistakes the scenario runs with anyway (a rate in a bytes unit spelled like bits…); `pacer sim run` prints them. */
  warnings: ScenarioIssue[];
}

const DEFAULT_BIN_NS = 100_000_000;

/** Reads and validates a scenario file; throws ScenarioError (or the fs error) on failure. */
/**
 * Classes that replace the file's (`--classes-from-api`): the API's class list as `pacer class ls
 * --json` gives it. Only those that apply to a scenario host (hosts.matchLabels) are kept, with
 * their ancestors, as an agent on each host installs them.
 */
export interface ClassesOverride {
  classes: unknown[];
  /** Where they came from, for error messages: "the API at http://…". */
  source: string;
}

export function loadScenarioFile(file: string, override?: ClassesOverride): Scenario {
  return loadScenario(readFileSync(file, 'utf8'), file, override);
}

export function loadScenario(text: string, file = '<scenario>', override?: ClassesOverride): Scenario {
  const lc = new LineCounter();
  // uniqueKeys: a key given twice is ambiguous (which one wins?), so YAML's error stands.
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => lc.linePos(offset);
  if (doc.errors.length > 0) {
    throw new ScenarioError(file, doc.errors.map((e) => ({ path: [], ...at(e.pos[0]), message: e.message.split('\n')[0]! })));
  }
  const issue = (path: Path, message: string, key?: string): ScenarioIssue => ({ path: key ? [...path, key] : path, ...at(locate(doc, path, key)), message });
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  if (override) (raw as Record<string, unknown>).classes = applicableClasses(raw, override.classes);
  // A class from the API has no place in the file: its issues say where it came from instead.
  const from = (path: Path, message: string) => (override && path[0] === 'classes' ? `${message} (this class is from ${override.source}, not from the file)` : message);
  const parsed = scenarioSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new ScenarioError(file, parsed.error.issues.flatMap((i) => zodIssues(i, issue)).map((i) => ({ ...i, message: from(i.path, i.message) })));
  const problems: ScenarioIssue[] = [];
  const scenario = resolve(parsed.data, basename(file, extname(file)), scenarioDir(file), (path, message) => problems.push(issue(path, from(path, message))));
  if (problems.length > 0) throw new ScenarioError(file, problems);
  scenario.warnings = warnings(raw as RawScenario, scenario.classes).map(([path, message]) => issue(path, message));
  return scenario;
}

/** The classes that select at least one of the scenario's hosts by label, and their ancestors. */
function applicableClasses(raw: unknown, classes: unknown[]): unknown[] {
  type Item = { name?: unknown; parent?: unknown; hosts?: { matchLabels?: Record<string, string> } };
  const hosts = (raw as { topology?: { hosts?: Record<string, { labels?: Record<string, string> } | null> } } | null)?.topology?.hosts ?? {};
  const labels = Object.values(hosts).map((h) => h?.labels ?? {});
  const items = classes as Item[];
  const keep = new Set(items.filter((c) => labels.some((l) => selectsHost({ hosts: { matchLabels: c.hosts?.matchLabels ?? {} } }, l))));
  for (const c of [...keep]) {
    for (let p = c.parent, hops = 0; typeof p === 'string' && hops < items.length; hops++) {
      const parent = items.find((x) => x.name === p);
      if (!parent) break;
      keep.add(parent);
      p = parent.parent;
    }
  }
  return items.filter((c) => keep.has(c));
}

/** The scenario as written (it has passed the schema, so these fields have these shapes where present). */
interface RawScenario {
  topology: { hosts: Record<string, { link: { rate: unknown } }> };
  classes?: unknown[];
  workloads: Array<{ onoff?: { rate: unknown } }>;
}

/**
 * The API's warnings about a class (api/contract/class-warnings.ts), for the scenario's rates as
 * typed and its classes' bursts. A class without a selector is not warned about: a workload may
 * name its class outright.
 */
function warnings(raw: RawScenario, classes: SimClass[]): Array<[Path, string]> {
  const out: Array<[Path, string]> = [];
  const rate = (path: Path, value: unknown) => {
    const message = typeof value === 'string' ? bytesRateWarning('rate', value) : undefined;
    if (message) out.push([path, message]);
  };
  for (const [name, h] of Object.entries(raw.topology.hosts)) rate(['topology', 'hosts', name, 'link', 'rate'], h.link.rate);
  raw.workloads.forEach((w, i) => w.onoff && rate(['workloads', i, 'onoff', 'rate'], w.onoff.rate));
  (raw.classes ?? []).forEach((c, i) => {
    const found = [...rateUnitWarnings(c), burstWarning(classes[i]!.spec)];
    for (const w of found) if (w) out.push([['classes', i, w.path.slice(1)], w.message]);
  });
  return out;
}

function zodIssues(i: z.core.$ZodIssue, issue: (path: Path, message: string, key?: string) => ScenarioIssue): ScenarioIssue[] {
  const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (i.code === 'unrecognized_keys') return i.keys.map((k) => issue(path, `unknown key "${k}"`, k));
  if (i.code === 'invalid_type' && i.input === undefined) {
    const host = path.length === 4 && path[0] === 'topology' && path[3] === 'link' ? path[2] : undefined;
    return [issue(path, host !== undefined ? `host ${host} has no link: every host needs link: { rate, delay }` : 'is required')];
  }
  return [issue(path, i.message.replace(/^Invalid input: /, ''))];
}

/** Offset of the YAML node at `path` (or of `key` within it); the nearest existing ancestor when it is missing. */
function locate(doc: Document, path: Path, key?: string): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  /** Where the current node's own key is: a missing field is reported at its parent's key line. */
  let ownKey: number | undefined;
  for (const seg of key === undefined ? path : [...path, key]) {
    let next: unknown;
    let keyOffset: number | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      next = pair?.value;
      keyOffset = isScalar(pair?.key) ? pair.key.range?.[0] : undefined;
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
    }
    if (next === undefined && keyOffset === undefined) return ownKey ?? offset;
    // An unknown key is reported at the key itself, a bad value at the value.
    offset = seg === key && keyOffset !== undefined ? keyOffset : ((next as Node | null)?.range?.[0] ?? keyOffset ?? offset);
    ownKey = keyOffset ?? offset;
    node = next;
  }
  return offset;
}

type Report = (path: Path, message: string) => void;

/** Cross-references, then the canonical, integer-only scenario. */
function resolve(input: ScenarioInput, name: string, dir: string, report: Report): Scenario {
  const hosts = resolveHosts(input, report);
  const classes = resolveClasses(input, report);
  for (const h of hosts.list) {
    for (const c of classes) if (selectsHost(c.spec, h.labels)) h.classes.set(c.id, c.edt);
  }
  const t = input.tcp ?? {};
  const baseTcp = tcpConfig({
    ...(t.mss !== undefined && { mss: t.mss }),
    ...(t.initialWindow !== undefined && { initialWindow: t.initialWindow }),
    ...(t.rtoMin !== undefined && { rtoMinNs: t.rtoMin }),
    ...(t.rtoForm !== undefined && { rtoStyle: t.rtoForm }),
    ...(t.timerGranularity !== undefined && { clockGranularityNs: t.timerGranularity }),
    ...(t.variant !== undefined && { variant: t.variant }),
    ...(t.sack !== undefined && { sack: t.sack }),
    ...(t.pacing !== undefined && { pacing: t.pacing }),
    ...(t.pacingSsRatio !== undefined && { pacingSsRatio: t.pacingSsRatio }),
    ...(t.pacingCaRatio !== undefined && { pacingCaRatio: t.pacingCaRatio }),
    ...(t.delayedAck !== undefined && t.delayedAck !== false && { delayedAck: true, ...(t.delayedAck !== true && { delackMaxNs: t.delayedAck }) }),
  });
  const workloads: SimWorkload[] = [];
  input.workloads.forEach((w, index) => {
    const path = ['workloads', index];
    if (w.bulk) {
      const b = w.bulk;
      const p = [...path, 'bulk'];
      const from = hosts.single(b.from, [...p, 'from']);
      const to = hosts.single(b.to, [...p, 'to']);
      if (!from || !to) return;
      if (from === to) return report([...p, 'to'], `a flow from ${from.name} to itself never crosses the switch`);
      const traffic = classify(b, from, to, classes, baseTcp, p, report);
      if (traffic) workloads.push({ kind: 'bulk', index, from: from.name, to: to.name, flows: b.flows ?? 1, bytes: b.bytes ?? null, ...traffic });
    } else if (w.incast) {
      const c = w.incast;
      const p = [...path, 'incast'];
      const client = hosts.single(c.client, [...p, 'client']);
      const servers = c.servers.flatMap((s, i) => hosts.members(s, [...p, 'servers', i]));
      if (!client || servers.length === 0) return;
      const dup = servers.find((s, i) => servers.indexOf(s) !== i || s === client);
      if (dup) return report([...p, 'servers'], `host ${dup.name} is listed twice (or is the client)`);
      const blockBytes = c.blockBytes ?? c.responseBytes! * servers.length;
      if (blockBytes < servers.length) return report([...p, 'blockBytes'], `a block of ${blockBytes} bytes cannot be split across ${servers.length} servers`);
      // Every server sends to the client, so they share the client's dst-prefix class.
      const traffic = classify(c, servers[0]!, client, classes, baseTcp, p, report);
      if (traffic) workloads.push({ kind: 'incast', index, client: client.name, servers: servers.map((s) => s.name), blockBytes, rounds: c.rounds, ...traffic });
    } else if (w.rpc) {
      const r = resolveRpc(w.rpc, index, hosts, classes, baseTcp, dir, [...path, 'rpc'], report);
      if (r) workloads.push(r);
    } else if (w.onoff) {
      const o = w.onoff;
      const p = [...path, 'onoff'];
      const from = hosts.single(o.from, [...p, 'from']);
      const to = hosts.single(o.to, [...p, 'to']);
      if (!from || !to) return;
      if (from === to) return report([...p, 'to'], `a flow from ${from.name} to itself never crosses the switch`);
      const traffic = classify(o, from, to, classes, baseTcp, p, report);
      if (traffic) workloads.push({ kind: 'onoff', index, from: from.name, to: to.name, flows: o.flows ?? 1, rateBps: o.rate, onNs: o.on, offNs: o.off, periods: o.periods ?? 'exponential', ...traffic });
    }
  });
  const sw = input.topology.switch;
  const alpha = sw.alpha === undefined ? 1 : sw.alpha === 'none' ? null : sw.alpha;
  return {
    name,
    description: input.description ?? '',
    seed: input.seed ?? 1,
    durationNs: input.duration,
    binNs: input.bin ?? DEFAULT_BIN_NS,
    switchPort: {
      ...(sw.buffer !== undefined && { bufferBytes: sw.buffer }),
      ...(sw.bufferPackets !== undefined && { bufferPackets: sw.bufferPackets }),
      ...(sw.ecnThreshold !== undefined && { ecnThresholdBytes: sw.ecnThreshold }),
    },
    sharedBuffer: sw.sharedBuffer === undefined ? null : { poolBytes: sw.sharedBuffer, alpha },
    hosts: hosts.list,
    classes,
    workloads,
    warnings: [],
  };
}

type Hosts = ReturnType<typeof resolveHosts>;

/**
 * An RPC workload: its hosts, the CDF, the arrival rate (from the load when given so: load ×
 * the clients' total link rate ÷ 8 ÷ the mean response size), and the class of each direction
 * of each client–server pair.
 */
function resolveRpc(r: RpcInput, index: number, hosts: Hosts, classes: SimClass[], base: TcpConfig, dir: string, p: Path, report: Report): SimWorkload | undefined {
  const clients = r.clients.flatMap((c, i) => hosts.members(c, [...p, 'clients', i]));
  const servers = r.servers.flatMap((s, i) => hosts.members(s, [...p, 'servers', i]));
  if (clients.length === 0 || servers.length === 0) return undefined;
  for (const [list, key] of [[clients, 'clients'], [servers, 'servers']] as const) {
    const dup = list.find((h, i) => list.indexOf(h) !== i);
    if (dup) return report([...p, key], `host ${dup.name} is listed twice`), undefined;
  }
  if (r.jitter !== undefined) return report([...p, 'jitter'], 'rpc arrivals are already random (Poisson): give start, not jitter'), undefined;
  let cdf: SizeCdf;
  try {
    cdf = loadCdf(r.sizes, dir);
  } catch (e) {
    if (e instanceof CdfError) return report([...p, 'sizes'], e.message), undefined;
    throw e;
  }
  const pairs: RpcPair[][] = [];
  for (const client of clients) {
    const row: RpcPair[] = [];
    for (const server of servers) {
      if (server === client) continue;
      const response = classify(r, server, client, classes, base, p, report);
      if (!response) return undefined; // a bad selector: reported once, not for every pair
      const request = classify({}, client, server, classes, base, p, report)!;
      row.push({ client: client.name, server: server.name, response: pick(response), request: pick(request) });
    }
    if (row.length === 0) return report([...p, 'servers'], `client ${client.name} has no server but itself`), undefined;
    pairs.push(row);
  }
  const clientRateBps = clients.reduce((a, h) => a + h.link.rateBps, 0);
  const arrivalsPerSecond = r.arrivalsPerSecond ?? (r.load! * clientRateBps) / 8 / cdf.meanBytes;
  const first = pairs[0]![0]!;
  return {
    kind: 'rpc',
    index,
    clients: clients.map((h) => h.name),
    servers: servers.map((h) => h.name),
    pairs,
    cdf,
    load: r.load ?? null,
    arrivalsPerSecond,
    requestBytes: r.requestBytes ?? 64,
    count: r.count ?? null,
    buckets: r.buckets ?? DEFAULT_RPC_BUCKETS,
    ...first.response,
    startNs: r.start ?? 0,
    jitterNs: 0,
  };
}

function pick(t: Traffic): RpcRoute {
  return { cls: t.cls, ackCls: t.ackCls, tcp: t.tcp };
}

function resolveHosts(input: ScenarioInput, report: Report) {
  const list: SimHost[] = [];
  const byName = new Map<string, SimHost>();
  const groups = new Map<string, SimHost[]>();
  const addresses = new Map<string, string>();
  for (const [key, h] of Object.entries(input.topology.hosts)) {
    const path = ['topology', 'hosts', key];
    const n = h.count ?? 1;
    let addr = h.address === undefined ? undefined : ipaddr.parse(h.address);
    const members: SimHost[] = [];
    for (let i = 1; i <= n; i++) {
      const name = h.count === undefined ? key : `${key}${i}`;
      if (byName.has(name) || groups.has(name)) {
        report(path, `host name ${name} is used twice (a count group names its hosts ${key}1…${key}${n})`);
        continue;
      }
      if (addr) {
        const a = addr.toString();
        const other = addresses.get(a);
        if (other) report([...path, 'address'], `address ${a} of ${name} is also ${other}'s`);
        addresses.set(a, name);
      }
      const host: SimHost = {
        name,
        address: addr,
        labels: h.labels ?? {},
        link: { rateBps: h.link.rate, delayNs: h.link.delay, ...(h.link.overhead !== undefined && { overheadBytes: h.link.overhead }) },
        classes: new Map(),
      };
      list.push(host);
      byName.set(name, host);
      members.push(host);
      addr = addr && nextAddress(addr);
    }
    if (h.count !== undefined) {
      if (byName.has(key)) report(path, `group ${key} has the name of a host`);
      groups.set(key, members);
    }
  }
  return {
    list,
    /** One host by name; a group or an unknown name is an error. */
    single(name: string, path: Path): SimHost | undefined {
      const h = byName.get(name);
      if (h) return h;
      const g = groups.get(name);
      report(path, g ? `${name} is a group of ${g.length} hosts; name one of them (${name}1…${name}${g.length})` : `no host ${name} in topology.hosts`);
      return undefined;
    },
    /** A host, or every host of a group. */
    members(name: string, path: Path): SimHost[] {
      const g = groups.get(name);
      if (g) return g;
      const h = byName.get(name);
      if (!h) report(path, `no host or host group ${name} in topology.hosts`);
      return h ? [h] : [];
    },
  };
}

function nextAddress(a: ipaddr.IPv4 | ipaddr.IPv6): ipaddr.IPv4 | ipaddr.IPv6 {
  const bytes = a.toByteArray();
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = (bytes[i]! + 1) & 0xff;
    if (bytes[i] !== 0) break;
  }
  return ipaddr.fromByteArray(bytes);
}

/**
 * The API's spec, checked with the API's own cross-class rules, then mapped to the data plane's
 * EDT class config. Ids follow the list order (the API assigns them at creation; only the tree
 * matters to the shaper).
 */
function resolveClasses(input: ScenarioInput, report: Report): SimClass[] {
  const specs = (input.classes ?? []).map((c) => toSpec(c.name, c));
  const index = new Map<string, number>();
  specs.forEach((s, i) => {
    if (index.has(s.name)) report(['classes', i, 'name'], `class ${s.name} is defined twice`);
    index.set(s.name, i);
  });
  for (const conflict of checkClassSet(specs)) {
    const i = index.get(conflict.class) ?? 0;
    report(['classes', i, ...conflict.path.split('/').filter(Boolean).map((s) => (/^\d+$/.test(s) ? Number(s) : s))], conflict.message);
  }
  return specs.map((spec, i) => ({
    id: i + 1,
    spec,
    edt: {
      rateBps: spec.rate,
      burstNs: 'ns' in spec.burst ? spec.burst.ns : bytesToNs(spec.burst.bytes, spec.rate),
      horizonNs: spec.horizon,
      ecnNs: spec.ecn?.threshold ?? 0, // as the agent writes class_config.ecn_ns
      parentId: spec.parent === null ? 0 : (index.get(spec.parent) ?? -1) + 1,
    },
  }));
}

/** A byte burst is idle credit at the class's rate: ceil(bytes · 8 · 1e9 / rate) ns, exact. */
function bytesToNs(bytes: number, rateBps: number): number {
  const num = BigInt(bytes) * 8_000_000_000n;
  const r = BigInt(rateBps);
  return Number((num + r - 1n) / r);
}

type Selectors = Partial<Pick<BulkInput, 'class' | 'mark' | 'cgroup' | 'start' | 'jitter'>>;

/**
 * The data plane's order (docs/data-plane.md, classify.h): socket mark → cgroup → longest
 * destination prefix → unclassified. `class:` names the class outright, as a mark would. A
 * selector that matches no class is refused: it is almost surely a typo. Classification runs on
 * the sending host, which knows only the classes installed there (their hosts.matchLabels select
 * it): a selector whose class is not installed on the sender is refused too, since the data
 * plane would leave that traffic unclassified. ACKs are classified on the receiving host by
 * their own destination.
 */
function classify(w: Selectors, from: SimHost, to: SimHost, classes: SimClass[], base: TcpConfig, path: Path, report: Report): Traffic | undefined {
  const given = (['class', 'mark', 'cgroup'] as const).filter((k) => w[k] !== undefined);
  if (given.length > 1) return report([...path, given[1]!], `give one of class, mark and cgroup, not ${given.join(' and ')}`), undefined;
  const onSender = classes.filter((c) => from.classes.has(c.id));
  const notInstalled = (key: string, c: SimClass) =>
    report([...path, key], `${key} ${String(w[key as 'class'])} selects class ${c.spec.name}, which is not installed on ${from.name} (its hosts.matchLabels do not select ${from.name}'s labels)`);
  let cls: SimClass | undefined;
  if (w.class !== undefined) {
    cls = classes.find((c) => c.spec.name === w.class);
    if (!cls) return report([...path, 'class'], `class ${w.class} does not exist (scenario classes: ${classes.map((c) => c.spec.name).join(', ') || 'none'})`), undefined;
    if (!onSender.includes(cls)) return notInstalled('class', cls), undefined;
  } else if (w.mark !== undefined) {
    cls = classes.find((c) => c.spec.match.marks.includes(w.mark!));
    if (!cls) return report([...path, 'mark'], `mark ${w.mark} selects no class`), undefined;
    if (!onSender.includes(cls)) return notInstalled('mark', cls), undefined;
  } else if (w.cgroup !== undefined) {
    cls = classes.find((c) => c.spec.match.cgroups.includes(w.cgroup!));
    if (!cls) return report([...path, 'cgroup'], `cgroup ${w.cgroup} selects no class`), undefined;
    if (!onSender.includes(cls)) return notInstalled('cgroup', cls), undefined;
  } else {
    cls = byPrefix(to, onSender);
  }
  const ack = byPrefix(from, classes.filter((c) => to.classes.has(c.id)));
  // A class's own TCP tuning (pacer's sock_ops program) applies to the sockets it selects.
  const tcp = cls?.spec.tcp
    ? tcpConfig({ ...base, ...(cls.spec.tcp.rtoMin !== null && { rtoMinNs: cls.spec.tcp.rtoMin }), ...(cls.spec.tcp.delackMax !== null && { delackMaxNs: cls.spec.tcp.delackMax }) })
    : base;
  return { cls: cls?.id ?? 0, ackCls: ack?.id ?? 0, tcp, startNs: w.start ?? 0, jitterNs: w.jitter ?? 0 };
}

function byPrefix(dst: SimHost, classes: SimClass[]): SimClass | undefined {
  const addr = dst.address;
  if (!addr) return undefined;
  let best: { c: SimClass; bits: number } | undefined;
  for (const c of classes) {
    for (const cidr of c.spec.match.dst) {
      const [net, bits] = ipaddr.parseCIDR(cidr);
      if (net.kind() === addr.kind() && addr.match(net, bits) && (!best || bits > best.bits)) best = { c, bits };
    }
  }
  return best?.c;
}
