/**
 * On/off sources (sim/workload/onoff.ts; ns-2's Exponential On/Off): the duty cycle, the rate
 * while on, and what reaches the receiver.
 */
import assert from 'node:assert/strict';
import { loadScenario } from '../../sim/scenario/load.js';
import { runScenario } from '../../sim/run.js';

function scenario(onoff: string, duration: string, bin = '100ms'): string {
  return `duration: ${duration}
bin: ${bin}
topology:
  switch: { bufferPackets: 100 }
  hosts:
    a: { address: 10.0.0.1, link: { rate: 1gbit, delay: 25us } }
    b: { address: 10.0.0.2, link: { rate: 1gbit, delay: 25us } }
workloads:
  - onoff: ${onoff}
`;
}

describe('sim workload: on/off sources', function () {
  this.timeout(120_000);

  it('fixed periods: duty cycle on/(on+off) exactly, the rate while on, nothing while off', async () => {
    const r = await runScenario(loadScenario(scenario('{ from: a, to: b, rate: 200mbit, on: 10ms, off: 30ms, periods: fixed }', '1s', '10ms')));
    const w = r.onoff[0]!;
    const f = w.flows[0]!;
    assert.equal(w.dutyCycleExpected, 0.25);
    // Periods start at 0, 40, …, 960 ms; a 26th starts at 1 s, the end of the run, and has no time.
    assert.equal(f.onPeriods, 26);
    assert.equal(f.dutyCycle, 0.25);
    // 200 Mbit/s × 10 ms = 250,000 bytes per period, 25 periods: offered 50 Mbit/s on average.
    assert.ok(Math.abs(f.offeredBps - 50e6) < 50e6 * 0.001, `offered ${f.offeredBps}`);
    assert.ok(Math.abs(f.goodputBps / f.offeredBps - 1) < 0.01, 'an idle 1 Gbit/s path delivers what is offered');
    // 10 ms bins: one bin at about 200 Mbit/s, then three (nearly) silent ones.
    const s = f.goodputSeriesBps;
    for (let k = 0; k < 24; k++) {
      assert.ok(Math.abs(s[4 * k]! / 200e6 - 1) < 0.05, `bin ${4 * k}: ${s[4 * k]}`);
      for (const off of [2, 3]) assert.equal(s[4 * k + off], 0, `bin ${4 * k + off} is off`);
    }
  });

  it('exponential periods: duty cycle within 0.02 of on/(on+off) over ~2,500 cycles, mean on period within 5%', async () => {
    // Periods are exponential (CV 1): over n = 2,500 cycles the on-time fraction has s.d. about
    // 0.25 · 0.75 · √2 / √n · … ≈ 0.005, so 0.02 is 4σ; fixed periods or a wrong mean fail it.
    const r = await runScenario(loadScenario(scenario('{ from: a, to: b, rate: 10mbit, on: 20ms, off: 60ms }', '200s', '1s')));
    const f = r.onoff[0]!.flows[0]!;
    assert.ok(f.onPeriods > 2300 && f.onPeriods < 2700, `${f.onPeriods} on periods`);
    assert.ok(Math.abs(f.dutyCycle - 0.25) < 0.02, `duty cycle ${f.dutyCycle}`);
    const meanOnNs = (f.dutyCycle * 200e9) / f.onPeriods;
    assert.ok(Math.abs(meanOnNs / 20e6 - 1) < 0.05, `mean on period ${meanOnNs} ns`);
    // The source's own periods vary: some 1 s bins carry far more than others.
    const bins = f.goodputSeriesBps;
    assert.ok(Math.max(...bins) > 1.3 * Math.min(...bins));
  });

  it('selectors: a cgroup puts the source in its class, whose budget then shapes it while on', async () => {
    const text = scenario('{ from: a, to: b, rate: 500mbit, on: 20ms, off: 20ms, periods: fixed, cgroup: /video.slice }', '400ms', '20ms').replace(
      'workloads:',
      'classes:\n  - { name: video, rate: 100mbit, burst: 10kb, match: { cgroups: [/video.slice] } }\nworkloads:',
    );
    const r = await runScenario(loadScenario(text));
    const w = r.onoff[0]!;
    assert.equal(w.class, 'video');
    // The class's delivered bytes over the workload's window (from 0) are the workload's goodput.
    assert.ok(Math.abs((r.classes.find((c) => c.name === 'video')!.deliveredBytes * 8e9) / r.simulatedNs - w.goodputBps) <= 1);
    // 500 Mbit/s offered while on, half the time: 250 Mbit/s on average, held to the 100 Mbit/s budget.
    assert.ok(w.flows[0]!.offeredBps > 240e6);
    assert.ok(w.goodputBps < 101e6 && w.goodputBps > 90e6, `goodput ${w.goodputBps}`);
  });

  it('the same seed repeats the periods; another seed draws others', async () => {
    const s = loadScenario(scenario('{ from: a, to: b, rate: 100mbit, on: 5ms, off: 5ms, flows: 2 }', '200ms'));
    const a = JSON.stringify(await runScenario(s));
    assert.equal(a, JSON.stringify(await runScenario(s)));
    const other = await runScenario(s, { seed: 9 });
    assert.notEqual(a, JSON.stringify(other));
    const [f1, f2] = JSON.parse(a).onoff[0].flows;
    assert.notEqual(f1.dutyCycle, f2.dutyCycle, 'each flow of a workload draws its own periods');
  });
});
