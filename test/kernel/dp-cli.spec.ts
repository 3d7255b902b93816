/** `pacer dp` reads what an interface enforces from the pinned maps, with no API and no agent. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { installInterface, uninstallInterface, type InstallOptions } from '../../shaper-bpf/src/interface.js';
import type { ShaperState } from '../../shaper-bpf/src/datapath.js';
import { writeSnapshot } from '../../controller/reconciler/snapshot.js';
import { interfaceSnapshotFile } from '../../controller/reconciler/snapshot-names.js';
import { skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { useTestNetns } from '../support/netns.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { frame } from '../support/packets.js';

const CLI = join(process.cwd(), 'dist/api/cli/pacer.js');
const pacer = (...args: string[]) => promisify(execFile)(process.execPath, [CLI, ...args]);

describe('pacer dp (reading the pinned maps)', function () {
  this.timeout(60_000);
  const nets = useTestNetns();
  let base: string;
  let options: InstallOptions;
  let enforced: ShaperState;
  /** The agent's --state-dir for each case: none, a snapshot with names, one from before names. */
  let noSnapshot: string;
  let named: string;
  let unnamed: string;

  before(async () => {
    const a = await nets.createTestNetns();
    const b = await nets.createTestNetns();
    await nets.vethPair({ a: { ns: a, name: 'dp0', addr: '10.78.0.1/24' }, b: { ns: b, name: 'dp1', addr: '10.78.0.2/24' } });
    base = makePinDir();
    options = { iface: 'dp0', netns: `/run/netns/${a}`, pinRoot: join(base, 'dp0'), stateDir: mkdtempSync(join(tmpdir(), 'pacer-state-')) };
    const installed = await installInterface(options);
    try {
      enforced = {
        classes: new Map([[5, { rate_bps: 20_000_000, burst_ns: 1_000_000, horizon_ns: 2_000_000, ecn_ns: 0, parent_id: 0, flags: 0 }]]),
        marks: new Map([[42, 5]]),
        cgroups: new Map(),
        dst4: new Map([['10.78.0.0/24', 5]]),
        dst6: new Map(),
        settings: installed.datapath.read().settings,
      };
      installed.datapath.apply(enforced);
      // At a fixed clock: 1500 B at 20 Mbit/s is 600 µs, and 1 ms of burst lets the first two
      // leave at once; the third is held 200 µs, the fourth 800 µs.
      installed.egress.setTestClock(9_000_000_000n);
      for (let i = 0; i < 4; i++) installed.egress.program.testRun({ data: frame('10.78.0.2'), ctxIn: skbContext({ wireLen: 1500 }) });
      installed.egress.setTestClock(0n);
    } finally {
      installed.egress.close();
    }
  });
  before(() => {
    noSnapshot = join(options.stateDir, 'none');
    named = join(options.stateDir, 'named');
    unnamed = join(options.stateDir, 'unnamed');
    for (const d of [noSnapshot, named, unnamed]) mkdirSync(d);
    // As the agent writes them (snapshot.ts), with the names it stores since names were added, and without.
    writeSnapshot(interfaceSnapshotFile(named, 'dp0'), { revision: 7, state: enforced, names: new Map([[5, 'web-5']]) });
    writeSnapshot(interfaceSnapshotFile(unnamed, 'dp0'), { revision: 7, state: enforced });
  });
  after(async () => {
    await uninstallInterface(options).catch(() => {});
    removePinDir(base);
    rmSync(options.stateDir, { recursive: true, force: true });
  });

  it('status shows the interface, its mode and counts', async () => {
    const { stdout } = await pacer('dp', 'status', '--pin-base', base);
    // Unclassified counts whatever the kernel itself sends on the link (IPv6 neighbour discovery…).
    assert.match(stdout, /dp0\s+policing \(fq unavailable\)\s+1\s+2\s+\d+\n/);
  });

  it('classes shows rates and selectors as the kernel holds them, and each class\'s name from the agent\'s snapshot', async () => {
    const { stdout, stderr } = await pacer('dp', 'classes', '--pin-base', base, '--state-dir', named);
    assert.match(stdout, /^IFACE\s+CLASS-ID\s+NAME\s+RATE\s+BURST/);
    assert.match(stdout, /dp0\s+5\s+web-5\s+20mbit\s+1ms\s+2ms\s+<none>\s+<none>\s+mark 42, 10\.78\.0\.0\/24/);
    assert.equal(stderr, '');
    const json = JSON.parse((await pacer('dp', 'classes', '--json', '--pin-base', base, '--state-dir', named)).stdout);
    assert.equal(json[0].classes['5'].rate_bps, 20_000_000);
    assert.equal(json[0].classes['5'].burst_ns, 1_000_000, 'JSON keeps exact integer ns');
    assert.deepEqual(json[0].classNames, { 5: 'web-5' });
    assert.equal(json[0].dst4['10.78.0.0/24'], 5);
  });

  it('without a snapshot: ids only, and one line saying where names come from', async () => {
    const { stdout, stderr } = await pacer('dp', 'classes', '--pin-base', base, '--state-dir', noSnapshot);
    assert.match(stdout, /^IFACE\s+CLASS-ID\s+RATE\s/);
    assert.match(stdout, /dp0\s+5\s+20mbit\s+1ms\s+2ms\s/);
    assert.equal(stderr, `dp0: class names unknown: no agent snapshot at ${interfaceSnapshotFile(noSnapshot, 'dp0')}; names come from the agent's snapshots: pass its --state-dir as --state-dir\n`);
    assert.equal(JSON.parse((await pacer('dp', 'classes', '--json', '--pin-base', base, '--state-dir', noSnapshot)).stdout)[0].classNames, null);
  });

  it('a snapshot from before class names: the NAME column shows <none>, one line says why, nothing fails', async () => {
    const { stdout, stderr } = await pacer('dp', 'stats', '--pin-base', base, '--state-dir', unnamed);
    assert.match(stdout, /dp0\s+5\s+<none>\s+4\s+6000\s/);
    assert.match(stderr, /^dp0: class names unknown: the agent's snapshot .* predates class names: the agent adds them at its next apply\n$/);
  });

  it('stats shows the per-class counters summed over CPUs, and p50/p99 of the queueing delay', async () => {
    const { stdout } = await pacer('dp', 'stats', '--pin-base', base, '--iface', 'dp0', '--state-dir', named);
    // p50: the 2nd of 4 packets, not delayed (the first bucket, under 1.024 µs); p99: the 4th, 800 µs
    // (bucket [743,424, 882,688) ns, printed as its upper bound rounded up). Durations for a
    // person: 500µs, not 500000ns.
    assert.match(stdout, /MEAN-DELAY\s+P50-DELAY\s+P99-DELAY/);
    assert.match(stdout, /dp0\s+5\s+web-5\s+4\s+6000\s+2\s+500µs\s+<1\.03µs\s+<883µs\s/);
  });

  it('stats --json carries each class\'s delay buckets (the non-empty ones) and p50/p99 in ns, and exact ns', async () => {
    const json = JSON.parse((await pacer('dp', 'stats', '--json', '--pin-base', base, '--iface', 'dp0', '--state-dir', named)).stdout);
    assert.equal(json[0].stats['5'].delay_ns, 1_000_000, 'the delay counter in integer ns (200 µs + 800 µs), not humanised');
    assert.deepEqual(json[0].classNames, { 5: 'web-5' });
    assert.deepEqual(json[0].delays['5'], {
      total: 4,
      p50Ns: 1024,
      p99Ns: 882_688,
      buckets: [
        { lowerNs: 0, upperNs: 1024, count: 2 },
        { lowerNs: 185_856, upperNs: 220_672, count: 1 },
        { lowerNs: 743_424, upperNs: 882_688, count: 1 },
      ],
    });
  });

  it('maps pinned by an older pacer (no delay_hist) are a clear error that says how to upgrade, and reading creates no pin', async () => {
    rmSync(join(base, 'dp0', 'delay_hist'));
    await assert.rejects(pacer('dp', 'stats', '--pin-base', base, '--iface', 'dp0'), (err: { code: number; stderr: string }) => err.code === 1 && /lack delay_hist/.test(err.stderr) && /Restart the agent/.test(err.stderr));
    assert.equal(existsSync(join(base, 'dp0', 'delay_hist')), false);
  });

  it('an interface without pacer is a clear error with exit code 1', async () => {
    await assert.rejects(pacer('dp', 'stats', '--pin-base', base, '--iface', 'eth9'), (err: { code: number; stderr: string }) => err.code === 1 && /not installed on eth9/.test(err.stderr));
  });
});
