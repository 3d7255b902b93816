/**
 * The destination caches after an agent crash. Each prefix-trie write and the settings.generation
 * bump that invalidates the program's cached answers are separate steps. An agent killed between
 * them leaves cached destinations tagged with the current generation; a restarted agent finds the
 * tries already as desired, so only its first apply's unconditional bump makes the program ask
 * the trie again (shaper-bpf/src/datapath.ts, cachesRenewed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { Datapath, type ShaperState } from '../../shaper-bpf/src/datapath.js';
import { skbContext } from '../../shaper-bpf/src/libbpf/index.js';
import type { ClassConfig } from '../../shaper-bpf/src/layout.js';
import { serializeSnapshot } from '../../controller/reconciler/snapshot.js';
import { frame } from '../support/packets.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';

const WORKER = fileURLToPath(new URL('../support/apply-killed-worker.js', import.meta.url));
const cfg = (rate: number): ClassConfig => ({ rate_bps: rate, burst_ns: 0, horizon_ns: 2e9, ecn_ns: 0, parent_id: 0, flags: 0 });
const DST = '10.1.2.3';
const state = (prefixClass: number): ShaperState => ({
  classes: new Map([[1, cfg(100e6)], [2, cfg(10e6)]]),
  marks: new Map(),
  cgroups: new Map(),
  dst4: new Map([['10.1.0.0/16', prefixClass]]),
  dst6: new Map(),
  settings: { default_class: 0, flags: 0 },
});

/** Runs the child until it dies; resolves with its exit code and signal. */
function runWorker(pinRoot: string, s: ShaperState): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, pinRoot, serializeSnapshot(s)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject).once('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

describe('destination caches after an agent killed between a trie write and its generation bump', function () {
  this.timeout(30_000);
  let pinRoot: string;
  let eg: EgressObject | undefined;
  let restarted: EgressObject | undefined;

  before(() => (pinRoot = makePinDir()));
  after(() => {
    eg?.close();
    restarted?.close();
    removePinDir(pinRoot);
  });

  it('a restarted agent\'s first apply bumps the generation, so the edited prefix\'s hot destination gets its new class', async () => {
    eg = EgressObject.load({ pinRoot });
    new Datapath(eg).apply(state(1));
    const send = () => eg!.program.testRun({ data: frame(DST), ctxIn: skbContext({ wireLen: 1500 }) });
    const packetsOf = (id: number) => eg!.stats.get(eg!.slots.get(id)!)!.packets;
    send();
    assert.equal(packetsOf(1), 1, 'the destination is cached with class 1');

    // The agent edits the prefix to class 2 and is killed before the bump.
    const generation = eg.settings.get(0)!.generation;
    const crash = await runWorker(pinRoot, state(2));
    assert.equal(crash.signal, 'SIGKILL', `the worker was to be killed at its bump: ${crash.out}`);
    assert.equal(eg.dst4.get('10.1.0.0/16'), eg.slots.get(2), 'the trie already says class 2');
    assert.equal(eg.settings.get(0)!.generation, generation, 'and the generation was not bumped');
    send();
    assert.equal(packetsOf(1), 2, 'so the cache still answers class 1 (the hazard)');

    // A restarted agent: a new Datapath on the same pins, applying the same desired state.
    restarted = EgressObject.load({ pinRoot });
    const report = new Datapath(restarted).apply(state(2));
    assert.deepEqual(report.changes, {}, 'nothing differs in the maps');
    assert.equal(restarted.settings.get(0)!.generation, (generation + 1) >>> 0, 'the first apply bumped anyway');
    send();
    assert.deepEqual([packetsOf(1), packetsOf(2)], [2, 1], 'the destination now goes to class 2');
  });
});
