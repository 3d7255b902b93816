/** The layouts' in-place encoder (what TypedMap.setMany uses): the bytes of a BigInt reference, and the same refusals. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { classConfig, classStats, tcpStats, type SlotConfig } from '../../shaper-bpf/src/layout.js';
import { prefix, struct, u32 } from '../../shaper-bpf/src/typed-map.js';

/** Field by field with BigInt writes: what encode() did before encodeInto existed. */
function reference(layout: typeof classConfig | typeof classStats | typeof tcpStats, value: Record<string, number>): Buffer {
  const buf = Buffer.alloc(layout.size);
  for (const f of layout.fields) {
    const v = value[f.name]!;
    if (f.type === 'u64') buf.writeBigUInt64LE(BigInt(v), f.offset);
    else if (f.type === 'u32') buf.writeUInt32LE(v, f.offset);
    else buf.writeInt32LE(v, f.offset);
  }
  return buf;
}

const u64 = fc.oneof(fc.constant(0), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: 2 ** 32 + 5 }), fc.maxSafeNat());
const u32v = fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.nat({ max: 0xffffffff }));
const slotConfig = fc.record({ rate_bps: u64, burst_ns: u64, horizon_ns: u64, ecn_ns: u64, parent_slot: u32v, class_id: u32v, flags: u32v, reserved: u32v });

describe('layout encodeInto', () => {
  it('writes the same bytes as a BigInt encoder, at any offset of a shared buffer', () => {
    fc.assert(
      fc.property(fc.array(slotConfig, { minLength: 1, maxLength: 20 }), (configs) => {
        const size = classConfig.size;
        const buf = Buffer.alloc(configs.length * size + 3);
        configs.forEach((c, i) => classConfig.encodeInto(c, buf, 3 + i * size));
        configs.forEach((c, i) => {
          assert.deepEqual(buf.subarray(3 + i * size, 3 + (i + 1) * size), reference(classConfig, c));
          assert.deepEqual(classConfig.decode(buf, 3 + i * size), { ...c });
          assert.deepEqual(classConfig.encode(c), reference(classConfig, c));
        });
      }),
    );
    const t = { applied: 5, failed: 2 ** 40, last_error: -22, last_option: 1004 };
    assert.deepEqual(tcpStats.encode(t), reference(tcpStats, t));
  });

  it('refuses what does not fit, as before: non-integers, negatives, u64 above 2^53, u32 above 2^32 - 1', () => {
    const ok: SlotConfig = { rate_bps: 1, burst_ns: 0, horizon_ns: 0, ecn_ns: 0, parent_slot: 0, class_id: 0, flags: 0, reserved: 0 };
    const buf = Buffer.alloc(classConfig.size);
    assert.throws(() => classConfig.encodeInto({ ...ok, rate_bps: 1.5 }, buf, 0), TypeError);
    assert.throws(() => classConfig.encodeInto({ ...ok, rate_bps: -1 }, buf, 0), RangeError);
    assert.throws(() => classConfig.encodeInto({ ...ok, rate_bps: 2 ** 53 }, buf, 0), /safe integer/);
    assert.throws(() => classConfig.encodeInto({ ...ok, parent_slot: 2 ** 32 }, buf, 0), RangeError);
    assert.throws(() => classConfig.encodeInto({ ...ok, class_id: -1 }, buf, 0), RangeError);
    assert.throws(() => classConfig.encodeInto({ ...ok, flags: 0.5 }, buf, 0), TypeError);
    assert.throws(() => classConfig.encodeInto({ ...ok, rate_bps: undefined as unknown as number }, buf, 0));
  });

  it('the codecs encode in place what encode() returns', () => {
    const p = prefix('ipv6');
    const buf = Buffer.alloc(p.size + u32.size + classConfig.size);
    p.encodeInto('2001:db8:1::/48', buf, 0);
    u32.encodeInto(0xdeadbeef, buf, p.size);
    const c = { rate_bps: 4e11, burst_ns: 1, horizon_ns: 2, ecn_ns: 3, parent_slot: 4, class_id: 5, flags: 0, reserved: 0 };
    struct(classConfig).encodeInto(c, buf, p.size + u32.size);
    assert.deepEqual(buf, Buffer.concat([p.encode('2001:db8:1::/48'), u32.encode(0xdeadbeef), classConfig.encode(c)]));
  });
});
