/**
 * Delayed ACKs (RFC 5681 §4.2, RFC 1122 §4.2.3.2) as Linux sends them: quick-ack for the first
 * 16 segments (TCP_MAX_QUICKACKS), then an ACK when more than one full segment is unacknowledged
 * (__tcp_ack_snd_check), at once for out-of-order data and hole fills, else when the timer
 * min(ATO = 40 ms, delack_max) fires on the timer tick.
 */
import assert from 'node:assert/strict';
import { EventList, Timer } from '../../sim/engine/events.js';
import { Packet } from '../../sim/net/packet.js';
import { QUICKACKS } from '../../sim/tcp/receiver.js';
import { TcpReceiver, tcpConfig, type TcpConfig } from '../../sim/tcp/tcp.js';
import { MS, US, tcpPair } from '../support/sim-tcp.js';

const MSS = 1448;

/** A receiver fed segments (numbered in MSS units) at chosen times; its ACKs are recorded with their send times. */
function receiverAt(tcp: Partial<TcpConfig>) {
  const ev = new EventList();
  const acks: Array<{ at: number; ack: number }> = [];
  const r = new TcpReceiver(ev, tcpConfig({ delayedAck: true, ...tcp }), 1, 0, [{ receive: (p) => void acks.push({ at: ev.now(), ack: p.ack / MSS }) }]);
  const deliverAt = (at: number, segment: number) =>
    new Timer(ev, () => {
      const p = new Packet('data', 1, 0, MSS + 52);
      p.seq = segment * MSS;
      p.payload = MSS;
      r.receive(p);
    }).set(at);
  return { ev, r, acks, deliverAt };
}

describe('sim tcp: delayed ACKs (RFC 5681 §4.2, Linux delack_max)', function () {
  this.timeout(60_000);

  it(`quick-ack: the first ${QUICKACKS} segments are ACKed one by one; then one ACK for every second full segment`, () => {
    const { ev, acks, deliverAt } = receiverAt({ clockGranularityNs: US });
    for (let s = 0; s < 24; s++) deliverAt((s + 1) * 10 * US, s);
    ev.run(300 * US);
    assert.deepEqual(
      acks.map((a) => a.ack),
      [...Array.from({ length: QUICKACKS }, (_, i) => i + 1), 18, 20, 22, 24],
    );
  });

  it('a bulk transfer sends about one ACK for two segments', () => {
    const p = tcpPair(tcpConfig({ delayedAck: true }));
    const bytes = 4 << 20;
    p.sender.write(bytes);
    p.ev.run();
    assert.equal(p.receiver.rcvNxt, bytes);
    const segments = Math.ceil(bytes / MSS);
    const ratio = p.receiver.stats.acksSent / segments;
    assert.ok(ratio >= 0.5 && ratio <= 0.51, `${p.receiver.stats.acksSent} ACKs for ${segments} segments`);
    assert.equal(p.acks.length, p.receiver.stats.acksSent);
  });

  it('the timer ACKs a lone segment after min(40 ms, delackMax): 5 ms when delackMax is 5 ms, 40 ms by default', () => {
    for (const [delackMaxNs, wait] of [[5 * MS, 5 * MS], [undefined, 40 * MS]] as const) {
      const { ev, r, acks, deliverAt } = receiverAt({ clockGranularityNs: US, ...(delackMaxNs && { delackMaxNs }) });
      for (let s = 0; s < QUICKACKS; s++) deliverAt((s + 1) * 10 * US, s);
      deliverAt(1 * MS, QUICKACKS); // the lone segment
      ev.run();
      const last = acks[acks.length - 1]!;
      assert.equal(last.ack, QUICKACKS + 1);
      assert.equal(last.at - 1 * MS, wait);
      assert.equal(r.stats.delayedAckTimeouts, 1);
    }
  });

  it('on a 1 ms timer tick (HZ=1000) the delayed ACK fires on a tick, as a jiffies timer', () => {
    const { ev, acks, deliverAt } = receiverAt({ delackMaxNs: 5 * MS });
    for (let s = 0; s < QUICKACKS; s++) deliverAt((s + 1) * 10 * US, s);
    deliverAt(1 * MS + 300 * US, QUICKACKS);
    ev.run();
    assert.equal(acks[acks.length - 1]!.at, 6 * MS);
  });

  it('out-of-order segments and the segment that fills the hole are ACKed at once (RFC 5681 §4.2)', () => {
    const { ev, acks, deliverAt } = receiverAt({ clockGranularityNs: US });
    for (let s = 0; s < 20; s++) deliverAt((s + 1) * 10 * US, s);
    deliverAt(400 * US, 21);
    deliverAt(410 * US, 22);
    deliverAt(420 * US, 20);
    deliverAt(430 * US, 23); // in order again, no hole: held for the timer
    ev.run(1 * MS);
    const after = acks.filter((a) => a.at >= 400 * US);
    assert.deepEqual(after, [
      { at: 400 * US, ack: 20 },
      { at: 410 * US, ack: 20 },
      { at: 420 * US, ack: 23 },
    ]);
  });
});
