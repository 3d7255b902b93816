/**
 * SACK in the simulator: the receiver's blocks (RFC 2018 §4) and the sender's loss recovery
 * (RFC 6675), against NewReno without SACK (RFC 6582), which repairs one hole per RTT.
 */
import assert from 'node:assert/strict';
import { EventList } from '../../sim/engine/events.js';
import { Rng } from '../../sim/engine/rng.js';
import { Packet } from '../../sim/net/packet.js';
import { Scoreboard, sackBlocksFit, type AckSegment } from '../../sim/tcp/sack.js';
import { TcpReceiver, tcpConfig } from '../../sim/tcp/tcp.js';
import { MS, US, tcpPair } from '../support/sim-tcp.js';

const MSS = 1448;

/** A receiver whose ACKs are collected; segments are numbered in MSS units. */
function receiverAlone(sack: boolean) {
  const ev = new EventList();
  const acks: AckSegment[] = [];
  const r = new TcpReceiver(ev, tcpConfig({ sack }), 1, 0, [{ receive: (p) => void acks.push(p as AckSegment) }]);
  const deliver = (segment: number) => {
    const p = new Packet('data', 1, 0, MSS + 52);
    p.seq = segment * MSS;
    p.payload = MSS;
    r.receive(p);
    return acks[acks.length - 1]!;
  };
  const blocks = (a: AckSegment) => Array.from({ length: a.sack.length / 2 }, (_, i) => [a.sack[2 * i]! / MSS, a.sack[2 * i + 1]! / MSS]);
  return { deliver, blocks, acks };
}

/**
 * Lost segments 30, 33, 36 and 39 (first transmissions) in one window of a 3 MB transfer, on a
 * 1 ms RTT path (the window is then below the path's BDP, so no queue stretches the RTT). The
 * recovery's length is counted in the RTT it sees: from the fast retransmission to its ACK.
 */
function fourLossesInOneWindow(sack: boolean) {
  const lost = new Set([30, 33, 36, 39].map((s) => s * MSS));
  const p = tcpPair(tcpConfig({ sack, rtoMinNs: 200 * MS }), { delayNs: 250 * US, dropIf: (pkt) => lost.delete(pkt.seq) });
  p.sender.write(3 << 20);
  p.ev.run();
  assert.equal(p.receiver.rcvNxt, 3 << 20);
  const start = p.events.find((e) => e.kind === 'fast_retransmit');
  const end = p.events.find((e) => e.kind === 'recovery_end');
  if (!start || !end) return { sender: p.sender, rtts: Infinity };
  const rtt = p.acks.find((a) => a.at > start.at && a.ack.ack > 30 * MSS)!.at - start.at;
  return { sender: p.sender, rtts: (end.at - start.at) / rtt };
}

describe('sim tcp: SACK (RFC 2018, RFC 6675)', function () {
  this.timeout(120_000);

  it('the receiver reports the block with the latest segment first, then the most recent others, at most 3 next to timestamps (RFC 2018 §3, §4)', () => {
    const { deliver, blocks } = receiverAlone(true);
    deliver(0);
    for (const s of [2, 4, 6]) deliver(s);
    assert.deepEqual(blocks(deliver(8)), [[8, 9], [6, 7], [4, 5]]);
    // Segment 3 joins 2 and 4: the block holding it comes first.
    assert.deepEqual(blocks(deliver(3)), [[2, 5], [8, 9], [6, 7]]);
    // Segment 1 advances the ACK to 5: no block for it, the most recent remaining ones follow.
    const a = deliver(1);
    assert.equal(a.ack, 5 * MSS);
    assert.deepEqual(blocks(a), [[8, 9], [6, 7]]);
    assert.equal(a.size, 52 + 4 + 2 * 8, 'ACK grows by the SACK option (2 NOPs, kind, length, 8 bytes a block)');
    assert.equal(sackBlocksFit(true), 3);
    assert.equal(sackBlocksFit(false), 4, 'without timestamps (not modelled: they are always on) 4 blocks fit');
  });

  it('without SACK the receiver sends plain cumulative ACKs', () => {
    const { deliver, blocks } = receiverAlone(false);
    deliver(0);
    const a = deliver(2);
    assert.equal(a.ack, MSS);
    assert.deepEqual(blocks(a), []);
    assert.equal(a.size, 52);
  });

  it('the scoreboard: IsLost needs DupThresh SACKed ranges or more than 2·SMSS SACKed above; SetPipe counts un-SACKed, not lost, and retransmitted bytes (RFC 6675 §4)', () => {
    const sb = new Scoreboard(MSS);
    sb.update([5 * MSS, 6 * MSS, 3 * MSS, 4 * MSS], 0);
    assert.equal(sb.isLost(0), false, 'two ranges of one segment each are not enough');
    sb.update([7 * MSS, 8 * MSS], 0);
    assert.equal(sb.isLost(0), true, 'three discontiguous ranges above');
    assert.equal(sb.isLost(2 * MSS), true);
    assert.equal(sb.isLost(4 * MSS), false, 'only two ranges above segment 4');
    // Data 0..10 outstanding; segments 0, 1, 2 lost (below the third range from the top), 4 and 6 not; 8, 9 not.
    assert.equal(sb.pipe(0, 10 * MSS, 0, sb.lostBelow()), 4 * MSS);
    // After retransmitting 0 and 1: they count again.
    assert.equal(sb.pipe(0, 10 * MSS, 2 * MSS, sb.lostBelow()), 6 * MSS);
    const more = new Scoreboard(MSS);
    more.update([4 * MSS, 7 * MSS], 0);
    assert.equal(more.isLost(3 * MSS), true, '3 segments SACKed above: more than 2·SMSS');
  });

  it('four losses in one window: SACK recovers in about one RTT with no timeout; NewReno without SACK needs an RTT per loss (RFC 6582 §3.2)', () => {
    const withSack = fourLossesInOneWindow(true);
    const without = fourLossesInOneWindow(false);
    assert.equal(withSack.sender.stats.timeouts, 0);
    assert.equal(withSack.sender.stats.fastRetransmits, 1);
    assert.equal(withSack.sender.stats.retransmits, 4, 'only the lost segments are resent');
    assert.ok(withSack.rtts < 1.5, `SACK recovery took ${withSack.rtts.toFixed(2)} RTTs`);
    assert.ok(without.sender.stats.timeouts > 0 || without.rtts >= 3.5, `NewReno recovery took ${without.rtts.toFixed(2)} RTTs`);
  });

  it('on a link losing 1% of data segments at random, goodput is higher with SACK, and SACK resends little beyond what was lost', () => {
    const run = (sack: boolean) => {
      const rng = new Rng(7);
      const p = tcpPair(tcpConfig({ sack, rtoMinNs: 200 * MS }), { dropIf: () => rng.next() < 0.01 });
      p.sender.write(2 ** 40);
      p.ev.run(1_000 * MS);
      return { bytes: p.receiver.rcvNxt, dropped: p.dropped.length, retransmits: p.sender.stats.retransmits, timeouts: p.sender.stats.timeouts };
    };
    const withSack = run(true);
    const without = run(false);
    assert.ok(withSack.bytes > 1.1 * without.bytes, `SACK ${withSack.bytes} bytes, NewReno ${without.bytes} bytes`);
    assert.ok(withSack.retransmits <= 1.1 * withSack.dropped, `SACK resent ${withSack.retransmits} for ${withSack.dropped} lost`);
  });
});
