/**
 * fq's flow garbage collection (Linux fq_gc, FQ_GC_AGE = 3 s): a host that opens a connection per
 * RPC must not keep every flow it ever saw, or memory grows with simulated time.
 */
import assert from 'node:assert/strict';
import { Fq } from '../../sim/net/fq.js';
import { Packet } from '../../sim/net/packet.js';

const SEC = 1_000_000_000;

/** One packet of `flow` through the qdisc at `now`: the flow ends up detached (empty). */
function pass(fq: Fq, flow: number, now: number): void {
  assert.equal(fq.enqueue(new Packet('data', flow, 0, 1500), now), null);
  assert.ok(fq.dequeue(now));
  assert.equal(fq.dequeue(now), null, 'empty again: the flow is detached');
}

describe('sim network: fq flow garbage collection', () => {
  it('frees flows detached for more than 3 s when the table has doubled; keeps younger ones and busy ones', () => {
    const fq = new Fq();
    for (let f = 1; f <= 100; f++) pass(fq, f, 0);
    for (let f = 101; f <= 127; f++) pass(fq, f, 2 * SEC);
    // A busy flow at 10 s: its packet is queued (the 128th flow: no sweep yet).
    assert.equal(fq.enqueue(new Packet('data', 1000, 0, 1500), 10 * SEC), null);
    assert.equal(fq.flowCount, 128);
    // The next new flow finds the table doubled (2 × 64) and sweeps: every flow idle since 0 or
    // 2 s is older than 3 s at 10 s; the busy one stays, with the new one.
    assert.equal(fq.enqueue(new Packet('data', 2000, 0, 1500), 10 * SEC), null);
    assert.equal(fq.flowCount, 2);
    assert.equal(fq.packets, 2);
  });

  it('flows idle for less than 3 s survive a sweep', () => {
    const fq = new Fq();
    for (let f = 1; f <= 128; f++) pass(fq, f, 1 * SEC);
    pass(fq, 129, 3.5 * SEC);
    assert.equal(fq.flowCount, 129, 'idle 2.5 s: kept');
  });

  it('a connection per RPC for 1,000 RPCs keeps the table bounded', () => {
    const fq = new Fq();
    let max = 0;
    for (let f = 1; f <= 1000; f++) {
      pass(fq, f, f * 100_000_000); // one new flow every 100 ms
      max = Math.max(max, fq.flowCount);
    }
    assert.ok(max <= 128, `at most ${max} flows held (3 s of flows plus the doubling slack)`);
  });
});
