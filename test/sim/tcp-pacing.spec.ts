/**
 * TCP's own pacing as Linux computes it (tcp_update_pacing_rate: cwnd·mss/srtt × 200% in slow
 * start, × 120% after; tcp_update_skb_after_send), and what it does to a switch queue; with
 * pacing (and SACK) off, results are those of the model without them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { loadScenario } from '../../sim/scenario/load.js';
import { Simulation } from '../../sim/run.js';
import { PACING_FREE_SEGMENTS } from '../../sim/tcp/pacing.js';
import { tcpConfig } from '../../sim/tcp/tcp.js';
import { GBIT, US, tcpPair } from '../support/sim-tcp.js';

const MSS = 1448;
const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '../../../sim/examples');

describe('sim tcp: pacing (Linux tcp_pacing_ss_ratio / tcp_pacing_ca_ratio)', function () {
  this.timeout(120_000);

  it('back-to-back segments leave the host srtt/(ratio·cwnd) apart: ratio 200% in slow start, 120% in congestion avoidance', () => {
    // 10 Gbit/s links and a 1 ms RTT: nothing but pacing spaces the segments.
    let dropSeq = -1;
    // At each hand-off to the host: the sender's state, and the next departure pacing allows.
    const sent = new Map<number, { at: number; cwnd: number; ssthresh: number; srtt: number; flight: number; wstampAfter: number; n: number }>();
    let last = { at: -1, wstampAfter: -1 };
    const p = tcpPair(tcpConfig({ pacing: true }), {
      rateBps: 10 * GBIT,
      delayNs: 250 * US,
      dropIf: (pkt) => {
        if (dropSeq < 0 && p.sender.cwnd >= 100 * MSS) dropSeq = pkt.seq;
        return pkt.seq === dropSeq && p.sender.stats.fastRetransmits === 0;
      },
      onHandOff: (pkt) => {
        const s = p.sender;
        const rec = { at: p.ev.now(), cwnd: s.cwnd, ssthresh: s.ssthresh, srtt: s.srtt, flight: s.flightSize(), wstampAfter: s.pacing!.wstamp, n: s.stats.segmentsSent };
        // Only segments handed over exactly when pacing allowed, after one that was too: no credit.
        if (pkt.payload === MSS && rec.at === last.wstampAfter && !sent.has(pkt.seq)) sent.set(pkt.seq, rec);
        last = rec;
      },
    });
    p.sender.write(2 ** 40);
    p.ev.run(120_000_000);
    assert.equal(p.sender.stats.fastRetransmits, 1);
    const gaps = { ss: [] as number[], ca: [] as number[] };
    const deps = p.departures;
    for (let i = 0; i + 1 < deps.length; i++) {
      const a = sent.get(deps[i]!.seq);
      const b = sent.get(deps[i + 1]!.seq);
      if (!a || !b || a.at !== deps[i]!.at || b.at !== deps[i + 1]!.at || b.at !== a.wstampAfter || a.n <= PACING_FREE_SEGMENTS) continue;
      const slowStart = a.cwnd < a.ssthresh / 2;
      const ratio = slowStart ? 2 : 1.2;
      const want = (a.srtt * MSS) / (ratio * Math.max(a.cwnd, a.flight));
      (slowStart ? gaps.ss : gaps.ca).push((deps[i + 1]!.at - deps[i]!.at) / want);
    }
    assert.ok(gaps.ss.length >= 50 && gaps.ca.length >= 500, `pairs: ${gaps.ss.length} in slow start, ${gaps.ca.length} after`);
    for (const [phase, g] of Object.entries(gaps)) {
      const worst = g.reduce((m, x) => Math.max(m, Math.abs(x - 1)), 0);
      assert.ok(worst < 0.001, `${phase}: a gap is ${worst} off srtt/(ratio·cwnd)`);
    }
  });

  it("the host's EDT shaper (edt.ts) departs each segment at the later of TCP's pacing and the class's slot", () => {
    // A paced flow in a pacer class on a 10 Gbit/s host, 1 ms RTT. With no burst allowance the
    // class's next slot is the previous departure plus the segment's time at the class rate
    // (1514 bytes as the tc program counts a 1500-byte datagram), so every segment must leave
    // at max(TCP's hand-off, previous departure + class gap), whichever is later.
    const check = (classRateBps: number, runNs: number) => {
      const classes = new Map([[1, { rateBps: classRateBps, burstNs: 0, horizonNs: 10_000_000_000, ecnNs: 0, parentId: 0 }]]);
      const handOff = new Map<number, number>();
      const p = tcpPair(tcpConfig({ pacing: true }), { rateBps: 10 * GBIT, delayNs: 250 * US, classes, cls: 1, onHandOff: (pkt) => void handOff.set(pkt.seq, p.ev.now()) });
      p.sender.write(2 ** 40);
      p.ev.run(runNs);
      assert.equal(p.sender.stats.retransmits, 0);
      const classGap = Math.ceil((1514 * 8 * 1e9) / classRateBps);
      let byClass = 0;
      let byTcp = 0;
      p.departures.forEach((d, i) => {
        const tcp = handOff.get(d.seq)!;
        const slot = (i === 0 ? 0 : p.departures[i - 1]!.at) + classGap; // edt.ts: max(t_last + delay, now)
        assert.equal(d.at, Math.max(tcp, slot), `segment ${d.seq / MSS}`);
        if (i < PACING_FREE_SEGMENTS) return; // the unpaced initial burst
        if (slot > tcp) byClass++;
        else byTcp++;
      });
      return { byClass, byTcp };
    };
    // 100 Mbit/s: far below TCP's pacing rate, the class's slots decide almost every departure.
    const slow = check(100_000_000, 50_000_000);
    assert.ok(slow.byClass > 20 * slow.byTcp, `100 Mbit/s class: ${slow.byClass} by the class, ${slow.byTcp} by TCP`);
    // 9 Gbit/s, the first 4 ms of slow start (TCP's rate 2·cwnd/srtt is still below the class's):
    // TCP's own pacing (and its window) decides.
    const fast = check(9 * GBIT, 4_000_000);
    assert.ok(fast.byTcp > 20 * fast.byClass, `9 Gbit/s class: ${fast.byClass} by the class, ${fast.byTcp} by TCP`);
  });

  it('pacing keeps a slow-start flow from a 10 Gbit/s host to a 1 Gbit/s port from bursting: fewer drops, lower queue', () => {
    // 192 KB over a 1 ms RTT: the window stays below the path's BDP, so every queue is a burst.
    const run = (pacing: boolean, bufferBytes: number) => {
      const p = tcpPair(tcpConfig({ pacing }), { senderRateBps: 10 * GBIT, delayNs: 250 * US, bufferBytes });
      p.sender.write(192 << 10);
      p.ev.run();
      assert.equal(p.receiver.rcvNxt, 192 << 10);
      const port = p.star.host('b').port.stats;
      return { drops: port.drops.buffer, maxQueueBytes: port.maxQueueBytes, meanQueueNs: port.queueDelaySumNs / port.sentPackets };
    };
    const shallow = { off: run(false, 32 << 10), on: run(true, 32 << 10) };
    assert.ok(shallow.off.drops > 0 && shallow.on.drops === 0, `32 KB buffer: drops ${shallow.off.drops} unpaced, ${shallow.on.drops} paced`);
    const deep = { off: run(false, 1 << 20), on: run(true, 1 << 20) };
    assert.ok(deep.on.maxQueueBytes < 0.6 * deep.off.maxQueueBytes, `max queue ${deep.off.maxQueueBytes} B unpaced, ${deep.on.maxQueueBytes} B paced`);
    assert.ok(deep.on.meanQueueNs < 0.5 * deep.off.meanQueueNs, `mean queueing ${deep.off.meanQueueNs} ns unpaced, ${deep.on.meanQueueNs} ns paced`);
  });

  it('determinism: pacing, SACK and delayed ACKs given as off change nothing in the examples; runs with them on repeat byte for byte', async () => {
    const withTcp = (text: string, tcp: Record<string, unknown>) => {
      const doc = parse(text) as Record<string, unknown>;
      doc.tcp = { ...((doc.tcp as object | undefined) ?? {}), ...tcp };
      return stringify(doc);
    };
    const json = async (text: string) => JSON.stringify(await new Simulation(loadScenario(text, 'example')).run());
    for (const name of ['incast.yaml', 'two-classes.yaml', 'borrowing.yaml']) {
      const text = readFileSync(join(EXAMPLES, name), 'utf8');
      assert.equal(await json(withTcp(text, { pacing: false, sack: false, variant: 'newreno' })), await json(text), `${name}: explicit off differs from the default`);
      const on = withTcp(text, { pacing: true, sack: true, variant: 'cubic', delayedAck: '1ms' });
      assert.equal(await json(on), await json(on), `${name}: two runs with pacing, SACK, CUBIC and delayed ACKs differ`);
    }
  });
});
