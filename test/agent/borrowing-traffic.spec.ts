/**
 * Borrowing on real traffic: a real API process, a real `pacer agent` (borrowing every second)
 * and the real BPF data plane on a veth pair in namespaces this test makes; UDP streams from the
 * sender's namespace to two receiver addresses, each address a class (destination prefix).
 *
 * This kernel has no fq, so the agent polices: a packet the schedule would hold longer than the
 * class's policing depth (two GSO packets at its guarantee here, 109 ms) is dropped. What a class passes is then at most
 * its effective rate, the excess shows up as horizon drops, and that is what the borrower reads
 * as demand (docs/agent.md, "Borrowing"). Both are checked here: the effective rate in the
 * kernel's class_config, and the bytes per second the class really passed (its stats map).
 *
 *   agg   40 Mbit/s (root)
 *   ├─ busy  rate 10, ceil C → peer(0)
 *   └─ idle  rate 10, ceil C → peer(1)
 *
 * Alone, busy borrows idle's unused guarantee up to its ceil; once idle sends too, both come back
 * to the fair split of the parent (20 + 20); when busy stops, idle borrows up to its ceil. Each
 * stream offers 60 Mbit/s, 1.5 times the largest ceil, so a class is limited by pacer alone. Twice:
 * C = 30 Mbit/s (the configured rates never add up to more than the parent), and C = 40 Mbit/s,
 * the parent's rate, as HTB users write it: then the idle class's guarantee plus the borrower's
 * ceil exceed the parent, and when idle wakes up the parent's own schedule in the kernel caps the
 * two until the next allocation.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClassStats } from '../../shaper-bpf/src/layout.js';
import { until } from '../support/agent-processes.js';
import { useAgentRig } from '../support/agent-rig.js';
import { policingDepthNs } from '../../controller/desired/desired-state.js';
import { startUdpStream, type UdpStream } from '../support/udp-stream.js';

const MBIT = 1_000_000;
const PARENT = 40 * MBIT;
const GUARANTEE = 10 * MBIT;
const FAIR = PARENT / 2;
const OFFERED = 60 * MBIT;
const PAYLOAD = 1400;
const UDP_PORT = 9;
/** How long one measurement of passed bytes lasts. */
const WINDOW_MS = 3_000;
/** Deadline for the allocation to move (the borrowing interval is 1 s; the machine is shared). */
const SETTLE_MS = 15_000;

for (const [CEIL, n] of [[30 * MBIT, 0], [PARENT, 1]] as const) describe(`borrowing on real traffic, ceil ${CEIL / MBIT} Mbit/s (real API, real agent, policing on veth in test namespaces)`, function () {
  this.timeout(120_000);
  const rig = useAgentRig({
    iface: `bw${2 * n}`,
    peerIface: `bw${2 * n + 1}`,
    subnet: `10.94.${n}`,
    peers: 2,
    host: `borrow-node-${n}`,
    labels: { zone: `bw${n}` },
    agentArgs: ['--borrow-interval', '1s', '--resync', '5s'],
  });
  const streams: UdpStream[] = [];
  const ids = { agg: 0, busy: 0, idle: 0 };
  const figures: Record<string, unknown> = {};

  after(async () => {
    for (const s of streams) await s.stop();
    console.log(`      measured: ${JSON.stringify(figures)}`);
  });

  const stream = async (peer: number) => {
    const s = await startUdpStream(rig.sender, { to: rig.peer(peer), port: UDP_PORT, size: PAYLOAD, bitsPerSecond: OFFERED });
    streams.push(s);
    return s;
  };
  const rateOf = (id: number) => rig.kernel.read().classes.get(id)?.rate_bps;
  const counters = (id: number): ClassStats => rig.kernel.stats().classes.get(id)!;
  /** Bits per second each class passed (its stats map) over WINDOW_MS, and its horizon drops. */
  const measure = async (...classIds: number[]) => {
    const t0 = performance.now();
    const before = classIds.map(counters);
    await sleep(WINDOW_MS);
    const after = classIds.map(counters);
    const seconds = (performance.now() - t0) / 1000;
    return classIds.map((_, i) => ({
      bps: ((after[i]!.bytes - before[i]!.bytes) * 8) / seconds,
      drops: after[i]!.horizon_drops - before[i]!.horizon_drops,
    }));
  };
  /**
   * Polls class_config (every 50 ms: each allocation is in force for a whole 1 s interval, so none
   * is missed) until the effective rates satisfy ok(busy, idle). Returns how long that took and
   * the allocations the kernel went through on the way, in Mbit/s.
   */
  const settle = async (what: string, ok: (busy: number, idle: number) => boolean) => {
    const t0 = performance.now();
    const seen: Array<[number, number]> = [];
    await rig.withLog(
      until(what, () => {
        const [busy, idle] = [rateOf(ids.busy)!, rateOf(ids.idle)!];
        const last = seen.at(-1);
        if (!last || last[0] !== busy / MBIT || last[1] !== idle / MBIT) seen.push([busy / MBIT, idle / MBIT]);
        return ok(busy, idle) ? true : undefined;
      }, SETTLE_MS, 50),
    );
    return { ms: Math.round(performance.now() - t0), allocations: seen };
  };
  /**
   * The allocation got there in at most `steps` changes (the first entry is where it started).
   * A class that starts sending is demanding at the first full interval and is given its share in
   * one allocation (two or three when a partial first interval, or a step while the parent caps
   * the two, comes before), not crept up to by the 10% headroom of a class that is not demanding
   * (which takes 7 or more here). A class that stops is idle after 3 empty intervals
   * (its usage decays until then), so its sibling reaches its ceil in at most 5: the partial
   * interval, two decay steps, the idle one, and one spare.
   */
  const inSteps = (s: { allocations: Array<[number, number]> }, steps: number) =>
    assert.ok(s.allocations.length <= steps + 1, `reached in at most ${steps} allocations: ${JSON.stringify(s.allocations)}`);
  const near = (actual: number, expected: number, what: string, low = 0.85, high = 1.1) =>
    assert.ok(actual >= low * expected && actual <= high * expected, `${what}: ${(actual / MBIT).toFixed(2)} Mbit/s, expected ${(expected / MBIT).toFixed(2)} (${low}–${high}×)`);

  before(async () => {
    // A policing depth of 20 ms: the senders' timers may be late by a few ms on this shared machine.
    ids.agg = await rig.createClass({ name: 'agg', rate: '40mbit', burst: '20ms' });
    for (const [name, peer] of [['busy', 0], ['idle', 1]] as const) {
      ids[name] = await rig.createClass({ name, rate: '10mbit', ceil: CEIL, burst: '20ms', parent: 'agg', match: { dst: [`${rig.peer(peer)}/32`] } });
    }
    await rig.withLog(until('the three classes in the kernel', () => {
      const s = rig.kernel.read();
      return s.classes.get(ids.busy)?.parent_id === ids.agg && s.classes.get(ids.idle)?.parent_id === ids.agg && s.dst4.size === 2 ? true : undefined;
    }, 10_000, 50));
  });

  it('polices (no fq on this kernel), with every class at its own rate while nothing is sent', async () => {
    assert.equal((await rig.hostRecord()).status.mode, 'policing');
    // Idle for two borrowing intervals: no demand, nobody borrows.
    await sleep(2_000);
    assert.deepEqual([rateOf(ids.agg), rateOf(ids.busy), rateOf(ids.idle)], [PARENT, GUARANTEE, GUARANTEE]);
    assert.equal(rig.kernel.read().classes.get(ids.busy)!.horizon_ns, policingDepthNs(GUARANTEE, 20_000_000, 2e9), 'policing depth: the burst, or two GSO packets at the guarantee when longer');
  });

  it('a lone busy class borrows its idle sibling\'s guarantee: its effective rate rises to its ceil, and it passes that much', async () => {
    await stream(0);
    const settled = await settle('busy at its ceil', (busy) => busy === CEIL);
    figures.busyToCeil = settled;
    inSteps(settled, 3);
    // What the kernel passed follows the rate, and the excess of the 60 Mbit/s is policed.
    const [busy, idle] = await measure(ids.busy, ids.idle);
    figures.busyAloneMbit = +(busy!.bps / MBIT).toFixed(2);
    near(busy!.bps, CEIL, 'busy passed');
    assert.ok(busy!.drops > 0, 'the excess over the ceil was dropped (policed)');
    assert.equal(idle!.bps, 0, 'idle sent nothing');
    assert.equal(rateOf(ids.busy), CEIL, 'still at its ceil');
    assert.equal(rateOf(ids.idle), GUARANTEE, 'the idle class keeps its guarantee configured');
  });

  it('a restarted agent keeps the borrowed rate it finds enforced: no dip to the guarantee, no write', async () => {
    assert.equal(rateOf(ids.busy), CEIL);
    const rates: number[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        rates.push(rateOf(ids.busy)!);
        await sleep(10);
      }
    })();
    try {
      const agent = await rig.restartAgent();
      // Three borrowing intervals of the new agent, measured on live traffic.
      await sleep(3_500);
      const applied = agent.lines.filter((l) => l.msg === 'applied');
      assert.ok(applied.length > 0, 'the restarted agent applied its state');
      assert.deepEqual(applied.map((l) => l.changes), applied.map(() => ({})), 'it wrote nothing');
    } finally {
      polling = false;
      await poll;
    }
    figures.restartMinMbit = Math.min(...rates) / MBIT;
    assert.deepEqual([...new Set(rates)], [CEIL], `class_config while the agent restarted (${rates.length} readings)`);
  });

  it('when the idle class starts sending, both come back to the fair split of the parent within seconds', async () => {
    await stream(1);
    const settled = await settle('busy and idle at the fair split', (busy, idle) => Math.abs(busy - FAIR) <= 0.1 * FAIR && Math.abs(idle - FAIR) <= 0.1 * FAIR);
    figures.backToFair = settled;
    inSteps(settled, 3);
    const [busy, idle] = await measure(ids.busy, ids.idle);
    figures.bothBusyMbit = [+(busy!.bps / MBIT).toFixed(2), +(idle!.bps / MBIT).toFixed(2)];
    near(busy!.bps, FAIR, 'busy passed');
    near(idle!.bps, FAIR, 'idle passed');
    assert.ok(busy!.bps + idle!.bps <= 1.05 * PARENT, `together within the parent: ${((busy!.bps + idle!.bps) / MBIT).toFixed(2)} Mbit/s`);
    for (const id of [ids.busy, ids.idle]) {
      const r = rateOf(id)!;
      assert.ok(r >= GUARANTEE && r <= CEIL, `effective rate ${r} within rate..ceil`);
    }
  });

  it('when the first class stops, the other borrows in turn up to its ceil', async () => {
    await streams[0]!.stop();
    const settled = await settle('idle at its ceil, busy back to its guarantee', (busy, idle) => idle === CEIL && busy === GUARANTEE);
    figures.idleToCeil = settled;
    inSteps(settled, 5);
    const [busy, idle] = await measure(ids.busy, ids.idle);
    figures.secondAloneMbit = +(idle!.bps / MBIT).toFixed(2);
    near(idle!.bps, CEIL, 'idle passed');
    assert.equal(busy!.bps, 0, 'busy sends nothing now');
  });
});
