/**
 * shaper-bpf/src/layout.ts against the C structs of pacer.h, through BTF: the committed objects
 * (what the kernel runs) and pacer.h compiled now (so an edit of the header fails here even
 * before the objects are rebuilt). Then every map of both objects, loaded for real, against the
 * key and value types BTF declares for it and the TS sizes the agent encodes with.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EgressObject, objectPath } from '../../shaper-bpf/src/egress.js';
import { BpfObject } from '../../shaper-bpf/src/libbpf/index.js';
import { addr6KeySize, LAYOUTS, lpm4KeySize, lpm6KeySize, lpmKey } from '../../shaper-bpf/src/layout.js';
import { SummedPerCpuMap, TypedMap, u32, u64 } from '../../shaper-bpf/src/typed-map.js';
import { DelayHistMap, HIST_GROUP, INNER_MAP } from '../../shaper-bpf/src/delay-hist-map.js';
import { BpfMap } from '../../shaper-bpf/src/libbpf/index.js';
import { compareLayout, readBtf, type Btf } from '../support/btf.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';

const HEADER = join(process.cwd(), 'shaper-bpf/bpf/pacer.h');

/** Compiles a translation unit that defines one variable of every struct in `header`, and reads its BTF. */
function headerBtf(header: string, dir: string): Btf {
  const names = [...readFileSync(header, 'utf8').matchAll(/^struct (pacer_\w+)\s*\{/gm)].map((m) => m[1]);
  const src = join(dir, 'probe.c');
  // Unused types are not emitted: a global of each makes clang put it in the BTF.
  writeFileSync(src, `#include "${header}"\n${names.map((n) => `struct ${n} probe_${n};`).join('\n')}\n`);
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-c', src, '-o', join(dir, 'probe.o')]);
  return readBtf(join(dir, 'probe.o'));
}

/** The size the agent's codec has for a BTF key/value type: a mirrored struct, an LPM key, or a scalar. */
function tsSize(type: string): number | undefined {
  const sizes: Record<string, number> = { __u32: u32.size, __u64: u64.size, pacer_lpm4_key: lpm4KeySize, pacer_lpm6_key: lpm6KeySize, pacer_addr6: addr6KeySize, 'inner map': 4 };
  return sizes[type] ?? LAYOUTS.find((l) => l.name === type)?.size;
}

describe('layout.ts mirrors pacer.h (BTF)', function () {
  this.timeout(60_000);
  let objects: Record<'pacer_tc' | 'pacer_sockops', Btf>;
  let tmp: string;
  let fresh: Btf;

  before(() => {
    objects = { pacer_tc: readBtf(objectPath('pacer_tc')), pacer_sockops: readBtf(objectPath('pacer_sockops')) };
    tmp = mkdtempSync(join(tmpdir(), 'pacer-layout-'));
    fresh = headerBtf(HEADER, tmp);
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  for (const layout of LAYOUTS) {
    it(`${layout.name}: size, and every field's name, offset, width and type`, () => {
      assert.deepEqual(compareLayout(layout, fresh.structs.get(layout.name)), [], 'pacer.h as it is now');
      const inObjects = Object.entries(objects).filter(([, btf]) => btf.structs.has(layout.name));
      assert.ok(inObjects.length > 0, `no committed object uses ${layout.name}`);
      for (const [obj, btf] of inObjects) assert.deepEqual(compareLayout(layout, btf.structs.get(layout.name)), [], obj);
    });
  }

  it('every struct of pacer.h is mirrored, and the LPM keys are prefixlen (u32) then the address bytes', () => {
    const mirrored = new Set<string>([...LAYOUTS.map((l) => l.name), 'pacer_lpm4_key', 'pacer_lpm6_key', 'pacer_addr6']);
    assert.deepEqual([...fresh.structs.keys()].filter((n) => !mirrored.has(n)), [], 'structs in pacer.h without a TS mirror');
    for (const [name, bytes, size] of [['pacer_lpm4_key', 4, lpm4KeySize], ['pacer_lpm6_key', 16, lpm6KeySize]] as const) {
      for (const btf of [fresh, objects.pacer_tc, objects.pacer_sockops]) {
        assert.deepEqual(btf.structs.get(name), {
          name,
          size,
          fields: [
            { name: 'prefixlen', offset: 0, size: 4, type: 'u32', bitfield: false },
            { name: 'addr', offset: 4, size: bytes, type: `u8[${bytes}]`, bitfield: false },
          ],
        });
      }
      assert.equal(lpmKey(new Uint8Array(bytes), 0).length, size);
    }
    for (const btf of [fresh, objects.pacer_tc]) {
      assert.deepEqual(btf.structs.get('pacer_addr6'), { name: 'pacer_addr6', size: addr6KeySize, fields: [{ name: 'addr', offset: 0, size: 16, type: 'u8[16]', bitfield: false }] });
    }
  });

  it('a renamed, moved or retyped field in pacer.h fails the comparison', () => {
    const original = readFileSync(HEADER, 'utf8');
    const mutate = (label: string, from: RegExp, to: string): Btf => {
      const dir = mkdtempSync(join(tmp, `${label}-`));
      const mutated = original.replace(from, to);
      assert.notEqual(mutated, original, `the ${label} mutation must apply to pacer.h`);
      writeFileSync(join(dir, 'pacer.h'), mutated);
      return headerBtf(join(dir, 'pacer.h'), dir);
    };
    const config = LAYOUTS.find((l) => l.name === 'pacer_class_config')!;
    const stats = LAYOUTS.find((l) => l.name === 'pacer_class_stats')!;
    const tcp = LAYOUTS.find((l) => l.name === 'pacer_tcp_stats')!;
    const renamed = mutate('renamed', /__u32 parent_slot;/, '__u32 parent;');
    assert.match(compareLayout(config, renamed.structs.get(config.name)).join('\n'), /fields TS \[.*parent_slot.*\] ≠ C \[.*parent,/);
    const moved = mutate('moved', /(\t__u64 packets;[^\n]*\n)(\t__u64 bytes;[^\n]*\n)/, '$2$1');
    assert.match(compareLayout(stats, moved.structs.get(stats.name)).join('\n'), /packets: offset TS 0 ≠ C 8/);
    const retyped = mutate('retyped', /__s32 last_error;/, '__u32 last_error;');
    assert.deepEqual(compareLayout(tcp, retyped.structs.get(tcp.name)), ['pacer_tcp_stats.last_error: type TS s32 ≠ C u32']);
  });

  describe('maps, loaded', () => {
    let pinRoot: string;
    before(() => (pinRoot = makePinDir()));
    after(() => removePinDir(pinRoot));

    /** Each map's key and value: the loaded sizes equal BTF's, and the agent's codec sizes. */
    function checkMaps(obj: 'pacer_tc' | 'pacer_sockops', open: (name: string) => { keySize: number; valueSize: number }): void {
      const defs = [...objects[obj].maps.values()];
      assert.ok(defs.length > 0, `${obj} declares maps`);
      for (const def of defs) {
        const map = open(def.name);
        assert.deepEqual(
          { key: map.keySize, value: map.valueSize },
          { key: def.key.size, value: def.value.size },
          `${obj} map ${def.name}: loaded sizes vs BTF (${def.key.type} → ${def.value.type})`,
        );
        assert.deepEqual({ key: tsSize(def.key.type), value: tsSize(def.value.type) }, { key: def.key.size, value: def.value.size }, `${obj} map ${def.name}: TS codec sizes`);
        if (def.inner) {
          assert.deepEqual({ key: tsSize(def.inner.key.type), value: tsSize(def.inner.value.type) }, { key: def.inner.key.size, value: def.inner.value.size }, `${obj} map ${def.name}: inner map, TS sizes`);
        }
      }
    }

    it('pacer_tc.o: EgressObject opens a typed view of every map (its constructor checks the sizes)', () => {
      const eg = EgressObject.load({ pinRoot });
      try {
        const views = Object.values(eg).filter(
          (v): v is TypedMap<unknown, unknown> | SummedPerCpuMap<unknown, Record<string, number>> | DelayHistMap => v instanceof TypedMap || v instanceof SummedPerCpuMap || v instanceof DelayHistMap,
        );
        const viewed = new Map(views.map((v) => [v.map.name, v.map]));
        assert.deepEqual([...viewed.keys()].sort(), [...objects.pacer_tc.maps.keys()].sort(), 'maps in the object vs typed views in EgressObject');
        checkMaps('pacer_tc', (name) => viewed.get(name)!);
      } finally {
        eg.close();
      }
    });

    it('delay_hist: the inner map the Datapath creates is the one BTF declares, and the kernel accepts it in the outer map', () => {
      const def = objects.pacer_tc.maps.get('delay_hist')!;
      assert.deepEqual(def.inner, { key: { type: '__u32', size: 4 }, value: { type: 'pacer_delay_hist', size: 784 } });
      assert.deepEqual({ keySize: INNER_MAP.keySize, valueSize: INNER_MAP.valueSize }, { keySize: def.inner!.key.size, valueSize: def.inner!.value.size });
      const eg = EgressObject.load({ pinRoot });
      try {
        eg.hists.reset([1]);
        assert.deepEqual(eg.hists.get(1), Array(98).fill(0));
        assert.equal(eg.hists.map.maxEntries, 65_536 / HIST_GROUP + 1, 'one entry per group of slots, and the retired map');
        const inner = BpfMap.openById(eg.hists.groupMapId(0)!);
        try {
          assert.deepEqual([inner.typeName, inner.keySize, inner.valueSize, inner.maxEntries], ['array', 4, 784, HIST_GROUP]);
        } finally {
          inner.close();
        }
        // An inner map of another value size is refused by the kernel (bpf_map_meta_equal): the program's inlined lookup relies on it.
        const wrong = BpfMap.create({ ...INNER_MAP, valueSize: 8 });
        try {
          assert.throws(() => eg.hists.map.update(Buffer.from([2, 0, 0, 0]), Buffer.from(Uint32Array.of(wrong.fd).buffer)), /EINVAL/);
        } finally {
          wrong.close();
        }
        eg.hists.remove([1], new Set());
      } finally {
        eg.close();
      }
    });

    it('pacer_sockops.o: every map opens with the sizes BTF and the TS layouts give', () => {
      const obj = BpfObject.open(objectPath('pacer_sockops'), { pinRoot });
      try {
        obj.load();
        checkMaps('pacer_sockops', (name) => obj.map(name));
      } finally {
        obj.close();
      }
    });
  });
});
