/**
 * bpffs on a fresh machine: nothing mounts it at boot, so ensureBpffs (used by the agent and by
 * the kernel tests) must mount it, and say clearly why when it cannot.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBpffs, isBpffsMounted } from '../../shaper-bpf/src/bpffs.js';

const BPFFS_MODULE = fileURLToPath(new URL('../../shaper-bpf/src/bpffs.js', import.meta.url));

describe('bpffs: mounted when missing', function () {
  this.timeout(20_000);

  it('mounts bpffs on a private mount point that has none, and leaves a mounted one alone', function () {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-bpffs-'));
    try {
      assert.equal(isBpffsMounted(dir), false);
      assert.equal(ensureBpffs(dir), true, 'the first call mounts');
      assert.equal(isBpffsMounted(dir), true);
      assert.equal(ensureBpffs(dir), false, 'the second call finds it mounted');
    } finally {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('mounts /sys/fs/bpf in a mount namespace where it was unmounted (a freshly booted host)', function () {
    // A private mount namespace: the umount and the mount below never touch the host's mounts.
    const script = `
      import { execFileSync } from 'node:child_process';
      import { ensureBpffs, isBpffsMounted } from ${JSON.stringify(BPFFS_MODULE)};
      while (isBpffsMounted()) execFileSync('umount', ['/sys/fs/bpf']);
      const before = isBpffsMounted();
      const mounted = ensureBpffs();
      console.log(JSON.stringify({ before, mounted, after: isBpffsMounted() }));`;
    const out = execFileSync('unshare', ['--mount', '--propagation', 'private', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), { before: false, mounted: true, after: true });
  });

  it('a mount that fails is a BpffsMissingError that says why and how to mount it by hand', function () {
    // An agent started without root: mount(2) refuses.
    const dir = mkdtempSync(join(tmpdir(), 'pacer-bpffs-'));
    chmodSync(dir, 0o755);
    try {
      const script = `
        import { ensureBpffs } from ${JSON.stringify(BPFFS_MODULE)};
        try { ensureBpffs(${JSON.stringify(dir)}); console.log(JSON.stringify({ mounted: true })); }
        catch (err) { console.log(JSON.stringify({ name: err.constructor.name, message: err.message })); }`;
      const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
      const { name, message } = JSON.parse(out) as { name: string; message: string };
      assert.equal(name, 'BpffsMissingError');
      assert.match(message, /could not mount it \(mount: .*must be superuser/);
      assert.ok(message.includes(`mount it with "mount -t bpf bpf ${dir}"`), message);
      assert.equal(isBpffsMounted(dir), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
