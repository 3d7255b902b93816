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
import { runDoctor } from '../../controller/doctor/checks.js';
import { installInterface, uninstallInterface } from '../../shaper-bpf/src/interface.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { TestNetns } from '../support/netns.js';
import { BpfError, readSkbContext, skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { frame } from '../support/packets.js';
import { TestClasses } from '../support/slots.js';
import { TEST_RUN, type GuestReport, type StepResult } from './guest-report.js';
import { isDeepStrictEqual } from 'node:util';
import { Datapath, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { u32Key } from '../../shaper-bpf/src/layout.js';

/** The batch-read step's size: enough classes that every read spans many hash buckets and slots. */
const BATCH_READ = { classes: 1_000 } as const;

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

  // Whole-map reads (BPF_MAP_LOOKUP_BATCH, since 5.6) on 6.1: each map the Datapath reads, read
  // in batches and by one lookup per key must give the same entries, and a no-op apply writes nothing.
  await step('batchRead', () => {
    if (!egress) throw new Error('pacer_tc.o did not load');
    const eg = egress;
    const desired: ShaperState = { classes: new Map(), marks: new Map(), cgroups: new Map([[7n, 1]]), dst4: new Map(), dst6: new Map(), settings: { default_class: 0, flags: 0 } };
    for (let id = 1; id <= BATCH_READ.classes; id++) {
      desired.classes.set(id, { rate_bps: 1_000_000 * id, burst_ns: 0, horizon_ns: 2_000_000_000, ecn_ns: 0, parent_id: id > 10 ? (id % 10) + 1 : 0, flags: 0 });
      desired.marks.set(1_000 + id, id);
    }
    for (let i = 0; i < 50; i++) desired.dst4.set(`10.${i}.0.0/16`, i + 1);
    desired.dst6.set('2001:db8::/32', 2);
    const dp = new Datapath(eg);
    let t = performance.now();
    dp.apply(desired);
    const applyMs = Math.round(performance.now() - t);
    const maps = { hash: eg.slots.map, lpm: eg.dst4.map, array: eg.config.map, percpuArray: eg.stats.map };
    const sameAsLookups = Object.fromEntries(
      Object.entries(maps).map(([kind, m]) => {
        const read = m.readEntries();
        const byKey = new Map<string, string>();
        for (let i = 0; i < read.count; i++) byKey.set(read.keys.subarray(i * m.keySize, (i + 1) * m.keySize).toString('hex'), read.values.subarray(i * m.valueBufferSize, (i + 1) * m.valueBufferSize).toString('hex'));
        const walked = new Map([...m.keys()].map((k) => [k.toString('hex'), m.lookup(k)!.toString('hex')] as const));
        const same = read.count === byKey.size && byKey.size === walked.size && [...walked].every(([k, v]) => byKey.get(k) === v);
        return [kind, { entries: read.count, same, lookupBatch: m.hasLookupBatch }];
      }),
    );
    const arrayHead = eg.config.readArray(BATCH_READ.classes + 1);
    const arrayHeadSame = arrayHead.equals(Buffer.concat(Array.from({ length: BATCH_READ.classes + 1 }, (_, slot) => eg.config.map.lookup(u32Key(slot))!)));
    t = performance.now();
    const noop = dp.apply(desired).changes;
    const noopMs = Math.round(performance.now() - t);
    const readBack = isDeepStrictEqual(dp.read(), desired);
    dp.apply({ ...desired, classes: new Map(), marks: new Map(), cgroups: new Map(), dst4: new Map(), dst6: new Map() });
    return { classes: BATCH_READ.classes, applyMs, noopMs, noop, readBack, sameAsLookups, arrayHeadSame };
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

  // pacer doctor's checks on a kernel with fq (the same code `pacer doctor` runs).
  await step('doctor', async () => {
    const r = await runDoctor({ pinBase: '/sys/fs/bpf/pacer-doctor-none' });
    return { verdict: r.verdict, failed: r.checks.filter((c) => c.status === 'fail').map((c) => `${c.name}: ${c.found}`), fq: r.checks.find((c) => c.name.startsWith('sch_fq'))?.status };
  });

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
