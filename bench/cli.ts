/**
 * `npm run bench:cli`: how long a `pacer` command takes from spawn to exit (issue 11: at most
 * 300 ms for `--version` and `class ls` against a running API). Each command runs RUNS times in
 * turn with the others; the baseline is Node itself starting and exiting (`node -e 0`) in the same
 * rounds, so a busy machine moves both. `agent --help` loads the agent's whole module tree: what
 * every command cost while the CLI imported all subcommands at start.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, request } from '../test/support/api-server.js';
import { CLI, killed, startApiChild } from '../test/support/api-process.js';
import { fmt, git, log, machineInfo, met, resultsDir, summary, table } from './report.js';

const RUNS = Number(process.env.PACER_BENCH_RUNS ?? 15);
const TARGET_MS = 300;

const dir = mkdtempSync(join(tmpdir(), 'pacer-bench-cli-'));
const api = await startApiChild(join(dir, 'pacer.db'));
try {
  for (let i = 0; i < 20; i++) {
    const r = await request(api.url, 'POST', '/v1/classes', { token: ADMIN_TOKEN, body: { name: `bench-${i}`, rate: '10mbit', match: { dst: [`10.77.0.${i + 1}/32`] } } });
    if (r.status !== 201) throw new Error(`creating a class: ${r.status} ${JSON.stringify(r.body)}`);
  }
  const env = { ...process.env, PACER_API: api.url, PACER_TOKEN: ADMIN_TOKEN };
  const commands: Array<{ name: string; args: string[]; target?: number }> = [
    { name: 'node -e 0 (baseline)', args: ['-e', '0'] },
    { name: 'pacer --version', args: [CLI, '--version'], target: TARGET_MS },
    { name: 'pacer class ls (20 classes)', args: [CLI, 'class', 'ls'], target: TARGET_MS },
    { name: 'pacer agent --help (all of the agent)', args: [CLI, 'agent', '--help'] },
  ];
  const times = new Map(commands.map((c) => [c.name, [] as number[]]));
  for (let round = 0; round < RUNS; round++) {
    for (const c of commands) {
      const t = process.hrtime.bigint();
      const r = spawnSync(process.execPath, c.args, { env, encoding: 'utf8' });
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
      times.get(c.name)!.push(ms);
    }
  }
  const base = summary(times.get(commands[0]!.name)!).median;
  const rows = commands.map((c) => {
    const s = summary(times.get(c.name)!);
    return [c.name, fmt(s.median), fmt(s.min), fmt(s.max), `${fmt(s.median / base, 1)}×`, c.target ? `≤ ${c.target} ms: ${met(s.median <= c.target)}` : ''];
  });
  const text = table([['command', 'median ms', 'min', 'max', 'vs node -e 0', 'target'], ...rows]);
  process.stdout.write(`${text}\n\n${RUNS} runs each, interleaved; wall time from spawn to exit.\n`);
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `cli-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ commit: git(['rev-parse', 'HEAD']), machine: machineInfo(), runs: RUNS, results: Object.fromEntries([...times].map(([k, v]) => [k, summary(v)])) }, null, 2) + '\n');
  log(`results: ${file}`);
} finally {
  await killed(api.child, 'SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
