/**
 * The systemd units in deploy/systemd/ (docs/operations.md, "systemd units"): systemd's own check
 * of each, and the agent's stop timeout against the deadline the agent gives itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { STOP_DEADLINE_MS } from '../../controller/shutdown.js';

const UNITS = 'deploy/systemd';

/** The value of `key=` in a unit file (the last assignment wins, as in systemd). */
function setting(unit: string, key: string): string | undefined {
  const values = readFileSync(join(UNITS, unit), 'utf8').split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  return values.at(-1);
}

describe('deploy/systemd units', function () {
  this.timeout(30_000);

  it('pass `systemd-analyze verify` (the agent template as instance eth0)', async () => {
    // systemd-analyze loads a template through an instance of it, from the directory it is in.
    const dir = mkdtempSync(join(tmpdir(), 'pacer-units-'));
    try {
      for (const unit of ['pacer-api.service', 'pacer-agent@.service']) copyFileSync(join(UNITS, unit), join(dir, unit));
      const verify = (unit: string) =>
        promisify(execFile)('systemd-analyze', ['verify', unit], { cwd: dir }).catch((err: Error & { code?: string | number; stderr?: string }) => {
          if (err.code === 'ENOENT') throw new Error('systemd-analyze is missing: apt-get install systemd');
          throw new Error(`systemd-analyze verify ${unit}: ${err.stderr ?? err.message}`);
        });
      for (const unit of ['./pacer-api.service', 'pacer-agent@eth0.service']) {
        const { stderr } = await verify(unit);
        assert.equal(stderr.trim(), '', `${unit}: systemd-analyze had something to say`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stop the agent with SIGTERM and a timeout longer than its own stop deadline, so systemd never SIGKILLs it', () => {
    assert.equal(setting('pacer-agent@.service', 'KillSignal'), 'SIGTERM');
    const timeout = /^(\d+)s$/.exec(setting('pacer-agent@.service', 'TimeoutStopSec') ?? '');
    assert.ok(timeout, 'TimeoutStopSec in seconds');
    assert.ok(Number(timeout[1]) * 1000 > STOP_DEADLINE_MS, `TimeoutStopSec=${timeout[1]}s must exceed the agent's ${STOP_DEADLINE_MS} ms`);
    assert.equal(setting('pacer-api.service', 'KillSignal'), 'SIGTERM');
  });

  it('give the agent only the capabilities docs/operations.md lists, and the API none', () => {
    assert.deepEqual(setting('pacer-agent@.service', 'CapabilityBoundingSet')?.split(' ').sort(), ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_SYS_ADMIN']);
    assert.equal(setting('pacer-api.service', 'CapabilityBoundingSet'), '');
    for (const unit of ['pacer-api.service', 'pacer-agent@.service']) {
      assert.equal(setting(unit, 'NoNewPrivileges'), 'yes', unit);
      assert.equal(setting(unit, 'ProtectSystem'), 'strict', unit);
    }
  });
});
