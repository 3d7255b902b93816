/**
 * `pacer sim run scenario.yaml`: validate, simulate, write DIR/result.json and print a summary.
 * Errors are the CLI's usual one-fact-per-line messages (never a stack trace); scenario errors
 * start with file:line:col so editors can jump to them.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { CliError, PacerClient, apiBaseUrl, resolveToken } from '../api/cli/client.js';
import { listAll } from '../api/cli/class-commands.js';
import { UnitError, parseDuration } from '../api/contract/units.js';
import { InfluxStream } from './influx.js';
import { out, run, table, terminalText } from '../api/cli/output.js';
import { ScenarioError, issueText, loadScenarioFile, type ClassesOverride, type Scenario } from './scenario/load.js';
import { scenarioJsonSchemaText } from './scenario/json-schema.js';
import { scenarioTemplate } from './scenario/template.js';
import { Simulation, type Progress, type SimResult } from './run.js';
import { SweepError, defaultWorkers, runSweep, type SweepResult } from './sweep.js';
import { COMPARED_METRICS, compare, ratio } from './compare.js';
import type { ExactSummary } from './stats.js';

/** vega and vega-lite (the HTML report) are loaded only when a report is written: `pacer sim --help` and the agent never load them. */
const loadReport = () => import('./report.js');

/** Exit status after Ctrl-C, as a shell reports a process ended by SIGINT (128 + 2). */
export const EXIT_INTERRUPTED = 130;
const PROGRESS_EVERY_MS = 250;
/** Wall time between InfluxDB writes of the bins completed meanwhile. */
const INFLUX_EVERY_MS = 2_000;

function parseSeed(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n > 0xffffffff) throw new InvalidArgumentError(`a seed is an integer from 0 to 4294967295, got ${JSON.stringify(v)}`);
  return n;
}

function parseDurationFlag(v: string): number {
  try {
    const ns = parseDuration(v);
    if (ns < 1) throw new InvalidArgumentError('--duration must be above 0');
    return ns;
  } catch (e) {
    if (e instanceof UnitError) throw new InvalidArgumentError(e.message);
    throw e;
  }
}

interface RunFlags {
  seed?: number;
  duration?: number;
  out?: string;
  json?: boolean;
  progress?: boolean;
  influx?: string;
  influxRun?: string;
  classesFromApi?: string;
  tokenFile?: string;
}

export function simCommand(): Command {
  const sim = new Command('sim').description('simulate EDT pacing, fq and datacenter TCP for a scenario (see sim/examples/)');
  sim
    .command('run')
    .description('run a scenario file; writes DIR/result.json and DIR/report.html (charts and tables) and prints a summary')
    .argument('<scenario>', 'scenario YAML file')
    .option('--seed <n>', "override the scenario's seed", parseSeed)
    .option('--duration <time>', "override the scenario's duration (e.g. 200ms)", parseDurationFlag)
    .option('--out <dir>', 'directory for result.json and report.html (default: sim-results/<scenario name>)')
    .option('--json', 'print the result JSON instead of the summary')
    .option('--progress', 'show progress on stderr even when it is not a terminal')
    .option('--influx <url>', 'also write the time series to InfluxDB 1.x, e.g. http://127.0.0.1:8086/pacer (see docs/simulator.md)')
    .option('--influx-run <name>', 'the `run` tag of the InfluxDB points (default: the start time, ISO 8601)')
    .option('--classes-from-api <url>', "use the classes in force in the budgets API at URL (those that apply to the scenario's hosts) instead of the file's; token from $PACER_TOKEN or --token-file")
    .option('--token-file <file>', 'with --classes-from-api: read the API token from this file instead of $PACER_TOKEN')
    .action(run(async (file: string, o: RunFlags) => runCommand(file, o)));
  sim
    .command('sweep')
    .description('run a scenario over a grid of values (the product of the --vary axes) on worker threads; writes DIR/sweep.json and DIR/report.html')
    .argument('<scenario>', 'scenario YAML file')
    .requiredOption(
      '--vary <path=values>',
      'a field and comma-separated values, e.g. tcp.rtoMin=200ms,1ms or incast.servers=1,2,4 (repeatable; shorthands incast.X, bulk.X, rpc.X, onoff.X = the first such workload, switch.X = topology.switch.X)',
      (v: string, acc: string[] = []) => [...acc, v],
    )
    .option('--seed <n>', "the seed of every point (default: the scenario's)", parseSeed)
    .option('--out <dir>', 'directory for sweep.json and report.html (default: sim-results/<scenario name>-sweep)')
    .option('--workers <n>', `worker threads (default: available parallelism, ${defaultWorkers()} here)`, parseWorkers)
    .option('--json', 'print sweep.json instead of the summary table')
    .option('--progress', 'show progress on stderr even when it is not a terminal')
    .action(run(async (file: string, o: SweepFlags) => sweepCommand(file, o)));
  sim
    .command('compare')
    .description('run two scenarios (two plans) with the same seed and put them side by side; writes DIR/compare.json and DIR/report.html (tables and charts) and prints the table')
    .argument('<a>', 'plan A: a scenario YAML file')
    .argument('<b>', 'plan B: a scenario YAML file')
    .option('--seed <n>', "the seed of both runs (default: each scenario's)", parseSeed)
    .option('--duration <time>', "override both scenarios' duration (e.g. 200ms)", parseDurationFlag)
    .option('--out <dir>', 'directory for compare.json and report.html (default: sim-results/<a>-vs-<b>)')
    .option('--json', 'print compare.json instead of the table')
    .action(run(async (a: string, b: string, o: CompareFlags) => compareCommand(a, b, o)));
  sim
    .command('schema')
    .description('print the JSON Schema of scenario files (generated from the validator; the same as sim/scenario.schema.json), for editors')
    .option('--out <file>', 'write it to this file instead of stdout')
    .action(run(async (o: { out?: string }) => writeOrPrint(o.out, scenarioJsonSchemaText())));
  sim
    .command('init')
    .description('write a commented scenario template that `pacer sim run` accepts (to stdout without FILE); never overwrites')
    .argument('[file]', 'the scenario file to create')
    .action(run(async (file: string | undefined) => initCommand(file)));
  return sim;
}

interface CompareFlags {
  seed?: number;
  duration?: number;
  out?: string;
  json?: boolean;
}

async function compareCommand(fileA: string, fileB: string, o: CompareFlags): Promise<void> {
  // Both are checked before either runs: a typo in B must not cost A's run.
  const [a, b] = [load(fileA), load(fileB)].map((s) => (o.duration === undefined ? s : { ...s, durationNs: o.duration })) as [Scenario, Scenario];
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(EXIT_INTERRUPTED);
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  let results: [SimResult, SimResult];
  try {
    const ra = await new Simulation(a, o.seed).run({ shouldStop: () => interrupted });
    const rb = await new Simulation(b, o.seed).run({ shouldStop: () => interrupted });
    results = [ra, rb];
  } finally {
    process.off('SIGINT', onSigint);
  }
  const c = compare([fileA, fileB], results);
  const dir = o.out ?? join('sim-results', `${a.name}-vs-${b.name}`);
  const json = JSON.stringify(c, null, 2) + '\n';
  await writeOutputs(dir, { 'compare.json': json, 'report.html': async () => (await loadReport()).compareReport(c) });
  if (o.json) process.stdout.write(json);
  else {
    const show = (unit: string, v: number | boolean | null) => (v === null || typeof v === 'boolean' ? null : unit === 'bps' ? rate(v) : unit === 'ns' ? time(v) : v);
    out([
      `A = ${fileA}, B = ${fileB}${results.every((r) => r.complete) ? '' : ' (INTERRUPTED: partial results)'}`,
      '',
      table(['METRIC', c.labels[0], c.labels[1], 'B / A'], COMPARED_METRICS.map((m) => [m.label, show(m.unit, c.metrics[0][m.key]), show(m.unit, c.metrics[1][m.key]), ratio(c.metrics[0][m.key], c.metrics[1][m.key])])),
      '',
      table(['CLASS', 'BUDGET × HOSTS A', 'BUDGET × HOSTS B', 'THROUGHPUT A', 'THROUGHPUT B', 'GOODPUT A', 'GOODPUT B'], c.classes.map(({ name, a: ca, b: cb }) => [
        name, ca?.rateTimesHosts ?? null, cb?.rateTimesHosts ?? null, ca ? rate(ca.throughputBps) : null, cb ? rate(cb.throughputBps) : null, ca ? rate(ca.goodputBps) : null, cb ? rate(cb.goodputBps) : null,
      ])),
      '',
      `result: ${join(dir, 'compare.json')}, report: ${join(dir, 'report.html')}`,
    ].join('\n'));
  }
  if (interrupted) {
    process.stderr.write(`pacer: interrupted; partial results (complete: false) in ${join(dir, 'compare.json')}\n`);
    process.exitCode = EXIT_INTERRUPTED;
  }
}

/** The committed schema beside the sources: dist/sim/cli.js → sim/scenario.schema.json. */
const SCHEMA_FILE = resolve(dirname(fileURLToPath(import.meta.url)), '../../sim/scenario.schema.json');

function writeOrPrint(file: string | undefined, text: string, flag: 'w' | 'wx' = 'w'): void {
  if (file === undefined) {
    process.stdout.write(text);
    return;
  }
  try {
    writeFileSync(file, text, { flag });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(code === 'EEXIST' ? `${file} exists; pacer sim init never overwrites a file (remove it or give another name)` : `cannot write ${file}: ${(e as Error).message}`);
  }
}

function initCommand(file: string | undefined): void {
  // The editor hint is relative to the new file, so the pair can move together within the repository.
  const schema = file === undefined ? SCHEMA_FILE : relative(dirname(resolve(file)), SCHEMA_FILE) || SCHEMA_FILE;
  writeOrPrint(file, scenarioTemplate(schema), 'wx');
  if (file !== undefined) process.stderr.write(`pacer: wrote ${file}; run it with: pacer sim run ${file}\n`);
}

function parseWorkers(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 256) throw new InvalidArgumentError(`--workers is a whole number from 1 to 256, got ${JSON.stringify(v)}`);
  return n;
}

interface SweepFlags {
  vary: string[];
  seed?: number;
  out?: string;
  workers?: number;
  json?: boolean;
  progress?: boolean;
}

async function sweepCommand(file: string, o: SweepFlags): Promise<void> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read scenario ${file}: ${(e as Error).message}`);
  }
  const scenario = load(file);
  let interrupted = false;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const onSigint = () => {
    if (interrupted) process.exit(EXIT_INTERRUPTED);
    interrupted = true;
    stop();
  };
  process.on('SIGINT', onSigint);
  const show = o.progress || process.stderr.isTTY;
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let shown = false;
  const line = (done: number, total: number) => {
    if (!show) return;
    shown = true;
    const l = `sweep: ${done}/${total} points, ${((Date.now() - started) / 1000).toFixed(1)}s elapsed`;
    process.stderr.write(tty ? `\r${l}\x1b[K` : `${l}\n`);
  };
  let result: SweepResult;
  try {
    result = await runSweep(text, file, o.vary, {
      ...(o.workers !== undefined && { workers: o.workers }),
      ...(o.seed !== undefined && { seed: o.seed }),
      onPoint: line,
      stop: stopped,
      onStart: (total) => line(0, total),
    });
  } catch (e) {
    if (e instanceof SweepError) throw new CliError(`invalid sweep:\n${e.message}`);
    throw e;
  } finally {
    if (tty && shown) process.stderr.write('\n');
    process.off('SIGINT', onSigint);
  }
  const dir = o.out ?? join('sim-results', `${scenario.name}-sweep`);
  const json = JSON.stringify(result, null, 2) + '\n';
  await writeOutputs(dir, { 'sweep.json': json, 'report.html': async () => (await loadReport()).sweepReport(result) });
  if (o.json) process.stdout.write(json);
  else out(sweepSummary(result, dir));
  if (interrupted) {
    const n = result.points.filter((p) => p.status === 'done').length;
    process.stderr.write(`pacer: interrupted after ${n}/${result.points.length} points; partial sweep (complete: false) in ${join(dir, 'sweep.json')}\n`);
    process.exitCode = EXIT_INTERRUPTED;
  }
}

function sweepSummary(s: SweepResult, dir: string): string {
  const opt = (v: number | null | undefined, f: (x: number) => string) => (v === null || v === undefined ? '-' : f(v));
  return [
    `sweep of ${s.scenario}: ${s.points.length} points${s.complete ? '' : ' (INTERRUPTED: partial sweep)'}; FCT of ${s.fctOf}`,
    '',
    table([...s.axes.map((a) => a.name.toUpperCase()), 'STATUS', 'GOODPUT', 'INCAST GOODPUT OVER ROUNDS', 'FCT P50', 'FCT P99', 'SLOWDOWN P99', 'DROPS', 'RETRANS', 'RTO'], s.points.map((p) => [
      ...s.axes.map((a) => p.params[a.name] ?? null),
      p.status,
      opt(p.metrics?.goodputBps, rate),
      opt(p.metrics?.incastGoodputOverRoundsBps, rate),
      opt(p.metrics?.fctP50Ns, time),
      opt(p.metrics?.fctP99Ns, time),
      p.metrics?.slowdownP99 ?? null,
      p.metrics?.drops ?? null,
      p.metrics?.retransmits ?? null,
      p.metrics?.timeouts ?? null,
    ])),
    '',
    `result: ${join(dir, 'sweep.json')}, report: ${join(dir, 'report.html')}`,
  ].join('\n');
}

/** The live classes, read before anything is simulated: a wrong URL or token fails at once. */
async function classesFromApi(url: string, tokenFile: string | undefined): Promise<{ override: ClassesOverride; revision: number; url: string }> {
  const client = new PacerClient(apiBaseUrl(url), resolveToken(tokenFile));
  const list = await listAll(client, { api: client.baseUrl });
  return { override: { classes: list.items, source: `the API at ${client.baseUrl}` }, revision: list.revision, url: client.baseUrl };
}

async function runCommand(file: string, o: RunFlags): Promise<void> {
  if (o.tokenFile !== undefined && o.classesFromApi === undefined) throw new CliError('--token-file is for --classes-from-api URL; without it the scenario\'s own classes are used');
  const live = o.classesFromApi === undefined ? undefined : await classesFromApi(o.classesFromApi, o.tokenFile);
  const loaded = load(file, live?.override);
  if (live) process.stderr.write(`pacer: ${loaded.classes.length} class${loaded.classes.length === 1 ? '' : 'es'} from ${live.url} (revision ${live.revision}) replace the file's: ${loaded.classes.map((c) => c.spec.name).join(', ') || 'none'}\n`);
  const scenario = o.duration === undefined ? loaded : { ...loaded, durationNs: o.duration };
  const startedAt = new Date();
  const simulation = new Simulation(scenario, o.seed);
  const influxRun = o.influxRun ?? startedAt.toISOString();
  const influxShown = o.influx?.replace(/\/\/[^@/]*@/, '//');
  let influx: InfluxStream | undefined;
  if (o.influx !== undefined) {
    try {
      influx = new InfluxStream({ url: o.influx, epochNs: BigInt(startedAt.getTime()) * 1_000_000n, run: influxRun });
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  let lastInflux = Date.now();
  const onProgress = (p: Progress) => {
    progress?.update(p);
    if (influx && Date.now() - lastInflux >= INFLUX_EVERY_MS) {
      lastInflux = Date.now();
      if (!influx.busy) influx.progress(simulation.result(false));
    }
  };
  let interrupted = false;
  // First Ctrl-C: stop between slices and still write what was simulated. A second one: leave now.
  const onSigint = () => {
    if (interrupted) process.exit(EXIT_INTERRUPTED);
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  const progress = o.progress || process.stderr.isTTY ? progressPrinter(process.stderr.isTTY === true) : undefined;
  let result: SimResult;
  try {
    result = await simulation.run({ onProgress, shouldStop: () => interrupted });
    if (live) result.classesFrom = { url: live.url, revision: live.revision };
  } finally {
    process.off('SIGINT', onSigint);
  }
  progress?.done(result);
  const dir = o.out ?? join('sim-results', scenario.name);
  const text = JSON.stringify(result, null, 2) + '\n';
  await writeOutputs(dir, { 'result.json': text, 'report.html': async () => (await loadReport()).runReport(result) });
  if (o.json) process.stdout.write(text);
  else out(summary(result, join(dir, 'result.json')));
  if (influx) {
    // After the files: a down InfluxDB must not lose the run.
    try {
      const n = await influx.finish(result);
      process.stderr.write(`pacer: wrote ${n} points to ${influxShown} (run ${influxRun})\n`);
    } catch (e) {
      throw new CliError(`could not write to InfluxDB at ${influxShown}: ${(e as Error).message} (the result is in ${join(dir, 'result.json')})`);
    }
  }
  if (interrupted) {
    process.stderr.write(`pacer: interrupted at ${time(result.simulatedNs)} simulated; partial result (complete: false) in ${join(dir, 'result.json')}\n`);
    process.exitCode = EXIT_INTERRUPTED;
  }
}

/** Writes DIR/<name> for each entry, in order (the JSON first, so a failing report still leaves it). */
async function writeOutputs(dir: string, files: Record<string, string | (() => Promise<string>)>): Promise<void> {
  try {
    mkdirSync(dir, { recursive: true });
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' ? content : await content());
  } catch (e) {
    throw new CliError(`cannot write ${dir}: ${(e as Error).message}`);
  }
}

/** Loads the scenario, and prints its warnings on stderr: it still runs, as the API still writes a class it warns about. */
function load(file: string, override?: ClassesOverride): Scenario {
  try {
    const scenario = loadScenarioFile(file, override);
    for (const w of scenario.warnings) process.stderr.write(`${terminalText(`warning: ${issueText(file, w)}`)}\n`);
    return scenario;
  } catch (e) {
    if (e instanceof ScenarioError) throw new CliError(`invalid scenario (${e.issues.length} problem${e.issues.length === 1 ? '' : 's'}):\n${e.message}`);
    throw new CliError(`cannot read scenario ${file}: ${(e as Error).message}`);
  }
}

/**
 * At most a few lines a second; on a terminal one line rewritten in place. When every workload
 * is finite the run may end before its duration, so the duration is shown as an upper bound, and
 * the last line gives the actual end.
 */
function progressPrinter(tty: boolean) {
  const started = Date.now();
  let last = started;
  let printed = false;
  return {
    update: (p: Progress) => {
      const now = Date.now();
      if (now - last < PROGRESS_EVERY_MS) return;
      last = now;
      printed = true;
      const rate = p.events / Math.max((now - started) / 1000, 1e-3);
      const total = p.mayEndEarly ? `at most ${time(p.durationNs)} (it ends when its workloads are done)` : time(p.durationNs);
      const line = `sim: ${time(p.simulatedNs)} of ${total} simulated, ${(rate / 1e6).toFixed(2)}M events/s`;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    },
    /** The last line: where the scenario actually ended. */
    done: (r: SimResult) => {
      const why = !r.complete ? 'interrupted' : r.simulatedNs < r.durationNs ? 'every workload done' : 'the scenario\'s duration';
      const line = `sim: ${time(r.simulatedNs)} of ${time(r.simulatedNs)} simulated (${why}), ${r.events} events`;
      process.stderr.write(tty && printed ? `\r${line}\x1b[K\n` : `${line}\n`);
    },
  };
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}

function fctCells(s: ExactSummary): Array<string | number> {
  return s.count === 0 ? [0, '-', '-', '-', '-', '-'] : [s.count, time(s.fctP50Ns), time(s.fctP99Ns), s.slowdownMean, s.slowdownP50, s.slowdownP99];
}

function rate(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(3)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${(bps / 1e3).toFixed(1)} kbit/s`;
}

/** Round times always in ms, so a column never mixes µs and ms. */
function ms(ns: number): string {
  return `${(ns / 1e6).toFixed(3)}ms`;
}

function time(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(3)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(3)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(1)}us`;
  return `${ns}ns`;
}

const MAX_ROWS = 20;

function capped<T>(rows: T[][]): T[][] {
  return rows.length <= MAX_ROWS ? rows : [...rows.slice(0, MAX_ROWS), [`… ${rows.length - MAX_ROWS} more in result.json` as T]];
}

/** One class: its per-host budget beside the total for the hosts that sent, so a sum over hosts is never read against one host's budget. */
export function classRow(c: SimResult['classes'][number]): Array<string | number | null> {
  return [c.name, c.rate, c.sendingHosts, c.rateTimesHosts, rate(c.throughputBps), rate(c.goodputBps), time(c.startNs)];
}

function summary(r: SimResult, file: string): string {
  const parts: string[] = [
    `scenario ${r.scenario}, seed ${r.seed}: ${time(r.simulatedNs)} simulated${r.complete ? '' : ' (INTERRUPTED: partial result)'}, ${r.events} events`,
    ...(r.classesFrom ? [`classes: those in force at ${r.classesFrom.url} (revision ${r.classesFrom.revision}), not the file's`] : []),
    '',
    table(['CLASS', 'BUDGET PER HOST', 'SENDING HOSTS', 'BUDGET × HOSTS', 'THROUGHPUT', 'GOODPUT', 'MEASURED FROM'], r.classes.map(classRow)),
    'throughput: bytes leaving the hosts (headers included); goodput: application bytes delivered; both from the class\'s first packet to the end.',
  ];
  if (r.flows.length > 0) {
    parts.push('', table(['FLOW', 'FROM', 'TO', 'CLASS', 'GOODPUT', 'FCT', 'SLOWDOWN', 'RETRANS', 'RTO'], capped(r.flows.map((f) => [
      f.id, f.from, f.to, f.class, rate(f.goodputBps), f.fctNs === null ? null : time(f.fctNs), f.slowdown, f.retransmits, f.timeouts,
    ]))));
    if (r.fct.completed > 0) parts.push(`FCT p50 ${time(r.fct.p50Ns)}, p99 ${time(r.fct.p99Ns)}; slowdown p50 ${r.fct.slowdownP50}, p99 ${r.fct.slowdownP99} (${r.fct.completed} flows completed)`);
  }
  if (r.incast.length > 0) {
    parts.push('', table(['INCAST', 'SERVERS', 'ROUNDS', 'GOODPUT', 'ROUND P50', 'ROUND P99', 'RETRANS', 'RTO'], r.incast.map((i) => [
      i.workload, i.servers, `${i.roundsCompleted}/${i.rounds}`, rate(i.goodputBps), time(i.roundNs.p50), time(i.roundNs.p99), i.retransmits, i.timeouts,
    ])));
  }
  if (r.rpc.length > 0) {
    const rows = r.rpc.flatMap((w) => [
      [w.workload, w.sizes, w.class, `${w.load === null ? '-' : pct(w.load)} / ${pct(w.offeredLoad)}`, `${w.completed}/${w.arrivals}`, 'all', ...fctCells(w.fct)],
      ...w.buckets.map((b) => ['', '', '', '', '', b.label, ...fctCells(b)]),
      ...(w.byClass.length > 1 ? w.byClass.map((c) => ['', '', c.class, '', '', 'all', ...fctCells(c)]) : []),
    ]);
    parts.push('', table(['RPC', 'SIZES', 'CLASS', 'LOAD ASKED/OFFERED', 'DONE', 'SIZE', 'COUNT', 'FCT P50', 'FCT P99', 'SLOWDOWN MEAN', 'P50', 'P99'], rows));
  }
  if (r.onoff.length > 0) {
    parts.push('', table(['ON/OFF', 'FROM', 'TO', 'CLASS', 'RATE', 'ON / OFF', 'DUTY EXPECTED', 'DUTY MEASURED', 'GOODPUT'], r.onoff.map((w) => [
      w.workload, w.from, w.to, w.class, w.rate, `${w.on} / ${w.off} (${w.periods})`, w.dutyCycleExpected, w.flows.map((f) => f.dutyCycle).join(' '), rate(w.goodputBps),
    ])));
  }
  const busy = [...r.hosts, ...r.switchPorts.map((p) => ({ ...p, shaperDelay: undefined }))].filter((p) => p.sentPackets > 0 || p.drops > 0);
  parts.push('', table(['PORT', 'SENT', 'DROPS', 'MAX QUEUE', 'MEAN QUEUE', 'DELAY P50', 'DELAY P99', 'SHAPER P99'], capped(busy.map((p) => [
    p.name, p.sentPackets, p.drops, `${p.maxQueueBytes} B`, `${p.meanQueueBytes} B`, time(p.queueDelay.p50Ns), time(p.queueDelay.p99Ns), p.shaperDelay ? time(p.shaperDelay.p99Ns) : '-',
  ]))));
  if (r.switch) {
    parts.push(`shared buffer ${r.switch.sharedBufferBytes} B, alpha ${r.switch.alpha ?? 'none'}: max used ${r.switch.maxUsedBytes} B, mean ${r.switch.meanUsedBytes} B, ${r.switch.drops} drops`);
  }
  const drops = Object.entries(r.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).join(' ') || 'none';
  parts.push('', `drops: ${drops}; retransmits ${r.retransmits}; RTO timeouts ${r.timeouts}`, `result: ${file}, report: ${file.replace(/result\.json$/, 'report.html')}`);
  return parts.join('\n');
}
