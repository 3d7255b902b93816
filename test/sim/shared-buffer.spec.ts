/**
 * A switch buffer shared by all ports with Choudhury and Hahne's dynamic threshold ("Dynamic
 * queue length thresholds for shared-memory packet switches", IEEE/ACM ToN 1998): a port may
 * queue while q < α·(B − Q). One busy port can take α/(1+α) of the pool — more than a static
 * 1/N share — and the pool limit always holds.
 */
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packet } from '../../sim/net/packet.js';
import { DropTail } from '../../sim/net/port.js';
import { SharedBuffer } from '../../sim/net/shared-buffer.js';
import { ScenarioError, loadScenario, loadScenarioFile } from '../../sim/scenario/load.js';
import { runScenario } from '../../sim/run.js';

const here = dirname(fileURLToPath(import.meta.url));
const EXAMPLES = join(here, '../../../sim/examples');

/** Enqueues 1000-byte packets into a port until one is refused; returns the bytes it holds and the reason. */
function fill(q: DropTail): { bytes: number; reason: string | null } {
  for (let i = 0; i < 10_000; i++) {
    const reason = q.enqueue(new Packet('data', 1, 0, 1000), 0);
    if (reason !== null) return { bytes: q.bytes, reason };
  }
  return { bytes: q.bytes, reason: null };
}

describe('sim network: shared switch buffer (dynamic threshold)', () => {
  it('α = 1: one busy port takes half the pool (4× its static share of 8 ports); a second then takes half of what is left', () => {
    const pool = new SharedBuffer({ poolBytes: 80_000, alpha: 1 });
    const ports = Array.from({ length: 8 }, () => new DropTail({ shared: pool }));
    const first = fill(ports[0]!);
    assert.deepEqual(first, { bytes: 40_000, reason: 'shared_buffer' }, 'q < B − q admits up to B/2');
    assert.ok(first.bytes > 80_000 / 8, 'more than a static share');
    const second = fill(ports[1]!);
    assert.deepEqual(second, { bytes: 20_000, reason: 'shared_buffer' }, 'q1 < 80000 − 40000 − q1');
    assert.equal(pool.used, 60_000);
    // The first port drains: the second may grow into what it freed.
    while (ports[0]!.dequeue(0)) {}
    assert.equal(fill(ports[1]!).bytes, 40_000);
    assert.equal(pool.drops, 3);
  });

  it('the pool limit holds under any mix of ports (random enqueues and dequeues, α = 4)', () => {
    const pool = new SharedBuffer({ poolBytes: 50_000, alpha: 4 });
    const ports = Array.from({ length: 5 }, () => new DropTail({ shared: pool }));
    let seed = 1;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 100_000; i++) {
      const q = ports[Math.floor(rand() * ports.length)]!;
      if (rand() < 0.6) q.enqueue(new Packet('data', 1, 0, 64 + Math.floor(rand() * 1437)), i);
      else q.dequeue(i);
      assert.ok(pool.used <= 50_000);
      assert.equal(pool.used, ports.reduce((a, p) => a + p.bytes, 0));
    }
    assert.ok(pool.maxUsed > 45_000, 'the pool was actually pressed');
  });

  it('complete sharing (alpha none) lets one port take the whole pool; a per-port cap still applies', () => {
    const pool = new SharedBuffer({ poolBytes: 30_000, alpha: null });
    assert.deepEqual(fill(new DropTail({ shared: pool })), { bytes: 30_000, reason: 'shared_buffer' });
    const capped = new SharedBuffer({ poolBytes: 30_000, alpha: null });
    assert.deepEqual(fill(new DropTail({ shared: capped, bufferBytes: 12_000 })), { bytes: 12_000, reason: 'buffer' });
  });

  it('in a run: the incast port holds more than its static share, the pool is never exceeded, drops say shared_buffer', async () => {
    const s = loadScenarioFile(join(EXAMPLES, 'shared-buffer.yaml'));
    assert.deepEqual(s.sharedBuffer, { poolBytes: 512 * 1024, alpha: 1 });
    const r = await runScenario({ ...s, durationNs: 500_000_000 });
    const sw = r.switch!;
    assert.ok(sw.maxUsedBytes <= 512 * 1024);
    const client = r.switchPorts.find((p) => p.name === 'switch→client')!;
    const staticShare = (512 * 1024) / s.hosts.length;
    assert.ok(client.maxQueueBytes > staticShare, `client port max ${client.maxQueueBytes} vs static share ${staticShare}`);
    // α = 1: the port joins while q < B − Q, so q stays below half the pool plus the one packet admitted last.
    assert.ok(client.maxQueueBytes < 256 * 1024 + 1500, `α = 1: at most half the pool, got ${client.maxQueueBytes}`);
    assert.ok(r.drops.shared_buffer > 0 && r.drops.buffer === 0);
    assert.equal(sw.drops, r.drops.shared_buffer);
    assert.ok(client.queueSeriesBytes!.length === 5 && client.meanQueueBytes > 0);
  });

  it('scenario validation: alpha needs sharedBuffer; a switch needs some buffer; at most one per-port limit', () => {
    const base = (sw: string) => `duration: 1s
topology:
  switch: ${sw}
  hosts:
    a: { link: { rate: 1gbit, delay: 25us } }
    b: { link: { rate: 1gbit, delay: 25us } }
workloads:
  - bulk: { from: a, to: b }
`;
    assert.equal(loadScenario(base('{ sharedBuffer: 1mb }')).sharedBuffer!.alpha, 1, 'α defaults to 1');
    assert.equal(loadScenario(base('{ sharedBuffer: 1mb, alpha: none }')).sharedBuffer!.alpha, null);
    for (const [sw, message] of [
      ['{ buffer: 32kb, alpha: 2 }', /topology\.switch\.alpha: alpha is the shared buffer's dynamic threshold: it needs sharedBuffer/],
      ['{ ecnThreshold: 10kb }', /the switch needs a per-port buffer \(buffer or bufferPackets\), a sharedBuffer, or both/],
      ['{ sharedBuffer: 1mb, buffer: 32kb, bufferPackets: 10 }', /give one of buffer \(bytes\) and bufferPackets, not both/],
      ['{ sharedBuffer: 1mb, alpha: 0 }', /alpha/],
    ] as const) {
      assert.throws(() => loadScenario(base(sw), 'x.yaml'), (e: unknown) => e instanceof ScenarioError && message.test(e.message) && /x\.yaml:3:/.test(e.message), sw);
    }
  });
});
