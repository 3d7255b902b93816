/**
 * The simulator's host egress (pacer's own edt.ts in front of fq and a 1 Gbit/s NIC) with a
 * parent of 100 Mbit/s and two children: `borrower` at 90 Mbit/s (the rest of the parent, as the
 * borrowing loop lends it) keeps 10 packets in the host all the time, like a TCP flow under TSQ;
 * `burster`, guaranteed 10 Mbit/s, puts 1 MB into the host at once at 100 ms (a UDP burst, or many
 * sockets). What leaves the NIC under the parent is measured in every 10 ms window.
 *
 * Before the leaf took on its wait at the parent (edt.h), the borrower waited behind the burst's
 * parent slots and then drained its backlog at the parent's rate while the burster still sent at
 * its own: about 110 Mbit/s under a 100 Mbit/s parent for most of a second.
 */
import assert from 'node:assert/strict';
import { EventList, Timer } from '../../sim/engine/events.js';
import { Packet, L2_HEADER, type PacketSink } from '../../sim/net/packet.js';
import { HostEgress } from '../../sim/net/host.js';
import type { EdtClassConfig } from '../../shaper-bpf/src/edt.js';

const MS = 1_000_000;
const S = 1_000_000_000;
const PARENT = 1;
const BORROWER = 2;
const BURSTER = 3;
const SKB = 1500; // bytes the shaper charges per packet (datagram + Ethernet header)

const cls = (rateBps: number, parentId = 0): EdtClassConfig => ({ rateBps, burstNs: 0, horizonNs: 2 * S, ecnNs: 0, parentId });

/** Each packet as it leaves the NIC. */
class Sink implements PacketSink {
  readonly left: Array<{ at: number; cls: number; bytes: number }> = [];
  onPacket: ((p: Packet) => void) | undefined;
  constructor(private readonly events: EventList) {}
  receive(p: Packet): void {
    this.left.push({ at: this.events.now(), cls: p.cls, bytes: p.size + L2_HEADER });
    this.onPacket?.(p);
  }
}

/** The most bytes that left in any window of `windowNs` starting at a departure. */
function maxInWindow(left: ReadonlyArray<{ at: number; bytes: number }>, windowNs: number): number {
  let max = 0;
  let sum = 0;
  let j = 0;
  for (let i = 0; i < left.length; i++) {
    while (j < left.length && left[j]!.at < left[i]!.at + windowNs) sum += left[j++]!.bytes;
    max = Math.max(max, sum);
    sum -= left[i]!.bytes;
  }
  return max;
}

describe('sim: a bursting child beside a sibling that borrowed the rest of the parent', () => {
  it('the bytes leaving under the parent stay within its rate in every 10 ms window (plus one packet per child and one on the NIC)', () => {
    const ev = new EventList();
    const host = new HostEgress(ev, {
      name: 'app',
      rateBps: 1_000_000_000,
      classes: new Map([
        [PARENT, cls(100_000_000)],
        [BORROWER, cls(90_000_000, PARENT)],
        [BURSTER, cls(10_000_000, PARENT)],
      ]),
      // Room for the whole burst in fq: what is measured is pacer's schedule, not fq's limits.
      fq: { flowLimit: 10_000, limit: 100_000 },
    });
    const sink = new Sink(ev);
    const send = (flow: number, c: number) => new Packet('data', flow, c, SKB - L2_HEADER).send([host, sink]);
    // The borrower keeps 10 packets in the host: each that leaves lets the next one in.
    sink.onPacket = (p) => {
      if (p.cls === BORROWER && ev.now() < 1500 * MS) send(1, BORROWER);
    };
    for (let i = 0; i < 10; i++) send(1, BORROWER);
    // 1 MB from the burster at 100 ms.
    new Timer(ev, () => {
      for (let i = 0; i < 700; i++) send(2, BURSTER);
    }).set(100 * MS);
    ev.run(2 * S);

    const burst = sink.left.filter((l) => l.cls === BURSTER);
    assert.equal(burst.length, 700, 'the whole burst left (within the 2 s horizon)');
    const window = 10 * MS;
    const bound = (100_000_000 * window) / 8e9 + 3 * SKB;
    const during = sink.left.filter((l) => l.at >= 100 * MS && l.at <= burst.at(-1)!.at);
    const max = maxInWindow(during, window);
    assert.ok(max <= bound, `${max} bytes left under the parent in a 10 ms window (${((max * 8) / 1e4).toFixed(1)} Mbit/s); at most ${bound}`);
    // And both children really sent meanwhile: the borrower was not starved.
    const borrowed = during.filter((l) => l.cls === BORROWER).reduce((a, l) => a + l.bytes, 0);
    const span = burst.at(-1)!.at - 100 * MS;
    assert.ok((borrowed * 8e9) / span > 80_000_000, `the borrower kept ${((borrowed * 8e9) / span / 1e6).toFixed(1)} Mbit/s during the burst`);
  });
});
