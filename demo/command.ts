/**
 * `pacer demo`: what pacer is for, on this host, in one command. It builds a lab (demo/lab.ts),
 * starts pacer's API and agent as real processes, creates the example classes of demo/plan.ts
 * through the REST API, starts iperf3 through them and shows a live table (demo/table.ts) of
 * budgets becoming rates; midway it changes a budget through the API and the table follows.
 * Ctrl-C, SIGTERM or a crash of any of its processes removes everything it made.
 *
 * `--duration 20s --json` runs unattended and prints the verdict (demo/summary.ts); a test runs it.
 * `--vm` runs the same inside the enforcement tier's VM, on a kernel with fq (demo/in-vm.ts).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration, UnitError } from '../api/contract/units.js';
import { ApiProblemError, CliError, PacerClient } from '../api/cli/client.js';
import { takeNamedLock } from '../controller/named-lock.js';
import { CHANGE, CHANGE_EVERY_S, CLASSES, DEFAULT_VM_S, HOST, HOST_LABELS } from './plan.js';
import { DemoError } from './demo-error.js';
import { IFACE, Lab, PIN_BASE, SENDER_NS, type LabProcess } from './lab.js';
import { DeliveredReader } from './delivered.js';
import { KernelReader, type ApiClass, type Second } from './readings.js';
import { renderFrame, type FrameContext } from './table.js';
import { summarise, type DemoSummary } from './summary.js';

export interface DemoOptions {
  durationS?: number;
  json: boolean;
  vm: boolean;
}

const LOCK_NAME = 'pacer-demo';
/** Shortest --duration: two phases of SETTLE_S + 2 judged seconds each. */
const MIN_DURATION_S = 10;
const FIRST_PORT = 5201;

function durationSeconds(value: string): number {
  let ns: number;
  try {
    ns = parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof UnitError ? err.message : String(err));
  }
  const s = ns / 1e9;
  if (!Number.isInteger(s) || s < MIN_DURATION_S || s > 86_400) throw new InvalidArgumentError(`a whole number of seconds from ${MIN_DURATION_S}s to 24h, e.g. 20s`);
  return s;
}

/** A REST call to the demo's API through the CLI's client; the API's refusal or an unreachable API becomes a DemoError. */
async function rest(client: PacerClient, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<any> {
  try {
    return (await client.request<any>(method, path, { body, headers })).body;
  } catch (err) {
    if (err instanceof ApiProblemError || err instanceof CliError) throw new DemoError(`${method} ${path}: ${err.message}`);
    throw err;
  }
}

/** Resolves with the first match of `re` in the process's output; rejects if it exits first or after `ms`. */
function outputMatch(p: LabProcess, re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new DemoError(`${p.name} did not start within ${ms / 1000} s:\n${p.tail()}`)), ms);
    const onData = (d: Buffer) => {
      text += d.toString();
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        p.child.stdout?.off('data', onData);
        resolve(m);
      }
    };
    p.child.stdout?.on('data', onData);
    void p.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new DemoError(`${p.name} exited (${signal ?? code}) while starting:\n${p.tail()}`));
    });
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms: number, watch: () => void): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    watch();
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new DemoError(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the demo on this host; resolves with the summary once it ends (duration, signal or failure). */
export async function runDemo(o: DemoOptions, print: (text: string) => void, progress: (line: string) => void): Promise<DemoSummary> {
  if (process.getuid?.() !== 0) throw new DemoError('run it as root (sudo): it creates network namespaces and a cgroup, and loads BPF programs');
  for (const [tool, pkg] of [['iperf3', 'iperf3'], ['ip', 'iproute2'], ['nsenter', 'util-linux']] as const) {
    if (!['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, tool)))) throw new DemoError(`${tool} is missing: apt-get install -y ${pkg}`);
  }
  const held = await takeNamedLock(LOCK_NAME, { pid: process.pid, since: new Date().toISOString() });
  if ('owner' in held) {
    const who = held.owner as { pid: number; since: string } | undefined;
    throw new DemoError(`a pacer demo is already running${who ? ` (PID ${who.pid}, since ${who.since}); stop it with Ctrl-C in its terminal or \`kill ${who.pid}\`` : ''}`);
  }
  const swept = await Lab.sweep();
  if (swept.length) progress(`removed what an earlier demo left behind: ${swept.join(', ')}`);

  const lab = new Lab();
  let reader: KernelReader | undefined;
  let stopping = false;
  let failed = false;
  const stop = new AbortController();
  const onSignal = (signal: string) => {
    if (stop.signal.aborted) return;
    progress(`${signal}: stopping and removing everything the demo made…`);
    stop.abort(signal);
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);
  /** Throws when a process of the lab exited on its own (the demo cannot go on without it), or a signal came while it set up. */
  const watch = () => {
    if (stopping) return;
    if (stop.signal.aborted) throw new DemoError(`stopped by ${String(stop.signal.reason)} before the traffic started`);
    const dead = lab.processes.find((p) => !p.running);
    if (dead) throw new DemoError(`${dead.name} exited (${dead.child.signalCode ?? dead.child.exitCode}); its last output:\n${dead.tail()}`);
  };

  try {
    const receivers = CLASSES.flatMap((c) => (c.receiver ? [c.receiver] : []));
    progress('building the lab: namespaces pacer-demo-send and pacer-demo-recv, veth pd0–pd1, a cgroup for the traffic');
    await lab.build(receivers);

    const api = lab.pacer('pacer api', ['api', '--listen', '127.0.0.1:0', '--db', join(lab.workDir, 'pacer.db')], { PACER_ADMIN_TOKEN: lab.adminToken });
    const apiUrl = (await outputMatch(api, /listening on (http:\/\/\S+)/, 60_000))[1]!;
    const client = new PacerClient(apiUrl, lab.adminToken);
    const call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => rest(client, method, path, body, headers);
    progress(`API at ${apiUrl}; to use it from another shell: export PACER_API=${apiUrl} PACER_TOKEN=${lab.adminToken}`);

    // The agent authenticates as an operator would set it up: a token bound to its host.
    const agentToken = (await call('POST', '/v1/tokens', { name: 'demo-agent', role: 'agent', host: HOST })).token as string;
    const stateDir = join(lab.workDir, 'agent-state');
    progress(`agent's state: ${stateDir}`);
    lab.teardownAgentOnRemove(stateDir);
    lab.pacer('pacer agent', [
      'agent', '--api', apiUrl, '--iface', IFACE, '--netns', `/run/netns/${SENDER_NS}`, '--host', HOST,
      ...Object.entries(HOST_LABELS).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      '--state-dir', stateDir, '--pin-base', PIN_BASE, '--cgroup-root', lab.cgroup, '--backoff-max', '1s', '--heartbeat', '2s',
    ], { PACER_TOKEN: agentToken });

    for (const c of CLASSES) await call('POST', '/v1/classes', { name: c.name, ...c.body, hosts: { matchLabels: HOST_LABELS } });
    const listed = async (): Promise<ApiClass[]> => (await call('GET', '/v1/classes')).items as ApiClass[];
    const { revision } = await call('GET', '/v1/classes');
    progress(`created ${CLASSES.map((c) => c.name).join(', ')} through POST /v1/classes; waiting for the agent to apply revision ${revision}`);
    await until('the agent to apply the classes and report its mode', async () => {
      const host = await call('GET', `/v1/hosts/${HOST}`).catch(() => undefined);
      return host?.status?.mode && host.status.appliedRevision >= revision ? true : undefined;
    }, 90_000, watch);

    const ports = receivers.map((_, i) => FIRST_PORT + i);
    for (const port of ports) await lab.listening(port, lab.iperfServer(port));
    watch();
    reader = new KernelReader(PIN_BASE, IFACE);
    const delivered = new DeliveredReader(SENDER_NS);
    const receiverOf = new Map(CLASSES.flatMap((c) => (c.receiver ? [[c.name, c.receiver] as const] : [])));
    for (const [i, to] of receivers.entries()) lab.iperfClient(to, ports[i]!);
    reader.reset();
    await delivered.reset();
    progress('iperf3 traffic started');

    const notes = new Map(CLASSES.flatMap((c) => (c.note ? [[c.name, c.note] as const] : [])));
    const ctx: FrameContext = { apiUrl, token: lab.adminToken, durationS: o.durationS, logDir: lab.workDir, stateDir };
    const changeAt = o.durationS === undefined ? (t: number) => t > 0 && t % CHANGE_EVERY_S === 0 : (t: number) => t === Math.floor(o.durationS! / 2);
    const seconds: Second[] = [];
    const changes: DemoSummary['changes'] = [];
    const started = performance.now();
    for (let t = 1; o.durationS === undefined || t <= o.durationS; t++) {
      // Each second on the clock from the start, whatever the reading cost.
      const wait = started + t * 1000 - performance.now();
      await sleep(Math.max(0, wait), undefined, { signal: stop.signal }).catch(() => {});
      if (stop.signal.aborted) break;
      watch();
      const [classes, host, bps] = await Promise.all([listed(), call('GET', `/v1/hosts/${HOST}`), delivered.second()]);
      const second = reader.second(t, classes, host.status ?? { mode: 'unknown' }, bps, receiverOf);
      seconds.push(second);
      if (changeAt(t)) {
        const current = await call('GET', `/v1/classes/${CHANGE.className}`);
        const to = CHANGE.rates[changes.length % 2 === 0 ? 1 : 0];
        await call('PATCH', `/v1/classes/${CHANGE.className}`, { rate: to }, { 'if-match': current.etag });
        const from = CHANGE.rates[changes.length % 2 === 0 ? 0 : 1];
        changes.push({ atS: t, className: CHANGE.className, from, to });
        ctx.lastChange = { atS: t, text: `PATCH /v1/classes/${CHANGE.className} {"rate": "${to}"} (was ${from})` };
      }
      if (o.durationS === undefined) ctx.nextChangeAtS = (Math.floor(t / CHANGE_EVERY_S) + 1) * CHANGE_EVERY_S;
      else ctx.nextChangeAtS = changes.length === 0 ? Math.floor(o.durationS / 2) : undefined;
      if (!o.json) print(renderFrame(second, ctx, notes));
      else progress(`${t} s: ${second.classes.map((c) => `${c.name} ${(c.achievedBps / 1e6).toFixed(1)}/${((c.effectiveBps ?? 0) / 1e6).toFixed(1)}`).join(' · ')} Mbit/s (${second.mode})`);
    }
    const stoppedBy = stop.signal.aborted ? (stop.signal.reason as string) : undefined;
    return { ...summarise(seconds, changes, seconds.length, o.durationS === undefined || stoppedBy !== undefined), ...(stoppedBy ? { stoppedBy } : {}) };
  } catch (err) {
    failed = !stop.signal.aborted; // a stop asked for is not a failure whose logs are wanted
    throw err;
  } finally {
    stopping = true;
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    // A second Ctrl-C while cleaning up would leave things behind: ignored until done.
    const ignore = () => progress('still cleaning up…');
    process.on('SIGINT', ignore);
    reader?.close();
    await lab.remove();
    if (failed) progress(`logs kept in ${lab.workDir}`);
    else lab.removeWorkDir();
    process.off('SIGINT', ignore);
    progress('removed the namespaces, the cgroup, the pins and the processes');
    if ('lock' in held) await held.lock.release();
  }
}

function humanSummary(s: DemoSummary): string {
  const stopped = s.stoppedBy ? `stopped by ${s.stoppedBy} after ${s.durationS} s; ` : '';
  const lines = [`pacer demo: ${stopped}${s.ok ? 'every class within' : 'NOT every class within'} ±${s.tolerancePct}% of its effective rate (${s.modeDetail ?? s.mode})`];
  for (const p of s.phases) {
    lines.push(`  ${p.fromS}–${p.toS} s (${p.steadySeconds} steady seconds):`);
    for (const c of p.classes) lines.push(`    ${c.name.padEnd(8)} ${(c.achievedBps / 1e6).toFixed(2)} of ${(c.effectiveBps / 1e6).toFixed(2)} Mbit/s (${c.errorPct >= 0 ? '+' : ''}${c.errorPct}%)${c.ok ? '' : '  ← outside tolerance'}`);
  }
  for (const p of s.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n') + '\n';
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('show pacer at work on this host: a lab of namespaces, the API, the agent, iperf3 traffic and a live table of budgets becoming rates (root)')
    .option('--duration <time>', `run this long (e.g. 20s; at least ${MIN_DURATION_S}s), change a budget halfway and exit with the verdict; default: until Ctrl-C, changing a budget every ${CHANGE_EVERY_S} s`, durationSeconds)
    .option('--json', 'no live table: progress on stderr, and a JSON summary on stdout at the end')
    .addOption(new Option('--vm', `run the same lab inside the enforcement tier's VM (Debian 12's kernel, with fq): real EDT pacing; default --duration ${DEFAULT_VM_S}s`))
    // How `--vm` gets the guest's summary back (through the VM's results share).
    .addOption(new Option('--summary-file <file>', 'also write the JSON summary to this file').hideHelp())
    .addHelpText('after', '\nExit status: 0 when every class achieved its effective rate within the tolerance (2% shaping, 10% policing), 1 otherwise or on an error.')
    .action(async (opts: { duration?: number; json?: boolean; vm?: boolean; summaryFile?: string }) => {
      const o: DemoOptions = { durationS: opts.duration, json: opts.json === true, vm: opts.vm === true };
      const tty = process.stdout.isTTY && !o.json;
      const print = (frame: string) => process.stdout.write(tty ? `\x1b[H\x1b[J${frame}` : `${frame}\n`);
      const progress = (line: string) => process.stderr.write(`${line}\n`);
      try {
        const summary = o.vm ? await (await import('./in-vm.js')).runDemoInVm(o, progress) : await runDemo(o, print, progress);
        const json = `${JSON.stringify(summary, null, 2)}\n`;
        if (opts.summaryFile) writeFileSync(opts.summaryFile, json);
        process.stdout.write(o.json ? json : humanSummary(summary));
        process.exitCode = summary.ok ? 0 : 1;
      } catch (err) {
        if (!(err instanceof DemoError)) throw err;
        process.stderr.write(`pacer demo: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
