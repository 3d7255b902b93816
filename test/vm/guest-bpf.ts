/**
 * Runs INSIDE the VM (test/vm/kernel-6.1.spec.ts boots it): loads pacer's BPF objects with
 * pacer's own binding on the guest kernel, pushes packets through the egress program with
 * BPF_PROG_TEST_RUN, and asks probeFq(). It asserts nothing: it records what the kernel said in
 * $RESULTS/result.json (rewritten after every step, so a crash still leaves the steps before it)
 * and the spec asserts on the host. Not a *.spec file, so mocha never runs it on the host.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { EgressObject, objectPath } from '../../shaper-bpf/src/egress.js';
import { TcpTuningObject } from '../../shaper-bpf/src/sockops.js';
import { probeFq, readRootQdisc, setupFq } from '../../shaper-bpf/src/qdisc.js';
import { installInterface, uninstallInterface } from '../../shaper-bpf/src/interface.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { TestNetns } from '../support/netns.js';
import { BpfError, readSkbContext, skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { frame } from '../support/packets.js';
import { TestClasses } from '../support/slots.js';
import { TEST_RUN, type GuestReport, type StepResult } from './guest-report.js';

const resultsDir = process.env.RESULTS;
if (!resultsDir) throw new Error('guest-bpf: RESULTS is not set (run it through runInVm)');
const report: GuestReport = {
  kernel: release(),
  jitEnabled: readFileSync('/proc/sys/net/core/bpf_jit_enable', 'utf8').trim(),
  steps: {},
};
const save = (): void => writeFileSync(join(resultsDir, 'result.json'), JSON.stringify(report, null, 2));

async function step(name: string, body: () => Record<string, unknown> | Promise<Record<string, unknown>>): Promise<void> {
  const t = performance.now();
  try {
    const found = await body();
    report.steps[name] = { ok: true, ms: Math.round(performance.now() - t), ...found };
  } catch (err) {
    const e = err as Error;
    // A BpfError's message carries the end of the verifier log; keep just its first line here
    // and the whole log in verifierLog (the spec prints its end once).
    const log = e instanceof BpfError ? e.detail : undefined;
    report.steps[name] = {
      ok: false,
      ms: Math.round(performance.now() - t),
      error: log ? `${e.name}: ${e.message.split('\n')[0]}` : (e.stack ?? String(e)),
      ...(log ? { verifierLog: log } : {}),
    };
  }
  save();
}

const pinRoot = makePinDir();
let egress: EgressObject | undefined;
try {
  await step('loadTc', () => {
    egress = EgressObject.load({ pinRoot });
    return { object: objectPath('pacer_tc'), programId: egress.program.id, programType: egress.program.type };
  });

  await step('testRun', () => {
    if (!egress) throw new Error('pacer_tc.o did not load');
    const eg = egress;
    // One class with mark 1 at 100 Mbit/s, written the way the kernel tests write it.
    const classes = new TestClasses(eg);
    classes.set(1, { rate_bps: TEST_RUN.rateBps, burst_ns: 0, horizon_ns: 2_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0 });
    classes.mark(1, 1);
    eg.setTestClock(BigInt(TEST_RUN.t0)); // the program reads "now" from its .bss while non-zero
    const data = frame('192.0.2.1');
    const runs = Array.from({ length: TEST_RUN.packets }, () => {
      const r = eg.program.testRun({
        data,
        ctxIn: skbContext({ mark: 1, wireLen: TEST_RUN.wireLen }),
        ctxOutSize: 192,
        dataOutSize: data.length,
      });
      return { verdict: r.retval, tstamp: readSkbContext(r.ctxOut!).tstamp.toString(), durationNs: r.durationNs };
    });
    const stats = classes.stats(1);
    return { t0: String(TEST_RUN.t0), runs, statsPackets: stats?.packets, statsDelayed: stats?.delayed, tLast: String(classes.state(1)?.t_last) };
  });

  await step('loadSockops', () => {
    const sockops = TcpTuningObject.load({ pinRoot });
    try {
      return { object: objectPath('pacer_sockops'), programId: sockops.program.id, programType: sockops.program.type };
    } finally {
      sockops.close();
    }
  });

  await step('probeFq', async () => ({ fq: await probeFq() }));

  // The whole install on a kernel with fq: the mode is shaping, fq is the root, a second set-up
  // changes nothing, and uninstall puts the previous root back.
  await step('installWithFq', async () => {
    const nets = new TestNetns();
    try {
      const a = await nets.createTestNetns();
      const b = await nets.createTestNetns();
      await nets.vethPair({ a: { ns: a, name: 'va', addr: '10.79.0.1/24' }, b: { ns: b, name: 'vb', addr: '10.79.0.2/24' } });
      const options = { iface: 'va', netns: `/run/netns/${a}`, pinRoot: `${pinRoot}-iface`, stateDir: mkdtempSync(join(tmpdir(), 'pacer-state-')) };
      const fq = { horizonNs: 2_000_000_000, flowLimit: 100 };
      const installed = await installInterface({ ...options, fq });
      installed.egress.close();
      const root = await readRootQdisc({ iface: 'va', netns: options.netns });
      const again = await setupFq({ iface: 'va', netns: options.netns }, fq, { saveTo: join(options.stateDir, 'va.qdisc.json') });
      await uninstallInterface(options);
      const after = await readRootQdisc({ iface: 'va', netns: options.netns });
      return { mode: installed.mode, modeDetail: installed.modeDetail, rootKind: root?.kind, rootOptions: root?.options, secondSetup: again.applied, restoredKind: after?.kind ?? 'none' };
    } finally {
      await nets.cleanup();
    }
  });
} finally {
  egress?.close();
  removePinDir(pinRoot);
  save();
}
