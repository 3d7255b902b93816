/**
 * What this host's kernel (6.18, no sch_fq) cannot show: pacer's BPF objects load and run on
 * Debian 12's own kernel (6.1), and fq exists there. Boots that kernel once under qemu (software
 * emulation; vm/runner.ts), runs test/vm/guest-bpf.js inside on this repo's dist/ and
 * shaper-bpf/obj/, and asserts here on what it reported. Run with `npm run test:vm`.
 */
import assert from 'node:assert/strict';
import { probeFq } from '../../shaper-bpf/src/qdisc.js';
import { prepareVm, runInVm, type RunResult, type Vm } from '../../vm/runner.js';
import { TEST_RUN, type GuestReport, type StepResult } from './guest-report.js';

const BPF_PROG_TYPE_SCHED_CLS = 3;
const BPF_PROG_TYPE_SOCK_OPS = 13;
const TC_ACT_OK = 0;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** A failed step's error, with the end of the verifier log when the kernel rejected a program. */
function failure(name: string, step: StepResult | undefined): string {
  if (!step) return `the guest never reached step ${name}`;
  const log = step.verifierLog ? `\nverifier log (end):\n${step.verifierLog.trimEnd().split('\n').slice(-40).join('\n')}` : '';
  return `step ${name} failed in the guest: ${step.error}${log}`;
}

describe('Debian 12 kernel 6.1 in a VM: pacer BPF objects and fq', function () {
  this.timeout(600_000);
  let vm: Vm;
  let run: RunResult;
  let report: GuestReport;
  let prepareMs = 0;

  before(async function () {
    let t = Date.now();
    vm = prepareVm(); // first run: installs packages, downloads the kernel (~tens of s); cached after
    prepareMs = Date.now() - t;
    t = Date.now();
    run = await runInVm({ script: 'node dist/test/vm/guest-bpf.js > "$RESULTS/guest.log" 2>&1', timeoutMs: 300_000 }, vm);
    console.log(`      VM ${vm.kernelVersion}: prepare ${seconds(prepareMs)}, boot to script ${seconds(run.bootMs)}, qemu total ${seconds(run.totalMs)}, runInVm ${seconds(Date.now() - t)}`);
    const json = run.results['result.json'];
    if (json === undefined) {
      throw new Error(`the guest wrote no result.json (script exit ${run.exitCode}). guest.log:\n${run.results['guest.log'] ?? '(none)'}\nconsole (end):\n${run.console.trimEnd().split('\n').slice(-30).join('\n')}`);
    }
    report = JSON.parse(json) as GuestReport;
  });

  it('boots Debian 12\'s 6.1 kernel and the guest script exits 0', function () {
    this.test!.title += ` (${report.kernel}; boot ${seconds(run.bootMs)}, whole VM run ${seconds(run.totalMs)})`;
    assert.equal(report.kernel, vm.kernelVersion);
    assert.match(report.kernel, /^6\.1\./);
    assert.equal(run.exitCode, 0, `guest script exited ${run.exitCode}; guest.log:\n${run.results['guest.log'] ?? ''}`);
  });

  it('pacer_tc.o loads through EgressObject.load (the 6.1 verifier accepts pacer_egress)', function () {
    const s = report.steps.loadTc;
    assert.ok(s?.ok, failure('loadTc', s));
    this.test!.title += ` (prog id ${String(s.programId)}, ${s.ms} ms in the guest)`;
    assert.equal(s.programType, BPF_PROG_TYPE_SCHED_CLS);
  });

  it('BPF_PROG_TEST_RUN through pacer_egress stamps departures one transmission time apart', function () {
    const s = report.steps.testRun;
    assert.ok(s?.ok, failure('testRun', s));
    const runs = s.runs as Array<{ verdict: number; tstamp: string; durationNs: number }>;
    const t0 = BigInt(TEST_RUN.t0);
    const offsets = runs.map((r) => BigInt(r.tstamp) - t0);
    this.test!.title += ` (JIT ${report.jitEnabled === '1' ? 'on' : `bpf_jit_enable=${report.jitEnabled}`}; departures T0+[${offsets.join(', ')}] ns; ${runs.map((r) => r.durationNs).join('/')} ns per run)`;
    assert.deepEqual(runs.map((r) => r.verdict), Array(TEST_RUN.packets).fill(TC_ACT_OK));
    // 1500 B at 100 Mbit/s = 120 µs: the first leaves now, each next one 120 µs after the last.
    assert.deepEqual(offsets, Array.from({ length: TEST_RUN.packets }, (_, i) => BigInt(i * TEST_RUN.gapNs)));
    assert.equal(s.statsPackets, TEST_RUN.packets);
    assert.equal(s.statsDelayed, TEST_RUN.packets - 1);
  });

  it('whole-map reads on 6.1: lookup batches where 6.1 has them, the key walk where not, the same entries as one lookup per key; a no-op apply writes nothing', function () {
    const s = report.steps.batchRead;
    assert.ok(s?.ok, failure('batchRead', s));
    const maps = s.sameAsLookups as Record<string, { entries: number; same: boolean; lookupBatch: boolean }>;
    this.test!.title += ` (${Object.entries(maps).map(([kind, m]) => `${kind} ${m.lookupBatch ? 'batch' : 'walk'}`).join(', ')}; ${String(s.classes)} classes: apply ${String(s.applyMs)} ms, no-op apply ${String(s.noopMs)} ms under emulation)`;
    for (const [kind, m] of Object.entries(maps)) assert.ok(m.same && m.entries > 0, `${kind}: ${JSON.stringify(m)}`);
    // Hash, array and per-CPU maps have lookup batches since 5.6 (5.6's generic_map_lookup_batch for arrays).
    assert.deepEqual([maps.hash!.lookupBatch, maps.array!.lookupBatch, maps.percpuArray!.lookupBatch], [true, true, true]);
    assert.equal(s.arrayHeadSame, true, 'readArray(n) gives the first n entries');
    assert.deepEqual(s.noop, {});
    assert.equal(s.readBack, true, 'the Datapath reads back what it applied');
  });

  it('pacer_sockops.o loads through TcpTuningObject.load', function () {
    const s = report.steps.loadSockops;
    assert.ok(s?.ok, failure('loadSockops', s));
    this.test!.title += ` (prog id ${String(s.programId)}, ${s.ms} ms in the guest)`;
    assert.equal(s.programType, BPF_PROG_TYPE_SOCK_OPS);
  });

  it('probeFq() is true on 6.1 with sch_fq loaded', async function () {
    const s = report.steps.probeFq;
    assert.ok(s?.ok, failure('probeFq', s));
    // For contrast only (not asserted: a host with fq would be fine too).
    const host = await probeFq().catch((e: Error) => `error: ${e.message}`);
    this.test!.title += ` (guest: ${String(s.fq)}, ${s.ms} ms; this host: ${String(host)})`;
    assert.equal(s.fq, true);
  });

  it('pacer doctor says "ready to shape" on 6.1 with sch_fq, with no failed check', function () {
    const s = report.steps.doctor;
    assert.ok(s?.ok, failure('doctor', s));
    this.test!.title += ` (${String(s.verdict)}; sch_fq ${String(s.fq)}; ${s.ms} ms in the guest)`;
    assert.deepEqual(s.failed, []);
    assert.equal(s.verdict, 'ready to shape');
  });

  it('installing on a veth with fq: mode shaping, fq is the root, set-up again changes nothing, uninstall restores', function () {
    const s = report.steps.installWithFq;
    assert.ok(s?.ok, failure('installWithFq', s));
    this.test!.title += ` (root ${String(s.rootKind)} ${JSON.stringify(s.rootOptions)}; after uninstall: ${String(s.restoredKind)})`;
    assert.equal(s.mode, 'shaping');
    assert.equal(s.rootKind, 'fq');
    assert.deepEqual(s.secondSetup, []);
    assert.equal(s.restoredKind, 'noqueue');
  });
});
