/** The warnings' arithmetic and wording, for the spellings the API tests do not reach. */
import assert from 'node:assert/strict';
import { burstWarning, selectorWarning } from '../../api/contract/class-warnings.js';
import { bytesRateWarning } from '../../api/contract/units.js';

describe('bytesRateWarning', () => {
  it('says what a bytes unit spelled like bits was read as, and the bits spelling, keeping the number as typed', () => {
    assert.equal(bytesRateWarning('--rate', '100mbps'), '--rate 100mbps read as 100 megabytes/s = 800 Mbit/s, as tc reads it; write 100mbit for 100 megabits/s');
    assert.equal(bytesRateWarning('rate', '1.5Gbps'), 'rate 1.5Gbps read as 1.5 gigabytes/s = 12 Gbit/s, as tc reads it; write 1.5gbit for 1.5 gigabits/s');
    assert.equal(bytesRateWarning('rate', '2kibps'), 'rate 2kibps read as 2 kibibytes/s = 16384 bit/s, as tc reads it; write 2kibit for 2 kibibits/s');
    assert.equal(bytesRateWarning('rate', '1tbps'), 'rate 1tbps read as 1 terabytes/s = 8 Tbit/s, as tc reads it; write 1tbit for 1 terabits/s');
    assert.equal(bytesRateWarning('rate', '5000bps'), 'rate 5000bps read as 5000 bytes/s = 40 kbit/s, as tc reads it; write 5000bit for 5000 bits/s');
  });

  it('is silent for bits, a capital B (bytes on purpose), and what parseRate refuses', () => {
    for (const rate of ['100mbit', '100', '100MBps', '1GBps', '64KiBps', '0.1bps', 'mbps', '100 mbps', '-1mbps', '1e3mbps']) {
      assert.equal(bytesRateWarning('rate', rate), undefined, rate);
    }
  });
});

describe('burstWarning and selectorWarning', () => {
  it('a burst under one packet: 1 to 1499 bytes, or a time that is under 1500 bytes at the rate', () => {
    assert.equal(burstWarning({ rate: 1e9, burst: { bytes: 0 } }), undefined);
    assert.equal(burstWarning({ rate: 1e9, burst: { bytes: 1500 } }), undefined);
    assert.equal(burstWarning({ rate: 1e9, burst: { bytes: 1499 } })?.path, '/burst');
    assert.equal(burstWarning({ rate: 1e9, burst: { ns: 0 } }), undefined);
    assert.equal(burstWarning({ rate: 1e9, burst: { ns: 12_000 } }), undefined, '12 us at 1 Gbit/s is 1500 bytes');
    assert.match(burstWarning({ rate: 1e9, burst: { ns: 11_999 } })!.message, /^burst 11999ns is 1499 bytes at rate 1gbit/);
    // The largest time burst at the largest rate does not overflow into a wrong answer.
    assert.equal(burstWarning({ rate: 400e9, burst: { ns: 10e9 } }), undefined);
  });

  it('no selector: warned about only without children', () => {
    const empty = { name: 'x', match: { marks: [], cgroups: [], dst: [] } };
    assert.equal(selectorWarning(empty, false)?.path, '/match');
    assert.equal(selectorWarning(empty, true), undefined);
    assert.equal(selectorWarning({ ...empty, match: { ...empty.match, cgroups: ['/a'] } }, false), undefined);
  });
});
