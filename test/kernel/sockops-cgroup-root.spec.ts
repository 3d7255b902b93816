/**
 * The agent's default place for sock_ops (controller/datapath/cgroup-root.ts) on the real kernel:
 * with no cgroup2 mount at a well-known place, the cgroup v2 hierarchy is mounted at
 * /run/pacer/cgroup2 and recorded in the state directory; a second agent start reuses that mount;
 * teardown unmounts it and removes what it made.
 *
 * Run in a private mount namespace (`unshare --mount --propagation private`), where the test first
 * unmounts any cgroup2 mount at the well-known places: the host's mounts are not touched, whatever
 * this machine has mounted (notes/machine.md: cgroup v1 only, but other work may add a cgroup2 mount).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cgroup2Mounts, CGROUP2_MOUNT_RECORD, PACER_CGROUP2_MOUNT, unmountPacerCgroup2, WELL_KNOWN_CGROUP2 } from '../../controller/datapath/cgroup-root.js';

/** Run inside the private mount namespace: prints one JSON line of what it saw. */
const SCRIPT = `
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
const m = await import(process.argv[1]);
const stateDir = process.argv[2];
for (const p of m.WELL_KNOWN_CGROUP2) if (m.cgroup2Mounts().includes(p)) execFileSync('umount', ['-l', p]);
const first = m.resolveCgroupRoot(undefined, stateDir);
const mountedAfterFirst = m.cgroup2Mounts();
const record = readFileSync(join(stateDir, m.CGROUP2_MOUNT_RECORD), 'utf8').trim();
const procs = existsSync(join(first.path, 'cgroup.procs'));
const second = m.resolveCgroupRoot(undefined, stateDir);
const flag = m.resolveCgroupRoot('/some/dir', stateDir);
const mountsOfPacer = m.cgroup2Mounts().filter((p) => p === m.PACER_CGROUP2_MOUNT).length;
const unmounted = m.unmountPacerCgroup2(stateDir);
console.log(JSON.stringify({ first, mountedAfterFirst, record, procs, second, flag, mountsOfPacer, unmounted, after: m.cgroup2Mounts(), recordLeft: existsSync(join(stateDir, m.CGROUP2_MOUNT_RECORD)), dirLeft: existsSync(m.PACER_CGROUP2_MOUNT), again: m.unmountPacerCgroup2(stateDir) ?? null }));
`;

describe('sock_ops\' default cgroup root: the cgroup v2 hierarchy, mounted by the agent when the host has none', function () {
  this.timeout(30_000);
  let stateDir = '';
  const hostHad = cgroup2Mounts();
  before(() => (stateDir = mkdtempSync(join(tmpdir(), 'pacer-cgroot-'))));
  after(() => rmSync(stateDir, { recursive: true, force: true }));

  it('mounts at /run/pacer/cgroup2 and records it; reuses it; a flag wins; teardown unmounts and removes only what it made', async () => {
    assert.equal(existsSync(PACER_CGROUP2_MOUNT), false, `${PACER_CGROUP2_MOUNT} exists before the test: an agent left it, or one runs`);
    const module = fileURLToPath(new URL('../../controller/datapath/cgroup-root.js', import.meta.url));
    const { stdout } = await promisify(execFile)('unshare', ['--mount', '--propagation', 'private', process.execPath, '--input-type=module', '-e', SCRIPT, module, stateDir]);
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    assert.deepEqual(r.first, { path: PACER_CGROUP2_MOUNT, source: 'mounted' });
    assert.ok(r.mountedAfterFirst.includes(PACER_CGROUP2_MOUNT));
    assert.equal(r.record, PACER_CGROUP2_MOUNT);
    assert.equal(r.procs, true, 'a cgroup v2 hierarchy is mounted there');
    assert.deepEqual(r.second, { path: PACER_CGROUP2_MOUNT, source: 'found' }, 'a second start reuses the mount');
    assert.deepEqual(r.flag, { path: '/some/dir', source: 'flag' });
    assert.equal(r.mountsOfPacer, 1, 'mounted once');
    assert.equal(r.unmounted, PACER_CGROUP2_MOUNT);
    assert.ok(!r.after.includes(PACER_CGROUP2_MOUNT));
    assert.deepEqual([r.recordLeft, r.dirLeft, r.again], [false, false, null]);
    // The host's own mounts were never touched.
    for (const p of WELL_KNOWN_CGROUP2) assert.equal(cgroup2Mounts().includes(p), hostHad.includes(p));
    assert.equal(existsSync(join(stateDir, CGROUP2_MOUNT_RECORD)), false);
    assert.equal(unmountPacerCgroup2(stateDir), undefined, 'nothing recorded: teardown does nothing');
  });
});
