/**
 * `pacer doctor` on this host (issue 11): the real command, the real kernel. This machine has no
 * sch_fq, so the verdict is "policing only: no sch_fq" and the exit code 1; on a host with fq the
 * expected verdict follows probeFq() (test/vm/kernel-6.1.spec.ts checks "ready to shape" on
 * Debian's 6.1). With --api, a real API: a valid token, a wrong one, and no API at all.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeFq } from '../../shaper-bpf/src/qdisc.js';
import type { DoctorReport } from '../../controller/doctor/checks.js';
import { ADMIN_TOKEN, request } from '../support/api-server.js';
import { CLI, freePort, killed, startApiChild, type ApiChild } from '../support/agent-processes.js';

function doctor(args: string[], env: Record<string, string> = {}): { code: number | null; report?: DoctorReport; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'doctor', ...args], { encoding: 'utf8', env: { ...process.env, PACER_API: '', PACER_TOKEN: '', ...env }, timeout: 60_000 });
  let report: DoctorReport | undefined;
  try {
    report = args.includes('--json') ? (JSON.parse(r.stdout) as DoctorReport) : undefined;
  } catch {
    // asserted below with the output
  }
  return { code: r.status, report, stdout: r.stdout, stderr: r.stderr };
}

const netnsList = () => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;

describe('pacer doctor on this host (real kernel, real API)', function () {
  this.timeout(120_000);
  let api: ApiChild | undefined;
  let dir: string | undefined;
  after(async () => {
    await killed(api?.child);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gives the verdict fq allows here, with a fix on every line that is not ok, and exits 1 unless it can shape', async function () {
    const fq = await probeFq();
    const r = doctor(['--json']);
    assert.ok(r.report, `JSON on stdout: ${r.stdout}${r.stderr}`);
    const report = r.report;
    this.test!.title += ` (${report.verdict}; exit ${r.code})`;
    assert.equal(report.verdict, fq ? 'ready to shape' : 'policing only: no sch_fq');
    assert.equal(r.code, fq ? 0 : 1);
    const fqLine = report.checks.find((c) => c.name === 'sch_fq (EDT pacing)');
    assert.equal(fqLine?.status, fq ? 'ok' : 'fail');
    if (!fq) assert.match(fqLine!.fix!, /modprobe sch_fq/);
    for (const name of ['root privileges', 'libbpf.so.1', 'kernel BTF', 'bpffs', 'cgroup v2', 'clsact (tc BPF hook)', 'iperf3 (for pacer demo)']) {
      assert.ok(report.checks.some((c) => c.name === name), `a ${name} line`);
    }
    assert.ok(report.checks.some((c) => c.name.startsWith('BPF atomic compare-and-exchange')), 'the kernel feature lines');
    for (const c of report.checks) {
      assert.ok(c.found.length > 0, `${c.name} says what it found`);
      if (c.status !== 'ok') assert.ok(c.fix && c.fix.length > 0, `${c.name} (${c.status}) says how to fix it`);
    }
    assert.doesNotMatch(netnsList(), /pacer-probe-/, 'the probe namespaces are gone');
  });

  it('prints a table with the verdict and a "To fix" list for people', () => {
    const r = doctor([]);
    assert.match(r.stdout, /^pacer doctor on Linux \S+: (ready to shape|policing only: no sch_fq)\n/);
    assert.match(r.stdout, /CHECK\s+FOUND/);
    if (r.code !== 0) assert.match(r.stdout, /\nTo fix:\n- /);
  });

  it('--api: a valid token is ok; a wrong one and an unreachable API fail, naming why, and exit 1', async () => {
    dir = mkdtempSync(join(tmpdir(), 'pacer-doctor-'));
    api = await startApiChild(join(dir, 'pacer.db'), await freePort());
    const line = (r: ReturnType<typeof doctor>) => r.report!.checks.find((c) => c.name.startsWith('API at'))!;
    const good = doctor(['--json', '--api', api.url], { PACER_TOKEN: ADMIN_TOKEN });
    assert.deepEqual([line(good).status, line(good).found], ['ok', 'reachable, token valid']);
    const wrong = doctor(['--json', '--api', api.url], { PACER_TOKEN: 'pacer-wrong-token-000000000000000' });
    assert.equal(line(wrong).status, 'fail');
    assert.match(line(wrong).found, /token is refused \(401\): unknown token, or a revoked one/);
    assert.equal(wrong.code, 1);
    // An expired token: the API says when it expired, and the doctor passes that on.
    const made = await request(api.url, 'POST', '/v1/tokens', { body: { name: 'short', role: 'viewer', ttlSeconds: 1 } });
    assert.equal(made.status, 201);
    await new Promise((r) => setTimeout(r, Date.parse(made.body.expiresAt) - Date.now() + 100));
    const expired = doctor(['--json', '--api', api.url], { PACER_TOKEN: made.body.token });
    assert.match(line(expired).found, /token is refused \(401\): this token \(tok_\w+\) expired at /);
    const down = doctor(['--json', '--api', `http://127.0.0.1:${await freePort()}`], { PACER_TOKEN: ADMIN_TOKEN });
    assert.equal(line(down).status, 'fail');
    assert.match(line(down).found, /unreachable: ECONNREFUSED/);
    assert.equal(down.code, 1);
  });
});
