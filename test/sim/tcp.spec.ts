import assert from 'node:assert/strict';
import { EventList } from '../../sim/engine/events.js';
import type { Packet } from '../../sim/net/packet.js';
import { Star } from '../../sim/topology/star.js';
import { TcpSender, tcpConfig, type TcpConfig } from '../../sim/tcp/tcp.js';
import { runIncast } from '../../sim/workload/incast.js';
import { runDumbbell } from '../../sim/workload/bulk.js';
import { loadScenario } from '../../sim/scenario/load.js';
import { CEILING, GBIT, MS, US, tcpPair } from '../support/sim-tcp.js';

/** Two hosts on one switch (1 Gbit/s, 25 us per link) with a sink in front of the receiver that may drop. */
const pair = (tcp: TcpConfig, dropIf?: (p: Packet, n: number) => boolean) => tcpPair(tcp, { dropIf });

describe('sim tcp: NewReno (RFC 5681, RFC 6582) and the RTO (RFC 6298, Linux)', () => {
  it('RTO: Linux floors rttvar at rto_min (SRTT + max(4·RTTVAR, RTOmin)); RFC 6298 floors the sum (§2.4)', () => {
    const ev = new EventList();
    const rto = (style: 'linux' | 'rfc6298', rtoMinNs: number, samples: number) => {
      const s = new TcpSender(ev, tcpConfig({ rtoStyle: style, rtoMinNs, clockGranularityNs: US }), 1, 0, []);
      for (let i = 0; i < samples; i++) s.handshake(100 * US);
      return s.rto;
    };
    // First sample R = 100 us: SRTT = R, RTTVAR = R/2 (§2.2).
    assert.equal(rto('linux', 200 * MS, 1), 100 * US + 200 * MS);
    assert.equal(rto('rfc6298', 200 * MS, 1), 200 * MS);
    // A steady RTT drives RTTVAR to 0: Linux keeps RTOmin of slack above SRTT, RFC 6298 only G.
    assert.equal(rto('linux', MS, 200), 100 * US + MS);
    assert.equal(rto('rfc6298', MS, 200), MS);
    assert.equal(rto('rfc6298', 10 * US, 200), 100 * US + US);
  });

  it("a scenario's tcp block sets variant, sack, pacing and delayed ACKs (delack_max); bad values are named", () => {
    const scenario = (tcp: string) => `duration: 1s
topology:
  switch: { buffer: 32kb }
  hosts:
    a: { link: { rate: 1gbit, delay: 25us } }
    b: { link: { rate: 1gbit, delay: 25us } }
tcp: { ${tcp} }
workloads:
  - bulk: { from: a, to: b }
`;
    const tcpOf = (tcp: string) => loadScenario(scenario(tcp)).workloads[0]!.tcp;
    const t = tcpOf('variant: cubic, sack: true, pacing: true, pacingCaRatio: 110, delayedAck: 5ms');
    assert.deepEqual([t.variant, t.sack, t.pacing, t.pacingSsRatio, t.pacingCaRatio, t.delayedAck, t.delackMaxNs], ['cubic', true, true, 200, 110, true, 5 * MS]);
    const d = tcpOf('delayedAck: true');
    assert.deepEqual([d.variant, d.sack, d.pacing, d.delayedAck, d.delackMaxNs], ['newreno', false, false, true, 200 * MS]);
    assert.throws(() => tcpOf('variant: bbr'), /tcp\.variant is "newreno" or "cubic"/);
    assert.throws(() => tcpOf('sack: yes'), /tcp\.sack is true or false/);
    assert.throws(() => tcpOf('delayedAck: 40'), /tcp\.delayedAck/);
  });

  it('rejects bad parameters (CheckConfig)', () => {
    assert.throws(() => tcpConfig({ mss: 0 }), /tcp.mss/);
    assert.throws(() => tcpConfig({ rtoMinNs: 2e11 }), /rtoMinNs/);
    assert.throws(() => tcpConfig({ rtoStyle: 'bsd' as never }), /rtoStyle/);
    assert.throws(() => tcpConfig({ variant: 'bbr' as never }), /tcp.variant/);
    assert.throws(() => tcpConfig({ pacingCaRatio: 0 }), /pacingCaRatio/);
    assert.throws(() => tcpConfig({ sack: 1 as never }), /tcp.sack/);
  });

  it('a 1 MB transfer without loss arrives whole, in about the ideal time, with no retransmission', () => {
    const { ev, sender, receiver } = pair(tcpConfig());
    let doneAt = -1;
    sender.onAllAcked = () => (doneAt = ev.now());
    sender.write(1 << 20);
    ev.run();
    assert.equal(receiver.rcvNxt, 1 << 20);
    assert.equal(sender.stats.retransmits, 0);
    const ideal = ((1 << 20) * 8 * 1e9) / CEILING;
    // Slow start from IW10 over a 100 us RTT costs a few RTTs on top.
    assert.ok(doneAt > ideal && doneAt < ideal + 1 * MS, `done at ${doneAt}, ideal ${ideal}`);
  });

  it('with delayed ACKs (RFC 5681 §4.2) a 1 MB transfer still arrives whole without retransmission', () => {
    const { ev, sender, receiver } = pair(tcpConfig({ delayedAck: true }));
    sender.write((1 << 20) + 100); // an odd tail: the last segment waits for the delayed-ACK timer
    ev.run();
    assert.equal(receiver.rcvNxt, (1 << 20) + 100);
    assert.equal(sender.stats.retransmits, 0);
  });

  it('one lost segment is repaired by fast retransmit (RFC 5681 §3.2), without a timeout', () => {
    const { ev, sender, receiver, events } = pair(tcpConfig(), (p) => p.seq === 30 * 1448 && sender.stats.retransmits === 0);
    sender.write(1 << 20);
    ev.run();
    assert.equal(receiver.rcvNxt, 1 << 20);
    assert.equal(sender.stats.fastRetransmits, 1);
    assert.equal(sender.stats.timeouts, 0);
    assert.equal(events[0]!.kind, 'fast_retransmit');
  });

  it('an ACK of exactly everything sent before the loss ends recovery (RFC 6582 §3.2 step 3, "up to and including recover")', () => {
    // 20 segments, all sent before the third duplicate ACK: the retransmission's ACK covers them all.
    const size = 20 * 1448;
    const p = tcpPair(tcpConfig(), { dropIf: (pkt) => pkt.seq === 5 * 1448 && p.sender.stats.retransmits === 0 });
    p.sender.write(size);
    p.ev.run();
    assert.equal(p.receiver.rcvNxt, size);
    assert.equal(p.sender.stats.fastRetransmits, 1);
    assert.equal(p.sender.stats.retransmits, 1, 'no second, spurious retransmission');
    assert.ok(p.departures.every((d) => d.payload > 0), 'no empty data segment');
    assert.deepEqual(p.events.map((e) => e.kind), ['fast_retransmit', 'recovery_end']);
  });

  it('a lost tail segment needs the RTO; a lost retransmission doubles it (RFC 6298 §5.5)', () => {
    const size = 20 * 1448;
    const lastSeq = 19 * 1448;
    let tailDrops = 0;
    const { ev, sender, receiver, events } = pair(tcpConfig({ rtoMinNs: 10 * MS }), (p) => p.seq === lastSeq && tailDrops++ < 2);
    sender.write(size);
    ev.run();
    assert.equal(receiver.rcvNxt, size);
    assert.equal(sender.stats.timeouts, 2);
    const rtos = events.filter((e) => e.kind === 'rto');
    assert.equal(rtos.length, 2);
    assert.equal(rtos[1]!.rto, 2 * rtos[0]!.rto);
    // The first timeout fires RTO ≈ SRTT + 10 ms after the tail was sent (1 ms timer ticks).
    assert.ok(rtos[0]!.at > 10 * MS && rtos[0]!.at < 12 * MS, `first RTO at ${rtos[0]!.at}`);
  });
});

/**
 * Incast collapse, after Vasudevan et al., "Safe and Effective Fine-grained TCP Retransmissions
 * for Datacenter Communication", SIGCOMM 2009, and Phanishayee et al., "Measurement and Analysis
 * of TCP Throughput Collapse in Cluster-based Storage Systems", FAST 2008: N servers → one switch
 * → one client, 1 Gbit/s, 25 us per link, 32 KB drop-tail at the port to the client, 1 MB block
 * per round split across N, NewReno without SACK, ACK every segment, MSS 1448, IW 10, 100 rounds.
 */
describe('sim validation: incast collapse (SIGCOMM 2009, FAST 2008)', function () {
  this.timeout(120_000);
  const goodput = (servers: number, tcp: Partial<TcpConfig>) => {
    const ev = new EventList();
    const r = runIncast(ev, { servers, linkRateBps: GBIT, linkDelayNs: 25 * US, bufferBytes: 32 * 1024, blockBytes: 1 << 20, rounds: 100, tcp: tcpConfig(tcp) });
    assert.equal(r.rounds, 100);
    return r.goodputBps / CEILING;
  };

  it('RTOmin 200 ms: N = 1 within 2% of the goodput ceiling; N ≥ 8 at most 15% ("collapse by up to 90%")', () => {
    const g: Record<number, number> = {};
    for (const n of [1, 8, 16, 32, 48]) g[n] = goodput(n, { rtoMinNs: 200 * MS });
    assert.ok(g[1]! >= 0.98, `N=1: ${g[1]}`);
    for (const n of [8, 16, 32, 48]) assert.ok(g[n]! <= 0.15, `N=${n}: ${g[n]}`);
  });

  it('RTOmin 1 ms with high-resolution timers: ≥ 75% of the ceiling up to N = 16, ≥ 60% up to 48', () => {
    // Vasudevan et al. reach sub-ms RTOs with hrtimers; G = 1 us stands for them here.
    for (const n of [1, 2, 4, 8, 16, 32, 48]) {
      const g = goodput(n, { rtoMinNs: MS, clockGranularityNs: US });
      assert.ok(g >= (n <= 16 ? 0.75 : 0.6), `N=${n}: ${g}`);
    }
  });

  it('RTOmin 1 ms on 1 ms jiffies (HZ=1000): still ≥ 75% up to N = 16', () => {
    for (const n of [2, 4, 8, 16]) {
      const g = goodput(n, { rtoMinNs: MS });
      assert.ok(g >= 0.75, `N=${n}: ${g}`);
    }
  });

  it('determinism: the same set-up gives byte-identical JSON results', () => {
    const run = () => {
      const ev = new EventList();
      return JSON.stringify(runIncast(ev, { servers: 16, linkRateBps: GBIT, linkDelayNs: 25 * US, bufferBytes: 32 * 1024, blockBytes: 1 << 20, rounds: 20, tcp: tcpConfig({ rtoMinNs: MS }) }));
    };
    assert.equal(run(), run());
  });
});

describe('sim validation: dumbbell fairness', function () {
  this.timeout(60_000);
  it('two NewReno flows, 1 Gbit/s bottleneck, 100-packet drop-tail, 10 s: total ≥ 97% of the ceiling, Jain ≥ 0.98', () => {
    const ev = new EventList();
    const r = runDumbbell(ev, { flows: 2, linkRateBps: GBIT, accessRateBps: 10 * GBIT, linkDelayNs: 25 * US, bufferPackets: 100, durationNs: 10_000 * MS, tcp: tcpConfig() }, new Star(ev));
    assert.ok(r.totalGoodputBps >= 0.97 * CEILING, `total ${r.totalGoodputBps}`);
    assert.ok(r.jain >= 0.98, `jain ${r.jain}`);
    assert.ok(r.drops > 0);
  });
});
