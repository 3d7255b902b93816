/**
 * The real tc egress object on this kernel, run with BPF_PROG_TEST_RUN at times the test chooses
 * (the program's test clock). Every departure is checked to the nanosecond, and against edt.ts.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EgressObject } from '../../shaper-bpf/src/egress.js';
import { skbContext, readSkbContext } from '../../shaper-bpf/src/libbpf/index.js';
import { EdtShaper, delayNs, type EdtClassConfig } from '../../shaper-bpf/src/edt.js';
import type { ClassConfig } from '../../shaper-bpf/src/layout.js';
import { frame, ecnOf } from '../support/packets.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';
import { TestClasses } from '../support/slots.js';
import { bucketOf, HIST_BUCKETS } from '../../shaper-bpf/src/delay-hist.js';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const T0 = 1_000_000_000_000_000; // 11.6 days of uptime: far from 0, far below 2^53

const config = (c: Partial<ClassConfig> & { rate_bps: number }): ClassConfig => ({ burst_ns: 0, horizon_ns: 2_000_000_000, ecn_ns: 0, parent_id: 0, flags: 0, ...c });
const toModel = (c: ClassConfig): EdtClassConfig => ({ rateBps: c.rate_bps, burstNs: c.burst_ns, horizonNs: c.horizon_ns, ecnNs: c.ecn_ns, parentId: c.parent_id });

describe('tc egress program (BPF_PROG_TEST_RUN on the real object)', function () {
  this.timeout(120_000);
  let eg: EgressObject;
  let tc: TestClasses;
  let pinRoot: string;

  before(() => {
    pinRoot = makePinDir();
    eg = EgressObject.load({ pinRoot });
    tc = new TestClasses(eg);
  });
  after(() => {
    eg?.close();
    removePinDir(pinRoot);
  });
  afterEach(() => clearAll());

  /** Classes are written by class id through TestClasses, which gives them slots as the Datapath does. */
  function clearAll(): void {
    tc.clear();
  }

  /** Sends one packet at `now`; returns the verdict and the departure stamped on it. */
  function send(now: number, opts: { mark?: number; wireLen?: number; tstamp?: number; dst?: string; tos?: number; data?: Buffer } = {}) {
    eg.setTestClock(BigInt(now));
    const data = opts.data ?? frame(opts.dst ?? '192.0.2.1', { tos: opts.tos });
    const r = eg.program.testRun({
      data,
      ctxIn: skbContext({ mark: opts.mark ?? 0, tstamp: BigInt(opts.tstamp ?? 0), wireLen: Math.max(opts.wireLen ?? data.length, data.length) }),
      ctxOutSize: 192,
      dataOutSize: data.length,
    });
    return { verdict: r.retval, tstamp: Number(readSkbContext(r.ctxOut!).tstamp), data: r.dataOut! };
  }

  function classWithMark(id: number, c: ClassConfig, mark = id): void {
    tc.set(id, c);
    tc.mark(mark, id);
  }

  it('sends the first packet of an idle class at once, then paces one transmission time apart', () => {
    classWithMark(1, config({ rate_bps: 100_000_000 })); // 1500 B at 100 Mbit/s = 120 us
    const first = send(T0, { mark: 1, wireLen: 1500 });
    assert.equal(first.verdict, TC_ACT_OK);
    assert.equal(first.tstamp, T0);
    assert.equal(send(T0, { mark: 1, wireLen: 1500 }).tstamp, T0 + 120_000);
    assert.equal(send(T0, { mark: 1, wireLen: 1500 }).tstamp, T0 + 240_000);
    assert.equal(tc.state(1)!.t_last, T0 + 240_000);
    const s = tc.stats(1)!;
    assert.deepEqual([s.packets, s.bytes, s.delayed, s.delay_ns], [3, 4500, 2, 360_000]);
  });

  it('rounds the delay up, so a class never exceeds its rate', () => {
    classWithMark(1, config({ rate_bps: 3_000_000_000 })); // 100 B = 800 bits → 266.67 ns
    send(T0, { mark: 1, wireLen: 100 });
    assert.equal(send(T0, { mark: 1, wireLen: 100 }).tstamp, T0 + 267);
    assert.equal(delayNs(100, 3_000_000_000), 267);
  });

  it('an idle class earns at most burst of credit', () => {
    classWithMark(1, config({ rate_bps: 8_000_000, burst_ns: 3_000_000 })); // 1000 B = 1 ms
    send(T0, { mark: 1, wireLen: 1000 });
    // Idle for a second: the schedule restarts at now - 3 ms, so 3 ms of packets leave at once,
    // besides the one any class may send now; the next waits its turn.
    const later = T0 + 1_000_000_000;
    const departures = [0, 1, 2, 3, 4].map(() => send(later, { mark: 1, wireLen: 1000 }).tstamp);
    assert.deepEqual(departures, [later - 3_000_000, later - 2_000_000, later - 1_000_000, later, later + 1_000_000]);
  });

  it('drops a packet beyond the horizon and does not advance t_last', () => {
    classWithMark(1, config({ rate_bps: 8_000_000, horizon_ns: 2_500_000 })); // 1 ms per 1000 B
    assert.deepEqual([0, 1, 2].map(() => send(T0, { mark: 1, wireLen: 1000 }).tstamp), [T0, T0 + 1_000_000, T0 + 2_000_000]);
    const before = tc.state(1)!.t_last;
    assert.equal(send(T0, { mark: 1, wireLen: 1000 }).verdict, TC_ACT_SHOT); // would leave at +3 ms
    assert.equal(tc.state(1)!.t_last, before);
    assert.equal(tc.stats(1)!.horizon_drops, 1);
    assert.equal(tc.stats(1)!.packets, 3);
  });

  it('a rate change keeps the schedule', () => {
    classWithMark(1, config({ rate_bps: 8_000_000 }));
    send(T0, { mark: 1, wireLen: 1000 });
    send(T0, { mark: 1, wireLen: 1000 });
    const tLast = tc.state(1)!.t_last;
    tc.set(1, config({ rate_bps: 16_000_000 })); // what the agent does on a rate change
    assert.equal(tc.state(1)!.t_last, tLast);
    assert.equal(send(T0, { mark: 1, wireLen: 1000 }).tstamp, tLast + 500_000);
  });

  it('a socket\'s own later timestamp (TCP EDT) sets its departure, never the class\'s schedule', () => {
    classWithMark(1, config({ rate_bps: 8_000_000 })); // 1 ms per 1000 B
    const own = T0 + 50_000_000;
    assert.equal(send(T0, { mark: 1, wireLen: 1000, tstamp: own }).tstamp, own);
    assert.equal(tc.state(1)!.t_last, T0, 'the schedule holds pacer\'s slot, not the socket\'s time');
    // Another flow of the class is paced from the class's own schedule, not behind the socket.
    assert.equal(send(T0, { mark: 1, wireLen: 1000 }).tstamp, T0 + 1_000_000);
    // An earlier timestamp does not pull the departure forward.
    assert.equal(send(T0, { mark: 1, wireLen: 1000, tstamp: T0 }).tstamp, T0 + 2_000_000);
    const s = tc.stats(1)!;
    // Held: the self-paced packet 0 (its own time), the next 1 ms, the last 2 ms after its own T0.
    assert.deepEqual([s.packets, s.delayed, s.delay_ns], [3, 2, 3_000_000]);
  });

  it('pacer\'s delay is measured from max(now, the packet\'s own timestamp): counters, histogram and the ECN threshold', () => {
    classWithMark(1, config({ rate_bps: 8_000_000, ecn_ns: 1_500_000 })); // 1 ms per 1000 B
    for (let i = 0; i < 3; i++) send(T0, { mark: 1, wireLen: 1000 }); // the next slot is T0 + 3 ms
    // Its own time is T0 + 1.8 ms; pacer holds it 1.2 ms more (under the 1.5 ms threshold), not 3 ms.
    const r = send(T0, { mark: 1, wireLen: 1000, tstamp: T0 + 1_800_000, tos: 2 });
    assert.equal(r.tstamp, T0 + 3_000_000);
    assert.equal(ecnOf(r.data), 2, 'not CE: pacer held it 1.2 ms');
    // Later than the class's slot: not held by pacer at all.
    const late = send(T0, { mark: 1, wireLen: 1000, tstamp: T0 + 9_000_000, tos: 2 });
    assert.equal(late.tstamp, T0 + 9_000_000);
    const s = tc.stats(1)!;
    assert.deepEqual([s.packets, s.delayed, s.delay_ns, s.ce_marks], [5, 3, 1_000_000 + 2_000_000 + 1_200_000, 0]);
    const expected = new Array<number>(HIST_BUCKETS).fill(0);
    for (const d of [0, 1_000_000, 2_000_000, 1_200_000, 0]) expected[bucketOf(d)]!++;
    assert.deepEqual(tc.delays(1), expected);
  });

  it('a child departs at the later of its own and its parent\'s schedule, and both advance', () => {
    tc.set(10, config({ rate_bps: 8_000_000 })); // parent: 1 ms per 1000 B
    classWithMark(11, config({ rate_bps: 4_000_000, parent_id: 10 })); // children: 2 ms
    classWithMark(12, config({ rate_bps: 4_000_000, parent_id: 10 }));
    assert.equal(send(T0, { mark: 11, wireLen: 1000 }).tstamp, T0);
    assert.equal(tc.state(10)!.t_last, T0, 'the parent advanced too');
    // Class 12's own schedule allows now, but the parent's next slot is +1 ms.
    assert.equal(send(T0, { mark: 12, wireLen: 1000 }).tstamp, T0 + 1_000_000);
    assert.equal(tc.state(12)!.t_last, T0);
    assert.equal(tc.state(10)!.t_last, T0 + 1_000_000);
    // Class 11 is now limited by its own rate (+2 ms), class 12 by the parent (+3 ms).
    assert.equal(send(T0, { mark: 11, wireLen: 1000 }).tstamp, T0 + 2_000_000);
    assert.equal(send(T0, { mark: 12, wireLen: 1000 }).tstamp, T0 + 3_000_000);
  });

  it('a child held back by its own rate does not hold its sibling back: the parent advances by its own rate only', () => {
    tc.set(20, config({ rate_bps: 12_000_000 })); // parent: 666,667 ns per 1000 B
    classWithMark(21, config({ rate_bps: 8_000_000, parent_id: 20 })); // web: 1 ms
    classWithMark(22, config({ rate_bps: 4_000_000, parent_id: 20 })); // batch: 2 ms
    // A burst of 5 from web leaves at web's rate …
    const web = [0, 1, 2, 3, 4].map(() => send(T0, { mark: 21, wireLen: 1000 }).tstamp);
    assert.deepEqual(web, [T0, T0 + 1_000_000, T0 + 2_000_000, T0 + 3_000_000, T0 + 4_000_000]);
    // … but uses the parent only for 5 of the parent's own slots, not until web's last departure.
    assert.equal(tc.state(20)!.t_last, T0 + 4 * 666_667);
    // So batch gets the parent's next slot, long before web's queue drains.
    assert.equal(send(T0, { mark: 22, wireLen: 1000 }).tstamp, T0 + 5 * 666_667);
  });

  it('departures, schedules and counters equal edt.ts to the nanosecond on random trees, sequences, rates, bursts, horizons and timestamps', () => {
    const classArb = fc.record({
      rate_bps: fc.oneof(fc.integer({ min: 1_000, max: 10_000_000 }), fc.integer({ min: 1_000, max: 400_000_000_000 })),
      burst_ns: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50_000_000 })),
      horizon_ns: fc.integer({ min: 1_000_000, max: 10_000_000_000 }),
      // Where the class hangs: a root, or under an earlier class (so trees with siblings, up to 4 deep).
      parentPick: fc.nat(),
    });
    const packetArb = fc.record({
      gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: 0, max: 2_000_000_000 })),
      wireLen: fc.integer({ min: 60, max: 65_536 }),
      leaf: fc.nat(),
      tstampOffset: fc.option(fc.integer({ min: -5_000_000, max: 20_000_000 }), { freq: 4 }),
    });
    fc.assert(
      fc.property(fc.array(classArb, { minLength: 1, maxLength: 6 }), fc.array(packetArb, { minLength: 1, maxLength: 30 }), (classes, packets) => {
        clearAll();
        const depth = new Map<number, number>([[0, 0]]);
        const configs = new Map<number, ClassConfig>();
        classes.forEach(({ parentPick, ...c }, i) => {
          const candidates = [0, ...[...configs.keys()].filter((id) => depth.get(id)! < 4)];
          const parent = candidates[parentPick % candidates.length]!;
          depth.set(i + 1, depth.get(parent)! + 1);
          configs.set(i + 1, config({ ...c, parent_id: parent }));
        });
        for (const [id, c] of configs) classWithMark(id, c);
        const model = new EdtShaper(new Map([...configs].map(([id, c]) => [id, toModel(c)])));
        const counted = new Map<number, { packets: number; delayed: number; delay_ns: number; horizon_drops: number }>();
        let now = T0;
        for (const p of packets) {
          now += p.gap;
          const leaf = (p.leaf % classes.length) + 1;
          const tstamp = p.tstampOffset === null ? 0 : now + p.tstampOffset;
          const want = model.send(leaf, p.wireLen, now, tstamp)!;
          const got = send(now, { mark: leaf, wireLen: p.wireLen, tstamp });
          const c = counted.get(leaf) ?? { packets: 0, delayed: 0, delay_ns: 0, horizon_drops: 0 };
          counted.set(leaf, c);
          if (want.action === 'drop') {
            assert.equal(got.verdict, TC_ACT_SHOT);
            c.horizon_drops++;
          } else {
            assert.equal(got.verdict, TC_ACT_OK);
            assert.equal(got.tstamp, want.depart);
            c.packets++;
            if (want.delayNs > 0) (c.delayed++, (c.delay_ns += want.delayNs));
          }
        }
        for (const id of configs.keys()) {
          assert.equal(tc.state(id)?.t_last ?? 0, model.schedule(id), `t_last of class ${id}`);
          const s = tc.stats(id)!;
          assert.deepEqual({ packets: s.packets, delayed: s.delayed, delay_ns: s.delay_ns, horizon_drops: s.horizon_drops }, counted.get(id) ?? { packets: 0, delayed: 0, delay_ns: 0, horizon_drops: 0 }, `counters of class ${id}`);
          assert.equal(s.contended, 0, 'one CPU: no race');
        }
      }),
      { numRuns: 150 },
    );
  });

  describe('classification', () => {
    it('mark first, then destination prefix (longest wins, IPv4 and IPv6, through VLAN tags), then the default', () => {
      for (const id of [1, 2, 3, 4, 5, 6]) tc.set(id, config({ rate_bps: 8_000_000 * id }));
      tc.mark(77, 1);
      tc.dst4([
        ['10.0.0.0/8', 2],
        ['10.1.0.0/16', 3],
      ]);
      tc.dst6([['2001:db8::/32', 4]]);
      tc.dst6([['2001:db8:1::/48', 5]]);
      const classOf = (opts: Parameters<typeof send>[1]) => {
        const before = tc.packets();
        send(T0, { wireLen: 1000, ...opts });
        const grew = [...tc.packets()].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k]) => k);
        return grew[0] ?? 0;
      };
      assert.equal(classOf({ mark: 77, dst: '10.1.2.3' }), 1, 'the mark wins over the prefix');
      assert.equal(classOf({ dst: '10.9.9.9' }), 2);
      assert.equal(classOf({ dst: '10.1.9.9' }), 3, 'longest prefix');
      assert.equal(classOf({ dst: '2001:db8:2::1' }), 4);
      assert.equal(classOf({ dst: '2001:db8:1::1' }), 5);
      assert.equal(classOf({ data: frame('10.1.2.3', { vlans: [{ tpid: 0x8100, id: 5 }] }) }), 3, '802.1Q');
      assert.equal(classOf({ data: frame('2001:db8:1::9', { vlans: [{ tpid: 0x88a8, id: 5 }, { tpid: 0x8100, id: 7 }] }) }), 5, 'QinQ');
      assert.equal(classOf({ mark: 78, dst: '192.0.2.1' }), 0, 'unclassified');
      assert.equal(eg.ifaceStats.get(0)!.unclassified_packets, 1);
      tc.settings({ default_class: 6, flags: 0 });
      assert.equal(classOf({ dst: '192.0.2.1' }), 6, 'interface default');
    });

    it('answers a destination from its cache until the generation moves on, then asks the trie again', () => {
      for (const id of [1, 2]) tc.set(id, config({ rate_bps: 8_000_000 }));
      tc.dst4([['10.0.0.0/8', 1]]);
      tc.dst6([['2001:db8::/32', 1]]);
      const classOf = (dst: string) => {
        const before = tc.packets();
        send(T0, { wireLen: 1000, dst });
        return [...tc.packets()].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k]) => k)[0] ?? 0;
      };
      assert.equal(classOf('10.1.2.3'), 1);
      assert.equal(classOf('2001:db8:1::1'), 1);
      const gen = eg.settings.get(0)!.generation;
      assert.deepEqual(eg.dst4Cache.get('10.1.2.3'), { slot: tc.slot(1), generation: gen }, 'the trie\'s answer is cached with the generation');
      assert.deepEqual(eg.dst6Cache.get('2001:db8:1::1'), { slot: tc.slot(1), generation: gen });
      // A more specific prefix, written without a bump (what the Datapath never does): the cache still answers.
      eg.dst4.set('10.1.0.0/16', tc.slot(2));
      eg.dst6.set('2001:db8:1::/48', tc.slot(2));
      assert.equal(classOf('10.1.2.3'), 1, 'cached');
      assert.equal(classOf('2001:db8:1::1'), 1, 'cached');
      tc.bump();
      assert.equal(classOf('10.1.2.3'), 2, 'after the bump: the trie again');
      assert.equal(classOf('2001:db8:1::1'), 2, 'after the bump: the trie again');
      assert.deepEqual(eg.dst4Cache.get('10.1.2.3'), { slot: tc.slot(2), generation: gen + 1 }, 'the stale entry was overwritten');
      // "No prefix" is cached too (slot 0), and forgotten the same way.
      assert.equal(classOf('192.0.2.7'), 0);
      assert.deepEqual(eg.dst4Cache.get('192.0.2.7'), { slot: 0, generation: gen + 1 });
    });

    it('uses cgroup selectors only while settings counts some', () => {
      tc.set(1, config({ rate_bps: 8_000_000 }));
      // BPF_PROG_TEST_RUN has no socket, so no cgroup id: what can be seen is that the packet still
      // falls through to the prefix and default either way, with the count set or not.
      tc.dst4([['10.0.0.0/8', 1]]);
      eg.cgroups.set(4242n, tc.slot(1));
      eg.settings.set(0, { ...eg.settings.get(0)!, cgroup_selectors: 1 });
      assert.equal(send(T0, { wireLen: 1000, dst: '10.0.0.1' }).verdict, TC_ACT_OK);
      eg.settings.set(0, { ...eg.settings.get(0)!, cgroup_selectors: 0 });
      assert.equal(send(T0, { wireLen: 1000, dst: '10.0.0.1' }).verdict, TC_ACT_OK);
      assert.equal(tc.stats(1)!.packets, 2);
    });

    it('a selector pointing at a class without config leaves the packet unshaped', () => {
      eg.marks.set(5, tc.slot(99)); // a slot allocated for class 99, never configured: rate 0
      const r = send(T0, { mark: 5, wireLen: 1000 });
      assert.equal(r.verdict, TC_ACT_OK);
      assert.equal(r.tstamp, 0);
      assert.equal(eg.ifaceStats.get(0)!.unclassified_packets, 1);
    });
  });

  it('marks CE on ECT packets that wait longer than the ECN threshold, and never on non-ECT ones', () => {
    classWithMark(1, config({ rate_bps: 8_000_000, ecn_ns: 1_500_000 })); // 1 ms per 1000 B
    assert.equal(ecnOf(send(T0, { mark: 1, wireLen: 1000, tos: 2 }).data), 2, 'no wait');
    assert.equal(ecnOf(send(T0, { mark: 1, wireLen: 1000, tos: 2 }).data), 2, 'waits 1 ms: under the threshold');
    assert.equal(ecnOf(send(T0, { mark: 1, wireLen: 1000, tos: 2 }).data), 3, 'waits 2 ms: CE');
    assert.equal(ecnOf(send(T0, { mark: 1, wireLen: 1000, tos: 0 }).data), 0, 'not ECT: left alone');
    assert.equal(tc.stats(1)!.ce_marks, 1);
    const v6 = frame('2001:db8::1', { tos: 1 });
    assert.equal(ecnOf(send(T0, { mark: 1, wireLen: 1000, data: v6 }).data), 3, 'IPv6 ECT(1)');
    assert.equal(tc.stats(1)!.ce_marks, 2);
  });
});
