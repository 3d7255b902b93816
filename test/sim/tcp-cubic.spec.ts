/**
 * CUBIC (RFC 9438) in the simulator: the window follows the cubic function of §4.2 after a
 * loss, with its concave and convex regions (§4.4, §4.5); on a short-RTT path it follows the
 * Reno-friendly estimate (§4.3); fast convergence (§4.7) and the timeout rule (§4.8); and two
 * CUBIC flows share a dumbbell fairly.
 */
import assert from 'node:assert/strict';
import { EventList } from '../../sim/engine/events.js';
import { Star } from '../../sim/topology/star.js';
import { CUBIC_ALPHA, CUBIC_BETA, CUBIC_C, Cubic, wCubic } from '../../sim/tcp/cubic.js';
import { tcpConfig, type TcpConfig } from '../../sim/tcp/tcp.js';
import { runDumbbell } from '../../sim/workload/bulk.js';
import { CEILING, GBIT, MS, US, every, tcpPair } from '../support/sim-tcp.js';

const MSS = 1448;

/**
 * One long-lived CUBIC flow on 10 Gbit/s links (never the bottleneck) with one segment dropped
 * once cwnd reaches `dropAtSegments` in slow start. Returns the cwnd samples (segments) from the
 * start of the congestion-avoidance stage after that loss, and the CUBIC state of that stage.
 */
function singleLoss(tcp: Partial<TcpConfig>, delayNs: number, dropAtSegments: number, runNs: number, sampleNs: number) {
  let dropSeq = -1;
  const p = tcpPair(tcpConfig({ variant: 'cubic', ...tcp }), {
    rateBps: 10 * GBIT,
    delayNs,
    bufferBytes: 64 << 20,
    dropIf: (pkt) => {
      if (dropSeq < 0 && p.sender.cwnd >= dropAtSegments * MSS) dropSeq = pkt.seq;
      return pkt.seq === dropSeq && p.sender.stats.fastRetransmits === 0;
    },
  });
  const cc = p.sender.cc as Cubic;
  const samples: Array<{ t: number; cwnd: number }> = [];
  every(p.ev, sampleNs, runNs, () => {
    if (cc.epochStart >= 0 && p.sender.stats.timeouts === 0) samples.push({ t: (p.ev.now() - cc.epochStart) / 1e9, cwnd: p.sender.cwnd / MSS });
  });
  p.sender.write(2 ** 40);
  p.ev.run(runNs);
  assert.equal(p.sender.stats.fastRetransmits, 1, 'exactly one loss');
  assert.equal(p.sender.stats.timeouts, 0);
  return { samples, cc, sender: p.sender };
}

describe('sim tcp: CUBIC (RFC 9438)', function () {
  this.timeout(120_000);

  it('after a single loss at W_max, cwnd follows W_cubic(t) = C·(t−K)³ + W_max with K = ∛(W_max·(1−β)/C) (§4.2, §4.6), concave then convex (§4.4, §4.5)', () => {
    // A 100 ms RTT, where the cubic function is above the Reno-friendly estimate throughout.
    const { samples, cc } = singleLoss({}, 25 * MS, 500, 30_000 * MS, 100 * MS);
    const wMax = cc.wMax;
    assert.ok(wMax > 500, `W_max ${wMax}`);
    // cwnd_epoch is the reduced window β·W_max (§4.6), so K is the formula's.
    const k = Math.cbrt((wMax * (1 - CUBIC_BETA)) / CUBIC_C);
    assert.ok(Math.abs(cc.k - k) / k < 0.01, `K ${cc.k} vs ${k}`);
    for (const f of [0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5]) {
      const s = samples.find((x) => x.t >= f * k)!;
      const want = wCubic(s.t, k, wMax);
      // cwnd aims one RTT ahead (the §4.2 target is W_cubic(t + RTT)) and moves there by ACKs.
      assert.ok(Math.abs(s.cwnd - want) / want < 0.02, `t = ${s.t.toFixed(2)} s (${f}·K): cwnd ${s.cwnd.toFixed(1)}, W_cubic ${want.toFixed(1)}`);
    }
    // Growth over equal spans: shrinking up to K (concave), growing after it (convex).
    const at = (t: number) => samples.find((x) => x.t >= t)!.cwnd;
    const growth = [0, 0.25, 0.5, 0.75, 1, 1.25].map((f) => at((f + 0.25) * k) - at(f * k));
    for (let i = 1; i < 4; i++) assert.ok(growth[i]! < growth[i - 1]!, `concave: growth ${growth.map((g) => g.toFixed(1))}`);
    assert.ok(growth[5]! > 2 * growth[4]!, `convex: growth ${growth.map((g) => g.toFixed(1))}`);
    assert.ok(at(0.9 * k) < wMax && at(1.2 * k) > wMax);
  });

  it('on a short-RTT path cwnd follows the Reno-friendly W_est (§4.3): α_cubic per RTT up to cwnd_prior, then 1 per RTT', () => {
    // 1 ms RTT: W_cubic grows by well under one segment per RTT here, W_est by α_cubic ≈ 0.53.
    const { samples, cc, sender } = singleLoss({}, 250 * US, 50, 400 * MS, MS);
    const rtt = sender.srtt / 1e9;
    const epoch = samples[0]!;
    const cwndEpoch = cc.cwndEpoch;
    const rttsToPrior = (cc.cwndPrior - cwndEpoch) / CUBIC_ALPHA;
    for (const rtts of [10, 20, 0.8 * rttsToPrior]) {
      const s = samples.find((x) => x.t >= rtts * rtt)!;
      const want = cwndEpoch + (CUBIC_ALPHA * s.t) / rtt;
      assert.ok(Math.abs(s.cwnd - want) < 1.5, `${rtts} RTTs: cwnd ${s.cwnd.toFixed(2)}, W_est ${want.toFixed(2)}`);
      assert.ok(s.cwnd > wCubic(s.t + rtt, cc.k, cc.wMax) + 1, 'above the cubic target: the Reno-friendly region');
    }
    // Past cwnd_prior, α_cubic = 1: one segment per RTT, like Reno.
    const t1 = (rttsToPrior + 20) * rtt;
    const t2 = t1 + 50 * rtt;
    const a = samples.find((x) => x.t >= t1)!;
    const b = samples.find((x) => x.t >= t2)!;
    const perRtt = (b.cwnd - a.cwnd) / ((b.t - a.t) / rtt);
    assert.ok(perRtt > 0.9 && perRtt < 1.1, `growth ${perRtt.toFixed(3)} segments per RTT`);
    assert.ok(epoch.t < 2 * rtt);
  });

  it('fast convergence (§4.7): a loss below the previous W_max sets W_max = cwnd·(1+β)/2; ssthresh = cwnd·β (§4.6)', () => {
    const cc = new Cubic();
    const at = (segs: number) => ({ cwnd: segs * MSS, srtt: 100 * US, cfg: tcpConfig(), flightSize: () => segs * MSS });
    assert.equal(cc.ssthreshOnLoss(at(100)), Math.floor(100 * MSS * CUBIC_BETA));
    assert.equal(cc.wMax, 100);
    cc.ssthreshOnLoss(at(80));
    assert.ok(Math.abs(cc.wMax - (80 * (1 + CUBIC_BETA)) / 2) < 1e-9, `W_max ${cc.wMax}`);
    assert.equal(cc.cwndPrior, 80);
    cc.ssthreshOnLoss(at(120));
    assert.equal(cc.wMax, 120, 'a loss above W_max takes cwnd');
    assert.equal(cc.ssthreshOnLoss(at(2)), 2 * MSS, 'ssthresh is at least 2 segments');
  });

  it('after a timeout (§4.8) the first congestion-avoidance stage has K = 0 and W_max = cwnd at its start', () => {
    // Lose the tail of a transfer (twice, so slow start after the timeout ends at ssthresh).
    const size = 400 * MSS;
    let drops = 0;
    const p = tcpPair(tcpConfig({ variant: 'cubic', rtoMinNs: 5 * MS }), { dropIf: (pkt) => pkt.seq >= size - 3 * MSS && drops++ < 3 });
    const cc = p.sender.cc as Cubic;
    p.sender.write(size);
    p.ev.run();
    assert.ok(p.sender.stats.timeouts >= 1);
    // Now in congestion avoidance after the timeout: send more.
    p.sender.write(4000 * MSS);
    p.ev.run();
    assert.ok(cc.epochStart >= 0, 'congestion avoidance began');
    assert.equal(cc.k, 0);
    assert.equal(cc.wMax, cc.cwndEpoch);
  });
});

describe('sim validation: CUBIC dumbbell fairness', function () {
  this.timeout(60_000);
  it('two CUBIC flows, 1 Gbit/s bottleneck, 100-packet drop-tail, 10 s: total ≥ 97% of the ceiling, Jain ≥ 0.98', () => {
    const ev = new EventList();
    const r = runDumbbell(ev, { flows: 2, linkRateBps: GBIT, accessRateBps: 10 * GBIT, linkDelayNs: 25 * US, bufferPackets: 100, durationNs: 10_000 * MS, tcp: tcpConfig({ variant: 'cubic' }) }, new Star(ev));
    assert.ok(r.totalGoodputBps >= 0.97 * CEILING, `total ${r.totalGoodputBps}`);
    assert.ok(r.jain >= 0.98, `jain ${r.jain}`);
    assert.ok(r.drops > 0);
  });
});
