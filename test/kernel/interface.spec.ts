/**
 * Installing pacer on an interface in a namespace the test made: pins, hook, program, qdisc, the
 * mode this fq-less kernel forces, adoption by a second install, and a clean uninstall.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installInterface, reattachInterface, uninstallInterface, POLICING_DETAIL, type InstallOptions, filterOf } from '../../shaper-bpf/src/interface.js';
import { requireBpffs, BpffsMissingError } from '../../shaper-bpf/src/bpffs.js';
import { BpfError, BpfObject, interfaceIndex, tcAttach, tcHookCreate, tcQuery, skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { EgressObject, EGRESS_PROGRAM, PinsMissingError } from '../../shaper-bpf/src/egress.js';
import { classConfig, FREE_SLOT } from '../../shaper-bpf/src/layout.js';
import { struct, TypedMap, u32 } from '../../shaper-bpf/src/typed-map.js';
import { readRootQdisc } from '../../shaper-bpf/src/qdisc.js';
import { useTestNetns, execIn } from '../support/netns.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { frame } from '../support/packets.js';

describe('installing pacer on an interface', function () {
  this.timeout(60_000);
  const nets = useTestNetns();
  let options: InstallOptions;
  let pinRoot: string;
  let stateDir: string;

  before(async () => {
    const a = await nets.createTestNetns();
    const b = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: a, name: 'pa0', addr: '10.77.0.1/24' }, b: { ns: b, name: 'pb0', addr: '10.77.0.2/24' } });
    await execIn(a, 'tc', ['qdisc', 'replace', 'dev', 'pa0', 'root', 'pfifo', 'limit', '77']);
    pinRoot = makePinDir();
    stateDir = mkdtempSync(join(tmpdir(), 'pacer-state-'));
    options = { iface: 'pa0', netns: `/run/netns/${a}`, pinRoot, stateDir };
  });
  after(async () => {
    await uninstallInterface(options).catch(() => {});
    removePinDir(pinRoot);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('attaches the egress program, pins it, and says policing because this kernel has no fq', async () => {
    const installed = await installInterface(options);
    try {
      assert.equal(installed.mode, 'policing');
      assert.equal(installed.modeDetail, POLICING_DETAIL);
      assert.equal(installed.adopted, false);
      assert.equal(tcQuery(filterOf({ iface: 'pa0', netns: options.netns })), installed.programId);
      assert.ok(existsSync(join(pinRoot, 'pacer_egress')));
      assert.ok(existsSync(join(pinRoot, 'class_config')));
      // The root qdisc is untouched when fq is missing.
      const root = await readRootQdisc({ iface: 'pa0', netns: options.netns });
      assert.equal(root?.kind, 'pfifo');
      // Leave a schedule behind for the adoption test.
      installed.datapath.apply({
        ...installed.datapath.read(),
        classes: new Map([[1, { rate_bps: 8_000_000, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: 0, flags: 0 }]]),
        marks: new Map([[9, 1]]),
      });
      installed.egress.setTestClock(7_000_000_000n);
      for (let i = 0; i < 3; i++) installed.egress.program.testRun({ data: frame('10.77.0.2'), ctxIn: skbContext({ mark: 9, wireLen: 1000 }) });
    } finally {
      installed.egress.close();
    }
  });

  it('a second install adopts the attached program and the maps, schedules and delay histograms included', async () => {
    const again = await installInterface(options);
    try {
      assert.equal(again.adopted, true);
      assert.equal(tcQuery(filterOf({ iface: 'pa0', netns: options.netns })), again.programId);
      assert.equal(again.datapath.read().classes.get(1)?.rate_bps, 8_000_000);
      const slot = again.egress.slots.get(1)!;
      assert.equal(again.egress.state.get(slot)?.t_last, 7_000_000_000 + 2_000_000);
      assert.equal(again.datapath.delayHistogram(1)?.total, 3, 'the delay histogram is adopted with its counts');
    } finally {
      again.egress.close();
    }
  });

  it('uninstall removes the filter, the hook it created and the pins, and leaves the qdisc as it was', async () => {
    await uninstallInterface(options);
    assert.equal(tcQuery(filterOf({ iface: 'pa0', netns: options.netns })), undefined);
    assert.equal(existsSync(pinRoot), false);
    const qdiscs = await execIn(options.netns!.split('/').pop()!, 'tc', ['qdisc', 'show', 'dev', 'pa0']);
    assert.doesNotMatch(qdiscs, /clsact/);
    assert.match(qdiscs, /pfifo .*limit 77/);
  });

  it('an agent adopting pins of a pacer from before delay histograms replaces the old program in place: schedules kept, histograms from then on', async () => {
    // The tc object as committed before delay_hist existed (ee8e105), from git.
    const oldObject = join(stateDir, 'pacer_tc-before-delay-hist.o');
    writeFileSync(oldObject, execFileSync('git', ['show', 'ee8e105:shaper-bpf/obj/pacer_tc.o'], { maxBuffer: 16 << 20 }));
    // What the older agent left: its maps pinned, a class with a schedule, its program attached and pinned.
    const old = BpfObject.open(oldObject, { pinRoot });
    let oldId: number;
    try {
      old.load();
      new TypedMap(old.map('class_slot'), u32, u32).set(1, 1);
      new TypedMap(old.map('class_config'), u32, struct(classConfig)).set(1, { ...FREE_SLOT, rate_bps: 8_000_000, horizon_ns: 2e9, class_id: 1 });
      new TypedMap(old.map('mark_class'), u32, u32).set(9, 1);
      old.map('class_state').update(Buffer.from([1, 0, 0, 0]), Buffer.from(new BigUint64Array([5_000_000_000n]).buffer));
      tcHookCreate({ iface: 'pa0', netns: options.netns }, 'egress');
      oldId = tcAttach({ ...filterOf(options), program: old.program(EGRESS_PROGRAM), replace: true }).progId;
      old.program(EGRESS_PROGRAM).pin(join(pinRoot, EGRESS_PROGRAM));
    } finally {
      old.close();
    }
    assert.equal(existsSync(join(pinRoot, 'delay_hist')), false);
    // A reader that must not create pins is told what to do.
    assert.throws(() => EgressObject.load({ pinRoot, requirePinned: true }), (err: unknown) => err instanceof PinsMissingError && err.missing.join() === 'delay_hist');
    assert.equal(existsSync(join(pinRoot, 'delay_hist')), false);

    const installed = await installInterface(options);
    try {
      assert.equal(installed.adopted, false);
      assert.equal(installed.replacedProgramId, oldId);
      assert.notEqual(installed.programId, oldId);
      assert.equal(tcQuery(filterOf(options)), installed.programId, 'this build\'s program is attached');
      assert.ok(existsSync(join(pinRoot, 'delay_hist')));
      const slot = installed.egress.slots.get(1)!;
      assert.equal(installed.egress.state.get(slot)!.t_last, 5_000_000_000, 'the schedule was kept');
      // The agent's first apply gives the adopted class a histogram; the attached program counts into it.
      installed.datapath.apply(installed.datapath.read());
      assert.equal(installed.datapath.delayHistogram(1)!.total, 0);
      installed.egress.setTestClock(7_000_000_000n);
      installed.egress.program.testRun({ data: frame('10.77.0.2'), ctxIn: skbContext({ mark: 9, wireLen: 1000 }) });
      assert.equal(installed.datapath.delayHistogram(1)!.total, 1);
    } finally {
      installed.egress.close();
    }
    const again = await installInterface(options);
    try {
      assert.equal(again.adopted, true, 'this build\'s own program is adopted');
      assert.equal(again.replacedProgramId, undefined);
    } finally {
      again.egress.close();
    }
    await uninstallInterface(options);
  });

  it('reattachInterface: nothing to do while attached; a deleted filter, a removed clsact and a re-created interface get the same program on the same maps back', async () => {
    const ns = options.netns!.split('/').pop()!;
    const installed = await installInterface(options);
    try {
      const sameMaps = () => {
        // A schedule written now must be there after each repair: the maps are the pinned ones.
        const slot = installed.egress.slots.get(1)!;
        return installed.egress.state.get(slot)!.t_last;
      };
      installed.datapath.apply({
        ...installed.datapath.read(),
        classes: new Map([[1, { rate_bps: 8_000_000, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: 0, flags: 0 }]]),
        marks: new Map([[9, 1]]),
      });
      installed.egress.setTestClock(9_000_000_000n);
      installed.egress.program.testRun({ data: frame('10.77.0.2'), ctxIn: skbContext({ mark: 9, wireLen: 1000 }) });
      const tLast = sameMaps();
      assert.equal(await reattachInterface(options, installed), undefined, 'attached: nothing done');

      await execIn(ns, 'tc', ['filter', 'del', 'dev', 'pa0', 'egress']);
      assert.equal(tcQuery(filterOf(options)), undefined);
      const r1 = await reattachInterface(options, installed);
      assert.equal(r1?.cause, 'filter deleted');
      assert.equal(r1?.programId, installed.programId);
      assert.equal(tcQuery(filterOf(options)), installed.programId, 'the same program is attached again');

      await execIn(ns, 'tc', ['qdisc', 'del', 'dev', 'pa0', 'clsact']);
      const r2 = await reattachInterface(options, installed);
      assert.equal(r2?.cause, 'clsact removed');
      assert.equal(tcQuery(filterOf(options)), installed.programId);
      assert.ok(existsSync(join(stateDir, 'pa0.clsact-created')), 'pacer created clsact again: uninstall removes it');

      // Another program in pacer's filter slot (another tool, a stray build) is replaced by pacer's.
      const otherPins = makePinDir();
      const other = EgressObject.load({ pinRoot: otherPins });
      try {
        const otherId = tcAttach({ ...filterOf(options), program: other.program, replace: true }).progId;
        const r = await reattachInterface(options, installed);
        assert.equal(r?.cause, 'filter replaced');
        assert.match(r!.detail, new RegExp(`replaced by program ${otherId}`));
        assert.equal(tcQuery(filterOf(options)), installed.programId);
      } finally {
        other.close();
        removePinDir(otherPins);
      }

      const oldIndex = installed.ifindex;
      await execIn(ns, 'ip', ['link', 'del', 'pa0']);
      await assert.rejects(reattachInterface(options, installed), (err: unknown) => err instanceof BpfError && err.errno === 19 && /no interface named "pa0"/.test(err.message));
      const peerNs = nets.created[1]!;
      await execIn(ns, 'ip', ['link', 'add', 'pa0', 'type', 'veth', 'peer', 'name', 'pb0', 'netns', peerNs]);
      await execIn(ns, 'ip', ['link', 'set', 'pa0', 'up']);
      const r3 = await reattachInterface(options, { ...installed });
      assert.equal(r3?.cause, 'interface re-created');
      assert.notEqual(r3?.ifindex, oldIndex);
      assert.equal(r3?.ifindex, interfaceIndex('pa0', options.netns));
      assert.equal(r3?.mode, 'policing', 'no fq on this kernel: policing, as at install');
      assert.equal(tcQuery(filterOf(options)), installed.programId);
      assert.equal(sameMaps(), tLast, 't_last survived every lapse');
      assert.equal(await reattachInterface(options, { ...installed, ifindex: r3!.ifindex }), undefined);
    } finally {
      installed.egress.close();
    }
    // An agent that adopted the program holds its own load of the object (another program id):
    // the pinned program, the one that was attached, is what goes back.
    const adopted = await installInterface(options);
    try {
      assert.equal(adopted.adopted, true);
      assert.notEqual(adopted.egress.program.id, adopted.programId);
      await execIn(ns, 'tc', ['filter', 'del', 'dev', 'pa0', 'egress']);
      assert.equal((await reattachInterface(options, adopted))?.programId, installed.programId);
      assert.equal(tcQuery(filterOf(options)), installed.programId);
    } finally {
      adopted.egress.close();
    }
    await uninstallInterface(options);
    const qdiscs = await execIn(ns, 'tc', ['qdisc', 'show', 'dev', 'pa0']);
    assert.doesNotMatch(qdiscs, /clsact/, 'the re-created clsact is removed at uninstall');
  });

  it('uninstall of an interface that was deleted removes the pins and records (the device took its filters and qdiscs)', async () => {
    const ns = options.netns!.split('/').pop()!;
    const installed = await installInterface(options);
    installed.egress.close();
    writeFileSync(join(stateDir, 'pa0.qdisc.json'), '{}'); // as if pacer had recorded a root to restore
    await execIn(ns, 'ip', ['link', 'del', 'pa0']);
    try {
      await uninstallInterface(options);
      assert.equal(existsSync(pinRoot), false, 'unpinned');
      assert.equal(existsSync(join(stateDir, 'pa0.qdisc.json')), false);
      assert.equal(existsSync(join(stateDir, 'pa0.clsact-created')), false);
    } finally {
      await execIn(ns, 'ip', ['link', 'add', 'pa0', 'type', 'veth', 'peer', 'name', 'pb0', 'netns', nets.created[1]!]);
    }
  });

  it('an unknown interface is a clear error naming it, and a failed first install leaves no pins', async () => {
    const dir = join(makePinDir(), 'nope0');
    try {
      await assert.rejects(installInterface({ ...options, iface: 'nope0', pinRoot: dir }), /nope0/);
      assert.equal(existsSync(dir), false);
    } finally {
      removePinDir(join(dir, '..'));
    }
  });

  it('says how to fix a missing bpffs', () => {
    assert.throws(() => requireBpffs('/tmp'), BpffsMissingError);
    assert.throws(() => requireBpffs('/tmp'), /mount it with "mount -t bpf bpf \/tmp"/);
  });
});
