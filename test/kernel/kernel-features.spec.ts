/**
 * The kernel feature probes the agent runs at start, on this kernel (6.18 has every feature),
 * and the refusal when a probe is made to fail: it names the feature and the kernel it needs.
 */
import assert from 'node:assert/strict';
import { btfHasMember, checkKernelFeatures, KERNEL_FEATURES, KernelTooOldError } from '../../shaper-bpf/src/kernel-features.js';

describe('kernel feature probes', function () {
  it('finds every feature on this kernel', function () {
    for (const f of KERNEL_FEATURES) assert.equal(f.present(), true, f.name);
    assert.deepEqual(checkKernelFeatures(), []);
  });

  it('reads struct members from the kernel\'s BTF, and says no for ones that are not there', function () {
    assert.equal(btfHasMember('sock_cgroup_data', 'cgroup'), true);
    assert.equal(btfHasMember('sock_cgroup_data', 'no_such_member'), false);
    assert.equal(btfHasMember('no_such_struct_in_vmlinux', 'cgroup'), false);
  });

  it('a tc feature made to fail is a refusal naming it and the kernel it needs', function () {
    const failing = KERNEL_FEATURES.map((f) => (f.program === 'tc' ? { ...f, present: () => false } : f));
    assert.throws(() => checkKernelFeatures(failing), (err: Error) => {
      assert.ok(err instanceof KernelTooOldError);
      assert.match(err.message, /lacks BPF atomic compare-and-exchange \(Linux 5\.12 or later; needed by the tc egress program/);
      assert.match(err.message, /Run pacer on Linux 5\.12 or later/);
      return true;
    });
  });

  it('a probe that throws counts as missing; a sock_ops feature missing is returned with its fallback, not refused', function () {
    const failing = KERNEL_FEATURES.map((f) => (f.name.startsWith('the cgroup pointer') ? { ...f, present: () => { throw new Error('no BTF'); } } : f));
    const missing = checkKernelFeatures(failing);
    assert.deepEqual(missing.map((m) => [m.program, m.since]), [['sockops', '5.15']]);
    assert.match(missing[0]!.fallback!, /no TCP tuning/);
  });
});
