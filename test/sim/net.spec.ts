import assert from 'node:assert/strict';
import { EventList } from '../../sim/engine/events.js';
import { Packet, L2_HEADER, type PacketSink } from '../../sim/net/packet.js';
import { Port, DropTail } from '../../sim/net/port.js';
import { Pipe } from '../../sim/net/pipe.js';
import { Fq } from '../../sim/net/fq.js';
import { HostEgress } from '../../sim/net/host.js';
import type { EdtClassConfig } from '../../shaper-bpf/src/edt.js';

const MS = 1_000_000;
const S = 1_000_000_000;

/** Records each arrival: time, flow, size. */
class Sink implements PacketSink {
  readonly log: Array<{ at: number; flow: number; size: number; ce: boolean }> = [];
  onPacket: ((p: Packet) => void) | undefined;
  constructor(private readonly events: EventList) {}
  receive(p: Packet): void {
    this.log.push({ at: this.events.now(), flow: p.flow, size: p.size, ce: p.ce });
    this.onPacket?.(p);
  }
}

const cls = (rateBps: number, extra: Partial<EdtClassConfig> = {}): EdtClassConfig => ({ rateBps, burstNs: 0, horizonNs: 2 * S, ecnNs: 0, parentId: 0, ...extra });

/**
 * A greedy source per flow that keeps `window` packets inside the host (like TCP Small Queues
 * would): each packet that leaves the NIC lets the next one in.
 */
function greedy(events: EventList, host: HostEgress, sink: Sink, flows: Array<{ flow: number; cls: number; size: number }>, window = 10): void {
  const send = (f: { flow: number; cls: number; size: number }) => new Packet('data', f.flow, f.cls, f.size).send([host, sink]);
  sink.onPacket = (p) => {
    const f = flows.find((x) => x.flow === p.flow);
    if (f) send(f);
  };
  for (const f of flows) for (let i = 0; i < window; i++) send(f);
}

describe('sim network: links and switch ports', () => {
  it('a port serializes wire bytes (datagram + 38 B Ethernet framing) at line rate, a pipe adds propagation', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const port = new Port(ev, new DropTail({ bufferBytes: 1 << 20 }), { name: 'p', rateBps: 1_000_000_000 });
    const pipe = new Pipe(ev, 25_000);
    for (let i = 0; i < 3; i++) new Packet('data', 1, 0, 1500).send([port, pipe, sink]);
    ev.run();
    // 1538 bytes at 1 Gbit/s = 12304 ns each, back to back, then 25 us.
    assert.deepEqual(sink.log.map((e) => e.at), [12_304 + 25_000, 2 * 12_304 + 25_000, 3 * 12_304 + 25_000]);
    assert.equal(port.stats.sentPackets, 3);
  });

  it('drop-tail drops what exceeds the byte buffer (packet on the wire not counted) with reason "buffer"', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const port = new Port(ev, new DropTail({ bufferBytes: 32 * 1024 }), { name: 'p', rateBps: 1_000_000_000 });
    for (let i = 0; i < 30; i++) new Packet('data', 1, 0, 1500).send([port, sink]);
    ev.run();
    // One on the wire + floor(32768 / 1500) = 21 queued.
    assert.equal(sink.log.length, 22);
    assert.equal(port.stats.drops.buffer, 8);
    assert.equal(port.stats.dropped, 8);
    assert.equal(port.stats.maxQueueBytes, 21 * 1500);
  });

  it('drop-tail with a packet limit, and ECN marking above the threshold on ECT packets only', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const q = new DropTail({ bufferPackets: 5, ecnThresholdBytes: 3000 });
    const port = new Port(ev, q, { name: 'p', rateBps: 1_000_000_000 });
    for (let i = 0; i < 8; i++) {
      const p = new Packet('data', 1, 0, 1500);
      p.ect = i !== 5;
      p.send([port, sink]);
    }
    ev.run();
    assert.equal(port.stats.drops.buffer, 2);
    // Queue on arrival: pkt0 goes to the wire, pkt1..5 find 0,1500,3000,4500,6000 bytes queued.
    assert.deepEqual(sink.log.map((e) => e.ce), [false, false, false, true, true, false]);
    assert.equal(q.ecnMarks, 2);
  });

  it('rejects bad parameters at construction (CheckConfig)', () => {
    const ev = new EventList();
    assert.throws(() => new DropTail({}), /bufferBytes or bufferPackets/);
    assert.throws(() => new Port(ev, new DropTail({ bufferPackets: 1 }), { name: 'x', rateBps: 0 }), /rateBps/);
    assert.throws(() => new Fq({ quantum: 0 }), /quantum/);
    assert.throws(() => new Pipe(ev, -1), /delay/);
  });
});

describe('sim network: fq', () => {
  it('Linux defaults: limit 10000, flow_limit 100, quantum 2·MTU, initial quantum 10·MTU, horizon 10 s', () => {
    const fq = new Fq();
    assert.deepEqual([fq.limit, fq.flowLimit, fq.quantum, fq.initialQuantum, fq.horizonNs], [10_000, 100, 3028, 15_140, 10 * S]);
  });

  it('drops beyond flow_limit, beyond limit, and beyond its horizon, each with its reason', () => {
    const fq = new Fq({ flowLimit: 3, limit: 5, horizonNs: 1000 });
    const p = (flow: number, tstamp = 0) => Object.assign(new Packet('data', flow, 0, 100), { tstamp });
    assert.deepEqual([1, 1, 1, 1].map(() => fq.enqueue(p(1), 0)), [null, null, null, 'fq_flow_limit']);
    assert.equal(fq.enqueue(p(2, 1001), 0), 'fq_horizon');
    assert.deepEqual([fq.enqueue(p(2, 1000), 0), fq.enqueue(p(3), 0), fq.enqueue(p(4), 0)], [null, null, 'fq_limit']);
  });

  it('holds a packet until its time to send and wakes the port then', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const port = new Port(ev, new Fq(), { name: 'nic', rateBps: 10_000_000_000 });
    const p = new Packet('data', 1, 0, 1486);
    p.tstamp = 5000;
    p.send([port, sink]);
    ev.run();
    assert.equal(sink.log[0]!.at, 5000 + port.serializationNs(1486));
  });

  it('two backlogged flows share the link by bytes (deficit round robin)', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const port = new Port(ev, new Fq(), { name: 'nic', rateBps: 1_000_000_000 });
    for (let i = 0; i < 100; i++) {
      new Packet('data', 1, 0, 1500).send([port, sink]);
      new Packet('data', 2, 0, 500).send([port, sink]);
    }
    ev.run();
    // Flow 2 (50 KB) runs dry first; until then both were backlogged.
    const end = Math.max(...sink.log.filter((e) => e.flow === 2).map((e) => e.at));
    const bytes = (f: number) => sink.log.filter((e) => e.flow === f && e.at <= end).reduce((s, e) => s + e.size + L2_HEADER, 0);
    // Equal bytes up to one quantum plus the initial quantum each.
    assert.ok(Math.abs(bytes(1) - bytes(2)) <= 3028 + 15_140 + 1500, `${bytes(1)} vs ${bytes(2)}`);
  });
});

describe('sim network: host egress = edt.ts shaper + fq (analytic validation, issue #6)', () => {
  it('500 Mbit/s: 1500-byte packets (skb->len, as the tc program counts) leave exactly 24.0 us apart', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const host = new HostEgress(ev, { name: 'h', rateBps: 10_000_000_000, classes: new Map([[1, cls(500_000_000)]]) });
    greedy(ev, host, sink, [{ flow: 1, cls: 1, size: 1500 - L2_HEADER }]);
    ev.run(10 * MS);
    const gaps = sink.log.slice(1).map((e, i) => e.at - sink.log[i]!.at);
    assert.ok(gaps.length > 400);
    assert.ok(gaps.every((g) => g === 24_000), `gaps: ${[...new Set(gaps)].join(',')}`);
  });

  it('achieved rate over 1 s is within 0.5% of the budget (Carousel, SIGCOMM 2017: 0.5% conformance)', function () {
    this.timeout(20_000);
    for (const [rate, size] of [[500_000_000, 1486], [123_456_789, 1000], [2_000_000_000, 9000]] as const) {
      const ev = new EventList();
      const sink = new Sink(ev);
      const host = new HostEgress(ev, { name: 'h', rateBps: 10_000_000_000, classes: new Map([[1, cls(rate)]]) });
      greedy(ev, host, sink, [{ flow: 1, cls: 1, size }]);
      ev.run(S);
      const bits = sink.log.reduce((s, e) => s + (e.size + L2_HEADER) * 8, 0);
      assert.ok(Math.abs(bits - rate) / rate < 0.005, `rate ${rate}: achieved ${bits}`);
    }
  });

  it('packets beyond the class horizon are dropped at the shaper, counted, and do not move the schedule', () => {
    const ev = new EventList();
    const sink = new Sink(ev);
    const host = new HostEgress(ev, { name: 'h', rateBps: 10_000_000_000, classes: new Map([[1, cls(500_000_000, { horizonNs: MS })]]) });
    for (let i = 0; i < 100; i++) new Packet('data', 1, 1, 1486).send([host, sink]);
    // Packet k (1-based) is due at k·24 us; k·24 us > 1 ms for k ≥ 42.
    assert.equal(host.classStats.get(1)!.horizonDrops, 59);
    assert.equal(host.nic.stats.drops.edt_horizon, 59);
    assert.equal(host.shaper.schedule(1), 41 * 24_000);
    ev.run();
    assert.equal(sink.log.length, 41);
  });

  it('two classes with budgets 2:1 on a saturated 1 Gbit/s link get 2:1', function () {
    this.timeout(20_000);
    const ev = new EventList();
    const sink = new Sink(ev);
    // 1500-byte frames take 1524 byte times on the wire: 640 + 320 Mbit/s of skb bytes fill 97.5% of it,
    // and the greedy sources always have packets waiting.
    const classes = new Map([[1, cls(640_000_000)], [2, cls(320_000_000)]]);
    const host = new HostEgress(ev, { name: 'h', rateBps: 1_000_000_000, classes });
    greedy(ev, host, sink, [{ flow: 1, cls: 1, size: 1486 }, { flow: 2, cls: 1, size: 1486 }, { flow: 3, cls: 2, size: 1486 }]);
    ev.run(S);
    const bytesOf = (flows: number[]) => sink.log.filter((e) => flows.includes(e.flow)).reduce((s, e) => s + e.size + L2_HEADER, 0);
    const a = bytesOf([1, 2]);
    const b = bytesOf([3]);
    assert.ok(Math.abs(a / b - 2) < 0.01, `ratio ${a / b}`);
    assert.ok(Math.abs((a * 8) / 640e6 - 1) < 0.005 && Math.abs((b * 8) / 320e6 - 1) < 0.005, `a ${a * 8} b ${b * 8}`);
  });
});
