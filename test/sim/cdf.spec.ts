/**
 * Size distributions from CDF files (sim/workload/cdf.ts): the shipped web-search and
 * data-mining distributions, the file format's errors, and that sampling reproduces the CDF.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../sim/engine/rng.js';
import { CdfError, builtinCdfs, cdfAt, loadCdf, parseCdf, sampleSize, type SizeCdf } from '../../sim/workload/cdf.js';
import { ScenarioError, loadScenario } from '../../sim/scenario/load.js';

/**
 * The Kolmogorov–Smirnov distance |F̂(x) − F(x)| of the samples, at every point of the CDF and
 * at the quarter points of every segment: a lower bound of the supremum, and where a wrong
 * sampler (a wrong segment, a wrong interpolation, a lost point mass) shows.
 */
function ksDistance(cdf: SizeCdf, samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const below = (x: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo / sorted.length;
  };
  const points: number[] = [];
  cdf.sizes.forEach((s, i) => {
    points.push(s);
    if (i > 0) for (const f of [0.25, 0.5, 0.75]) points.push(Math.floor(cdf.sizes[i - 1]! + f * (s - cdf.sizes[i - 1]!)));
  });
  return Math.max(...points.map((x) => Math.abs(below(x) - cdfAt(cdf, x))));
}

function refused(text: string, pattern: RegExp): CdfError {
  try {
    parseCdf(text, 'my.cdf');
  } catch (e) {
    assert.ok(e instanceof CdfError, String(e));
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail('expected the CDF to be refused');
}

describe('sim workload: size distributions from CDF files', () => {
  it('ships web-search (DCTCP/pFabric) and data-mining (VL2/pFabric) with their published points', () => {
    assert.deepEqual(builtinCdfs(), ['data-mining', 'web-search']);
    const web = loadCdf('web-search', '/nonexistent');
    // pFabric's ns-2 file (packets of 1460 B): 15% at 6 packets, 53% by 53 packets, all by 20000.
    assert.equal(web.sizes[0], 6 * 1460);
    assert.equal(web.probs[1], 0.15);
    assert.equal(cdfAt(web, 53 * 1460), 0.53);
    assert.equal(web.sizes.at(-1), 20000 * 1460);
    assert.ok(Math.abs(web.meanBytes - 1_665_831) < 1, `web-search mean ${web.meanBytes}`);
    const dm = loadCdf('data-mining', '/nonexistent');
    // VL2 as pFabric uses it: half the flows ≤ 1100 B, 80% ≤ 10 KB, the largest 1 GB.
    assert.equal(cdfAt(dm, 1100), 0.5);
    assert.equal(cdfAt(dm, 10_000), 0.8);
    assert.equal(dm.sizes.at(-1), 1e9);
  });

  for (const name of ['web-search', 'data-mining']) {
    it(`${name}: 200,000 samples stay within the DKW bound of the CDF (Kolmogorov–Smirnov distance < 0.0055)`, () => {
      // Dvoretzky–Kiefer–Wolfowitz with Massart's constant: P(sup|F̂ − F| > ε) ≤ 2·exp(−2nε²).
      // n = 200,000, ε = 0.0055 → ≤ 1.1e-5: a correct sampler fails this about once in 90,000
      // seeds, a wrong one (off by one segment, unrounded, a wrong interpolation) fails always.
      const cdf = loadCdf(name, '.');
      const rng = new Rng(7);
      const n = 200_000;
      const samples = Array.from({ length: n }, () => sampleSize(cdf, rng.next()));
      const d = ksDistance(cdf, samples);
      assert.ok(d < 0.0055, `KS distance ${d}`);
      assert.ok(samples.every((s) => Number.isInteger(s) && s >= cdf.sizes[0]! && s <= cdf.sizes.at(-1)!));
      // The point mass of web-search: 15% of samples exactly 6 packets.
      if (name === 'web-search') {
        const atMass = samples.filter((s) => s === 8760).length / n;
        assert.ok(Math.abs(atMass - 0.15) < 0.005, `mass at 8760 B: ${atMass}`);
      }
    });
  }

  it('a wrong sampler is caught by the same check (the test can fail)', () => {
    const cdf = loadCdf('web-search', '.');
    const rng = new Rng(7);
    // Uniform within each segment by index instead of by probability: the classic mistake.
    const wrong = Array.from({ length: 200_000 }, () => {
      const i = 1 + rng.int(cdf.sizes.length - 1);
      return Math.round(cdf.sizes[i - 1]! + rng.next() * (cdf.sizes[i]! - cdf.sizes[i - 1]!));
    });
    assert.ok(ksDistance(cdf, wrong) > 0.05);
  });

  it('sampling is deterministic per seed', () => {
    const cdf = loadCdf('data-mining', '.');
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 1000 }, () => sampleSize(cdf, rng.next()));
    };
    assert.deepEqual(draw(3), draw(3));
    assert.notDeepEqual(draw(3), draw(4));
  });

  it('format errors name the file and the line', () => {
    refused('100 0.5\n50 1\n', /^my\.cdf:2: sizes must not decrease: 50 after 100/);
    refused('100 0.5\n# comment\n200 0.4\n300 1\n', /^my\.cdf:3: probabilities must not decrease: 0\.4 after 0\.5/);
    refused('100 0.5\n200 0.9\n', /^my\.cdf:2: the last probability must be 1, got 0\.9/);
    refused('100 0.5\n200 abc\n', /^my\.cdf:2: probability "abc" is not a decimal number/);
    refused('10kb 0.5\n200 1\n', /^my\.cdf:1: size "10kb" is not a whole number of bytes ≥ 1 \(no units/);
    refused('0 0\n200 1\n', /^my\.cdf:1: size "0" is not a whole number/);
    refused('100 1.5\n', /^my\.cdf:1: probability 1\.5 is above 1/);
    refused('100 15\n200 100\n', /^my\.cdf:1: probability 15 is above 1 \(a percentage\? write it as a fraction/);
    refused('100 0.5 1\n200 1\n', /^my\.cdf:1: expected "<size in bytes> <cumulative probability>", got 3 fields/);
    refused('# only a comment\n\n', /^my\.cdf: no points/);
  });

  it('a scenario names a built-in distribution or a file relative to itself; errors point at the field and the CDF line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pacer-cdf-'));
    writeFileSync(join(dir, 'good.cdf'), '# mine\n1000 0\n2000 1\n');
    writeFileSync(join(dir, 'bad.cdf'), '1000 0\n2000 0.5\n1500 1\n');
    const scenario = (sizes: string) => `duration: 1s
topology:
  switch: { buffer: 64kb }
  hosts:
    c: { link: { rate: 1gbit, delay: 25us } }
    s: { link: { rate: 1gbit, delay: 25us } }
workloads:
  - rpc: { clients: [c], servers: [s], sizes: ${sizes}, load: 10% }
`;
    const s = loadScenario(scenario('good.cdf'), join(dir, 'x.yaml'));
    const w = s.workloads[0]!;
    assert.ok(w.kind === 'rpc');
    assert.equal(w.cdf.meanBytes, 1500);
    // λ = load · link rate / 8 / mean = 0.1 · 1e9 / 8 / 1500
    assert.ok(Math.abs(w.arrivalsPerSecond - 1e8 / 8 / 1500) < 1e-6);
    for (const [sizes, message] of [
      ['bad.cdf', /bad\.cdf:3: sizes must not decrease: 1500 after 2000/],
      ['websearch', /no built-in size distribution "websearch" \(built-in: data-mining, web-search\)/],
      ['./missing.cdf', /missing\.cdf: cannot read: ENOENT/],
    ] as const) {
      try {
        loadScenario(scenario(sizes), join(dir, 'x.yaml'));
        assert.fail('expected a ScenarioError');
      } catch (e) {
        assert.ok(e instanceof ScenarioError, String(e));
        assert.equal(e.issues.length, 1);
        assert.equal(e.issues[0]!.line, 8);
        assert.match(e.message, /x\.yaml:8:\d+: workloads\[0\]\.rpc\.sizes: /);
        assert.match(e.message, message);
      }
    }
  });
});
