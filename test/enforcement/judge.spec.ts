/**
 * The enforcement tier leaves a rate sample unjudged only where the guest measurably lost time
 * (report.ts `judge`, fed by the guest's stall monitor). These tests pin that rule down on the
 * host, without a VM: exclusion follows the stall monitor and never the sample's value, so a
 * wrong rate cannot be excluded away, and lost time below the threshold excludes nothing.
 */
import assert from 'node:assert/strict';
import type { IperfRun } from './guest-lab.js';
import { EXCLUDE_LOST_MS, excludedText, judge, lostWithin, mean } from './report.js';

/** A run whose receiver saw `wire` Mbit/s (wire rates: wireFactor 1) in each second, spawned at lab time 1000 ms. */
const run = (wire: number[]): IperfRun => ({
  to: '10.96.0.2', spawnedAtMs: 1000, exitedAtMs: 1000 + wire.length * 1000, receiverMbps: wire, senderMbps: wire,
  receivedBytes: 0, receivedMbps: mean(wire), retransmits: 0, maxCwndBytes: 0, mss: 1448, wireFactor: 1,
});

describe('enforcement tier: which seconds are judged (report.ts judge)', () => {
  it('judges every steady second when the guest lost no time', () => {
    const j = judge(run([10, 50, 50, 50, 50, 50, 20]), [], 1);
    assert.deepEqual(j.samples, [50, 50, 50, 50, 50]);
    assert.deepEqual(j.excluded, []);
    assert.equal(excludedText(j), 'no second excluded');
  });

  it('leaves out exactly the second in which the guest lost ≥ 20 ms, and says so', () => {
    // Second 3 of the run covers lab time [4000, 5000): a 30 ms stall from 4500.
    const j = judge(run([10, 50, 50, 31, 50, 50, 20]), [{ atMs: 4500, lostMs: 30 }], 1);
    assert.deepEqual(j.samples, [50, 50, 50, 50]);
    assert.deepEqual(j.excluded, [{ i: 3, lostMs: 30 }]);
    assert.equal(excludedText(j), 'excluded s3 (guest lost 30 ms)');
  });

  it('splits a stall across the seconds it spans, and sums stalls within one second', () => {
    assert.equal(lostWithin([{ atMs: 4990, lostMs: 40 }], 4000, 5000), 10);
    assert.equal(lostWithin([{ atMs: 4990, lostMs: 40 }], 5000, 6000), 30);
    assert.equal(lostWithin([{ atMs: 4100, lostMs: 8 }, { atMs: 4600, lostMs: 12 }], 4000, 5000), 20);
    const j = judge(run([10, 50, 50, 50, 50, 50, 20]), [{ atMs: 4990, lostMs: 40 }], 1);
    assert.deepEqual(j.excluded, [{ i: 4, lostMs: 30 }], 'only the second that lost ≥ 20 ms');
  });

  it('excludes nothing for lost time below the threshold, however low the second measured', () => {
    const j = judge(run([10, 50, 50, 13.3, 50, 50, 20]), [{ atMs: 4500, lostMs: EXCLUDE_LOST_MS - 1 }], 1);
    assert.deepEqual(j.excluded, []);
    assert.ok(j.samples.includes(13.3), 'a low second with no measured stall is judged: it fails the rate test');
  });

  it('cannot hide a wrong rate: a 53 Mbit/s class is still 53 after stalls are excluded', () => {
    const j = judge(run([20, 53, 53, 40, 53, 53, 53, 53, 30]), [{ atMs: 4200, lostMs: 250 }], 1);
    assert.deepEqual(j.excluded.map((e) => e.i), [3]);
    assert.equal(mean(j.samples), 53, 'every judged second is still 6% over a 50 Mbit/s budget');
  });
});
