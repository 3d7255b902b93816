// Tests of the koffi binding to libbpf.so.1 (shaper-bpf/src/libbpf) against the REAL kernel:
// needs root, bpffs, clang (fixtures), iproute2 and bpftool. Everything the tests create —
// pins, network namespaces, cgroup mounts, links — is removed in after hooks.
// Traffic never leaves namespaces these tests create (and the test runs send none at all).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import koffi from 'koffi';
import {
  attachCgroup,
  BpfError,
  BpfMap,
  BpfObject,
  BpfProgram,
  detachPinnedCgroupLink,
  EXPECTED_SIZES,
  inNetns,
  interfaceIndex,
  numPossibleCpus,
  readSkbContext,
  skbContext,
  tcAttach,
  tcDetach,
  tcHookCreate,
  tcHookDestroy,
  tcQuery,
  UpdateFlags,
  type CgroupAttachment,
} from '../../shaper-bpf/src/libbpf/index.js';
import * as native from '../../shaper-bpf/src/libbpf/native.js';
import { ensureBpffs } from '../support/bpffs.js';

// ---- locations and helpers ------------------------------------------------------------------------

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test file');
    dir = up;
  }
  return dir;
}

const ROOT = repoRoot();
const FIXTURES = join(ROOT, 'test/fixtures/bpf');
const FIXTURE_O = join(FIXTURES, 'fixture.bpf.o');
const BROKEN_O = join(FIXTURES, 'broken.bpf.o');
const SOCKOPS_O = join(FIXTURES, 'sockops.bpf.o');
const PINNED_O = join(FIXTURES, 'pinned.bpf.o');
// The compiled binding, for child processes (this file runs from dist/test/kernel/).
const BINDING_URL = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '../../shaper-bpf/src/libbpf/index.js')).href;

const suffix = randomBytes(4).toString('hex');

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs an ESM snippet in a fresh node process with `b` bound to the binding; returns stdout. */
function runChild(body: string): string {
  const script = `import * as b from ${JSON.stringify(BINDING_URL)};\n${body}`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15000 });
  if (res.status !== 0) throw new Error(`child failed (${res.status}): ${res.stderr}`);
  return res.stdout.trim();
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** Fixture struct class_cfg { __u64 rate_bps; __u32 burst; __u32 flags; } */
function classCfg(rate: bigint, burst: number, flags = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(rate, 0);
  b.writeUInt32LE(burst, 8);
  b.writeUInt32LE(flags, 12);
  return b;
}

/** Asserts fn throws a BpfError with `code` whose message matches every pattern; returns it. */
function throwsBpf(fn: () => unknown, code: string, ...patterns: RegExp[]): BpfError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BpfError, `expected a BpfError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

/** Count of possible CPUs from sysfs ("0-1", "0,2-3"), independent of libbpf. */
function sysfsPossibleCpus(): number {
  return readFileSync('/sys/devices/system/cpu/possible', 'utf8')
    .trim()
    .split(',')
    .reduce((n, part) => {
      const [a, b] = part.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a! + 1);
    }, 0);
}

function netnsInode(): number {
  return statSync('/proc/thread-self/ns/net').ino;
}

// ---- suite ------------------------------------------------------------------------------------------

describe('libbpf binding (real kernel)', function () {
  this.timeout(60000);
  let pinDir: string;

  before(function () {
    // Build the fixture objects once if any is missing or older than its source.
    const stale = ['fixture', 'broken', 'sockops', 'pinned'].some((n) => {
      const o = join(FIXTURES, `${n}.bpf.o`);
      return !existsSync(o) || statSync(o).mtimeMs < statSync(join(FIXTURES, `${n}.bpf.c`)).mtimeMs;
    });
    if (stale) {
      const res = spawnSync('sh', [join(FIXTURES, 'build.sh')], { encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`fixture build failed: ${res.stderr}`);
    }
    ensureBpffs();
    pinDir = `/sys/fs/bpf/pacer-test-${suffix}`;
    mkdirSync(pinDir);
  });

  after(function () {
    // Removing the directory unpins everything left in it.
    if (pinDir) rmSync(pinDir, { recursive: true, force: true });
  });

  describe('native layer', function () {
    it('declares structs with the sizes and offsets the C headers on this machine have', function () {
      const exe = join(mkdtempSync(join(tmpdir(), 'pacer-layout-')), 'probe');
      try {
        run('clang', ['-I/usr/include/x86_64-linux-gnu', join(FIXTURES, 'layout-probe.c'), '-o', exe]);
        const c = JSON.parse(run(exe, [])) as Record<string, number>;
        assert.deepEqual(
          {
            bpf_tc_hook: koffi.sizeof(native.TcHook),
            bpf_tc_opts: koffi.sizeof(native.TcOpts),
            bpf_test_run_opts: koffi.sizeof(native.TestRunOpts),
            bpf_map_batch_opts: koffi.sizeof(native.MapBatchOpts),
            bpf_map_create_opts: koffi.sizeof(native.MapCreateOpts),
            bpf_object_open_opts: koffi.sizeof(native.ObjectOpenOpts),
            bpf_map_info: koffi.sizeof(native.MapInfo),
            bpf_prog_info_head: koffi.sizeof(native.ProgInfoHead),
          },
          Object.fromEntries(Object.keys(EXPECTED_SIZES).map((k) => [k, c[k]])),
        );
        // The same numbers machine.md records, which the binding asserts at load.
        assert.deepEqual(
          [EXPECTED_SIZES.bpf_tc_hook, EXPECTED_SIZES.bpf_tc_opts, EXPECTED_SIZES.bpf_test_run_opts, EXPECTED_SIZES.bpf_map_batch_opts],
          [24, 32, 80, 24],
        );
        assert.deepEqual([c.__sk_buff, c.skb_mark, c.skb_priority, c.skb_tstamp, c.skb_ifindex], [192, 8, 32, 152, 40]);
      } finally {
        rmSync(dirname(exe), { recursive: true, force: true });
      }
      assert.doesNotThrow(() => native.assertStructLayouts());
    });

    it('counts possible CPUs like sysfs does', function () {
      assert.equal(numPossibleCpus(), sysfsPossibleCpus());
    });
  });

  describe('objects and the verifier', function () {
    let obj: BpfObject;
    before(() => {
      obj = BpfObject.open(FIXTURE_O);
      obj.load();
    });
    after(() => obj?.close());

    it('loads a tc program the kernel knows by name and id', function () {
      assert.equal(obj.name, 'fixture');
      const prog = obj.program('pacer_egress');
      assert.ok(prog.fd > 0);
      assert.equal(prog.type, 3); // BPF_PROG_TYPE_SCHED_CLS
      const shown = JSON.parse(run('bpftool', ['prog', 'show', 'id', String(prog.id), '--json'])) as { name: string; type: string };
      assert.equal(shown.name, 'pacer_egress');
      assert.equal(shown.type, 'sched_cls');
    });

    it('reaches global-variable maps by section suffix', function () {
      const bss = obj.map('.bss');
      const data = obj.map('.data');
      assert.equal(bss.name, 'fixture.bss');
      assert.equal(bss.valueSize, 12); // __u64 stamp_ns + __u32 stamp_mark
      assert.deepEqual(data.lookup(u32(0)), u32(7)); // __u32 version = 7
    });

    it('names the maps it has when asked for one it does not', function () {
      throwsBpf(() => obj.map('nope'), 'ENOENT', /find map "nope"/, /classes/, /fixture\.bss/);
      throwsBpf(() => obj.program('nope'), 'ENOENT', /find program "nope"/);
    });

    it('refuses map() before load()', function () {
      const fresh = BpfObject.open(FIXTURE_O, { name: 'unloaded' });
      try {
        assert.throws(() => fresh.map('classes'), /load\(\) it before/);
      } finally {
        fresh.close();
      }
    });

    it('makes its maps and programs unusable once closed', function () {
      const other = BpfObject.open(FIXTURE_O);
      other.load();
      const m = other.map('classes');
      const p = other.program('pacer_egress');
      other.close();
      assert.throws(() => m.lookup(u32(1)), /map "classes" is closed/);
      assert.throws(() => p.testRun({ data: Buffer.alloc(64) }), /program "pacer_egress" is closed/);
      assert.throws(() => other.map('classes'), /is closed/);
    });

    it('uses the name option as the object name', function () {
      const named = BpfObject.open(FIXTURE_O, { name: 'pacer' });
      try {
        named.load();
        assert.equal(named.name, 'pacer');
        assert.equal(named.map('.bss').name, 'pacer.bss');
      } finally {
        named.close();
      }
    });

    it('puts the verifier log in the error when the kernel rejects a program', function () {
      const broken = BpfObject.open(BROKEN_O);
      try {
        const err = throwsBpf(() => broken.load(), 'EACCES', /load program "pacer_broken"/, /broken\.bpf\.o/, /invalid access to packet/);
        assert.equal(err.errno, 13);
        // The fixture's log is far longer than 64 KiB: all of it is in .detail, its end in the message.
        assert.ok((err.detail ?? '').length > 64 * 1024, `log is only ${err.detail?.length} characters`);
        assert.match(err.detail ?? '', /BEGIN PROG LOAD LOG[\s\S]*invalid access to packet[\s\S]*END PROG LOAD LOG/);
        assert.ok(err.message.length < 10 * 1024);
        assert.match(err.message, /earlier characters in \.detail/);
      } finally {
        broken.close();
      }
    });

    it('reports a missing object file with its path', function () {
      const path = `/nonexistent/${suffix}.o`;
      const err = throwsBpf(() => BpfObject.open(path), 'ENOENT', /No such file or directory/);
      assert.ok(err.message.includes(path));
    });
  });

  describe('maps', function () {
    let obj: BpfObject;
    beforeEach(() => {
      // A fresh object per test: maps start empty.
      obj = BpfObject.open(FIXTURE_O);
      obj.load();
    });
    afterEach(() => obj?.close());

    it('creates, reads, updates and deletes entries', function () {
      const m = obj.map('classes');
      assert.deepEqual([m.typeName, m.keySize, m.valueSize, m.maxEntries, m.isPerCpu], ['hash', 4, 16, 16384, false]);
      assert.equal(m.lookup(u32(1)), undefined);
      m.update(u32(1), classCfg(50_000_000n, 1500));
      assert.deepEqual(m.lookup(u32(1)), classCfg(50_000_000n, 1500));
      m.update(u32(1), classCfg(20_000_000n, 3000), UpdateFlags.EXIST);
      assert.deepEqual(m.lookup(u32(1)), classCfg(20_000_000n, 3000));
      throwsBpf(() => m.update(u32(1), classCfg(1n, 1), UpdateFlags.NOEXIST), 'EEXIST', /update key 01000000 on map "classes"/);
      throwsBpf(() => m.update(u32(2), classCfg(1n, 1), UpdateFlags.EXIST), 'ENOENT', /map "classes"/);
      assert.equal(m.delete(u32(1)), true);
      assert.equal(m.delete(u32(1)), false);
      assert.equal(m.lookup(u32(1)), undefined);
    });

    it('refuses keys and values of the wrong size before calling the kernel', function () {
      const m = obj.map('classes');
      assert.throws(() => m.lookup(Buffer.alloc(2)), RangeError);
      assert.throws(() => m.update(u32(1), Buffer.alloc(8)), /value must be 16 bytes/);
    });

    it('writes, reads back and deletes 10,000 entries in batches', function () {
      const m = obj.map('classes');
      const n = 10_000;
      const keys = Buffer.alloc(4 * n);
      const values = Buffer.alloc(16 * n);
      for (let i = 0; i < n; i++) {
        keys.writeUInt32LE(i * 7 + 3, 4 * i);
        classCfg(BigInt(i) * 1000n, i).copy(values, 16 * i);
      }
      m.updateBatch(keys, values, n);
      const seen = new Map<number, Buffer>();
      for (const [k, v] of m.entries()) seen.set(k.readUInt32LE(0), v);
      assert.equal(seen.size, n);
      for (let i = 0; i < n; i++) assert.deepEqual(seen.get(i * 7 + 3), classCfg(BigInt(i) * 1000n, i), `key ${i * 7 + 3}`);
      assert.equal(m.deleteBatch(keys, n), n);
      assert.equal([...m.keys()].length, 0);
    });

    it('deletes a batch around keys that are missing and counts only real deletions', function () {
      const m = obj.map('classes');
      const keys = Buffer.concat([10, 11, 12, 13, 14].map(u32));
      m.updateBatch(keys, Buffer.concat([0, 1, 2, 3, 4].map((i) => classCfg(BigInt(i), i))), 5);
      m.delete(u32(10));
      m.delete(u32(13));
      m.update(u32(99), classCfg(9n, 9));
      assert.equal(m.deleteBatch(keys, 5), 3);
      assert.deepEqual([...m.keys()].map((k) => k.readUInt32LE(0)), [99]);
    });

    it('falls back to per-entry writes for a map type without batch ops (devmap_hash)', function () {
      const m = obj.map('ports');
      assert.equal(m.typeName, 'devmap_hash');
      const keys = Buffer.concat([5, 6, 7].map(u32));
      const lo = interfaceIndex('lo');
      m.updateBatch(keys, Buffer.concat([lo, lo, lo].map(u32)), 3);
      assert.deepEqual(
        [...m.entries()].map(([k, v]) => [k.readUInt32LE(0), v.readUInt32LE(0)]).sort((a, b) => a[0]! - b[0]!),
        [[5, lo], [6, lo], [7, lo]],
      );
      assert.equal(m.deleteBatch(keys, 3), 3);
      assert.equal([...m.keys()].length, 0);
    });

    it('batch-writes an LPM trie and answers longest-prefix lookups', function () {
      const m = obj.map('prefixes');
      const key = (len: number, a: number, b: number, c: number, d: number): Buffer => {
        const k = Buffer.alloc(8);
        k.writeUInt32LE(len, 0);
        k.set([a, b, c, d], 4); // address in network byte order
        return k;
      };
      m.updateBatch(Buffer.concat([key(8, 10, 0, 0, 0), key(16, 10, 1, 0, 0)]), Buffer.concat([u32(8), u32(16)]), 2);
      assert.deepEqual(m.lookup(key(32, 10, 1, 2, 3)), u32(16));
      assert.deepEqual(m.lookup(key(32, 10, 2, 0, 1)), u32(8));
      assert.equal(m.lookup(key(32, 192, 168, 0, 1)), undefined);
    });

    it('iterates exactly the keys present', function () {
      const m = obj.map('classes');
      const want = [3, 1, 4, 159, 26, 5];
      for (const k of want) m.update(u32(k), classCfg(BigInt(k), k));
      const got = [...m.keys()].map((k) => k.readUInt32LE(0)).sort((a, b) => a - b);
      assert.deepEqual(got, [...want].sort((a, b) => a - b));
    });

    it('returns one 8-byte-aligned slot per possible CPU for per-CPU maps', function () {
      const m = obj.map('runs');
      const cpus = sysfsPossibleCpus();
      assert.equal(m.isPerCpu, true);
      assert.equal(m.valueSize, 4);
      assert.equal(m.lookup(u32(0))!.length, cpus * 8);
      const values = Array.from({ length: cpus }, (_, cpu) => u32(1000 + cpu));
      m.update(u32(1), m.joinPerCpu(values));
      const raw = m.lookup(u32(1))!;
      for (let cpu = 0; cpu < cpus; cpu++) assert.equal(raw.readUInt32LE(cpu * 8), 1000 + cpu);
      assert.deepEqual(m.lookupPerCpu(u32(1)), values);
      throwsBpf(() => m.delete(u32(1)), 'EINVAL', /delete key 01000000 on map "runs"/, /percpu_array maps cannot delete entries/);
    });

    it('reports a full map as a BpfError naming the map', function () {
      const m = obj.map('tiny');
      for (let i = 0; i < 4; i++) m.update(u32(i), u32(i));
      const err = throwsBpf(() => m.update(u32(4), u32(4)), 'E2BIG', /map "tiny"/, /full: max_entries is 4/);
      assert.equal(err.target, 'map "tiny"');
      // Replacing an existing key still works on a full hash map.
      m.update(u32(3), u32(33));
      assert.deepEqual(m.lookup(u32(3)), u32(33));
      throwsBpf(() => m.updateBatch(Buffer.concat([u32(5), u32(6)]), Buffer.concat([u32(5), u32(6)]), 2), 'E2BIG', /update batch of 2 entries \(0 written\) on map "tiny"/);
    });
  });

  describe('pinning', function () {
    let obj: BpfObject;
    before(() => {
      obj = BpfObject.open(FIXTURE_O);
      obj.load();
    });
    after(() => obj?.close());

    it('opens a pinned map in this process and learns its shape from the kernel', function () {
      const m = obj.map('classes');
      const path = join(pinDir, 'classes');
      m.pin(path);
      const pinned = BpfMap.openPinned(path);
      try {
        assert.deepEqual(
          [pinned.name, pinned.typeName, pinned.keySize, pinned.valueSize, pinned.maxEntries],
          ['classes', 'hash', 4, 16, 16384],
        );
        assert.notEqual(pinned.fd, m.fd);
        m.update(u32(42), classCfg(1_000_000n, 64));
        assert.deepEqual(pinned.lookup(u32(42)), classCfg(1_000_000n, 64));
        pinned.update(u32(43), classCfg(2n, 2));
        assert.deepEqual(m.lookup(u32(43)), classCfg(2n, 2));
      } finally {
        pinned.close();
        m.unpin();
      }
      assert.equal(existsSync(path), false);
      throwsBpf(() => BpfMap.openPinned(path), 'ENOENT', /open pinned map on/);
    });

    it('lets another process read a value through the pin', function () {
      const m = obj.map('classes');
      const path = join(pinDir, 'shared');
      m.update(u32(7), classCfg(123_456_789n, 77));
      m.pin(path);
      try {
        const out = runChild(`
          const m = b.BpfMap.openPinned(${JSON.stringify(path)});
          const key = Buffer.alloc(4); key.writeUInt32LE(7);
          console.log(JSON.stringify({ name: m.name, value: m.lookup(key).toString('hex') }));
          m.close();`);
        assert.deepEqual(JSON.parse(out), { name: 'classes', value: classCfg(123_456_789n, 77).toString('hex') });
      } finally {
        m.unpin(path);
      }
    });

    it('pins maps declared pin-by-name under pinRoot and reuses them on the next load', function () {
      const root = join(pinDir, 'root');
      mkdirSync(root);
      const first = BpfObject.open(PINNED_O, { pinRoot: root });
      try {
        first.load();
        assert.equal(existsSync(join(root, 'kept')), true);
        first.map('kept').update(u32(1), Buffer.from('0807060504030201', 'hex'));
      } finally {
        first.close();
      }
      const second = BpfObject.open(PINNED_O, { pinRoot: root });
      try {
        second.load();
        assert.deepEqual(second.map('kept').lookup(u32(1)), Buffer.from('0807060504030201', 'hex'));
      } finally {
        second.close();
        rmSync(root, { recursive: true });
      }
    });

    it('pins a program and opens it again by path', function () {
      const prog = obj.program('pacer_egress');
      const path = join(pinDir, 'prog');
      prog.pin(path);
      try {
        const again = BpfProgram.openPinned(path);
        try {
          assert.equal(again.id, prog.id);
          assert.equal(again.name, 'pacer_egress');
        } finally {
          again.close();
        }
        throwsBpf(() => BpfMap.openPinned(path), 'EINVAL', /pinned object is a BPF prog, not a map/);
        throwsBpf(() => prog.pin(path), 'EEXIST', /pin program "pacer_egress" on/);
      } finally {
        prog.unpin();
      }
    });
  });

  describe('test runs', function () {
    let obj: BpfObject;
    before(() => {
      obj = BpfObject.open(FIXTURE_O);
      obj.load();
    });
    after(() => obj?.close());

    it('builds and reads __sk_buff at the kernel offsets', function () {
      const ctx = skbContext({ mark: 0x11223344, priority: 5, tstamp: 0x0102030405060708n, ifindex: 9 });
      assert.equal(ctx.length, 192);
      assert.equal(ctx.readUInt32LE(8), 0x11223344);
      assert.equal(ctx.readUInt32LE(32), 5);
      assert.equal(ctx.readBigUInt64LE(152), 0x0102030405060708n);
      assert.equal(ctx.readUInt32LE(40), 9);
      assert.deepEqual(
        (({ mark, priority, tstamp, ifindex }) => ({ mark, priority, tstamp, ifindex }))(readSkbContext(ctx)),
        { mark: 0x11223344, priority: 5, tstamp: 0x0102030405060708n, ifindex: 9 },
      );
    });

    it('returns the tstamp and mark the program set from its globals', function () {
      const bss = obj.map('.bss');
      const globals = Buffer.alloc(12);
      const stamp = 1_700_000_000_123_456_789n;
      globals.writeBigUInt64LE(stamp, 0); // stamp_ns
      globals.writeUInt32LE(0xbeef, 8); // stamp_mark
      bss.update(u32(0), globals);

      const runs = obj.map('runs');
      const before = runs.lookupPerCpu(u32(0))!.reduce((s, b) => s + b.readUInt32LE(0), 0);
      const packet = Buffer.alloc(64);
      packet.writeUInt16BE(0x0800, 12); // EtherType IPv4
      const res = obj.program('pacer_egress').testRun({ data: packet, ctxIn: skbContext({ mark: 1, priority: 6 }), repeat: 10 });
      assert.equal(res.retval, 0); // TC_ACT_OK
      assert.ok(res.ctxOut);
      const out = readSkbContext(res.ctxOut);
      assert.equal(out.tstamp, stamp);
      assert.equal(out.mark, 0xbeef);
      assert.equal(out.priority, 6); // untouched by the program
      assert.deepEqual(res.dataOut, packet);
      const after = runs.lookupPerCpu(u32(0))!.reduce((s, b) => s + b.readUInt32LE(0), 0);
      assert.equal(after - before, 10);
      // dataOut is cut to the length the kernel reports, not the room we reserved.
      const roomy = obj.program('pacer_egress').testRun({ data: packet, dataOutSize: 256 });
      assert.equal(roomy.dataOut.length, 64);
      assert.equal(roomy.ctxOut, undefined);
    });

    it('passes the kernel\'s refusal of a bad context through as a BpfError', function () {
      const ctx = skbContext();
      ctx.writeUInt32LE(1, 0); // __sk_buff.len may not be set by a test run
      throwsBpf(
        () => obj.program('pacer_egress').testRun({ data: Buffer.alloc(64), ctxIn: ctx }),
        'EINVAL',
        /test run on program "pacer_egress"/,
      );
    });
  });

  describe('tc in a network namespace', function () {
    const ns = `pacer-t-${suffix}`;
    const nsPath = `/run/netns/${ns}`;
    let obj: BpfObject;
    let hostQdiscs: string;

    before(function () {
      hostQdiscs = run('tc', ['qdisc', 'show']);
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', ns, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
      run('ip', ['-n', ns, 'link', 'set', 'va', 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'vb', 'up']);
      obj = BpfObject.open(FIXTURE_O);
      obj.load();
    });

    after(function () {
      obj?.close();
      spawnSync('ip', ['netns', 'del', ns]);
    });

    it('switches only for the duration of fn, also when fn throws', function () {
      const host = netnsInode();
      const inside = inNetns(nsPath, () => netnsInode());
      assert.notEqual(inside, host);
      assert.equal(inside, statSync(nsPath).ino);
      assert.equal(netnsInode(), host);
      assert.throws(() => inNetns(nsPath, () => {
        throw new Error('boom');
      }), /boom/);
      assert.equal(netnsInode(), host);
      assert.throws(() => inNetns(nsPath, async () => 1), TypeError);
      assert.equal(netnsInode(), host);
      throwsBpf(() => inNetns(`/run/netns/absent-${suffix}`, () => 1), 'ENOENT', /open network namespace/);
    });

    it('attaches, queries and detaches the program on va inside the namespace only', function () {
      const prog = obj.program('pacer_egress');
      const target = { iface: 'va', netns: nsPath };
      assert.equal(tcHookCreate(target, 'egress'), true);
      assert.equal(tcHookCreate(target, 'egress'), false); // clsact already there: EEXIST tolerated

      const att = tcAttach({ ...target, program: prog, direction: 'egress', handle: 7, priority: 3 });
      assert.deepEqual(att, { ifindex: interfaceIndex('va', nsPath), handle: 7, priority: 3, progId: prog.id });
      const shown = run('tc', ['-n', ns, 'filter', 'show', 'dev', 'va', 'egress']);
      assert.match(shown, new RegExp(`handle 0x7 .*direct-action.* id ${prog.id} name pacer_egress`));
      assert.equal(tcQuery({ ...target, direction: 'egress', handle: 7, priority: 3 }), prog.id);
      assert.equal(tcQuery({ ...target, direction: 'egress', handle: 8, priority: 3 }), undefined);
      assert.equal(tcQuery({ ...target, direction: 'ingress', handle: 7, priority: 3 }), undefined);

      throwsBpf(
        () => tcAttach({ ...target, program: prog, direction: 'egress', handle: 7, priority: 3 }),
        'EEXIST',
        new RegExp(`attach tc egress program "pacer_egress" on va \\(ifindex \\d+\\) in netns ${nsPath}`),
      );
      assert.equal(tcAttach({ ...target, program: prog, direction: 'egress', handle: 7, priority: 3, replace: true }).progId, prog.id);

      assert.equal(tcDetach({ ...target, direction: 'ingress', handle: 7, priority: 3 }), false); // no ingress chain at all
      assert.equal(tcDetach({ ...target, direction: 'egress', handle: 7, priority: 3 }), true);
      assert.equal(tcDetach({ ...target, direction: 'egress', handle: 7, priority: 3 }), false);
      assert.equal(tcQuery({ ...target, direction: 'egress', handle: 7, priority: 3 }), undefined);
      assert.doesNotMatch(run('tc', ['-n', ns, 'filter', 'show', 'dev', 'va', 'egress']), /pacer_egress/);

      assert.match(run('tc', ['-n', ns, 'qdisc', 'show', 'dev', 'va']), /clsact/);
      assert.equal(tcHookDestroy(target), true);
      assert.doesNotMatch(run('tc', ['-n', ns, 'qdisc', 'show', 'dev', 'va']), /clsact/);
      assert.equal(tcHookDestroy(target), false);

      // The host namespace saw none of it.
      assert.equal(run('tc', ['qdisc', 'show']), hostQdiscs);
      assert.notEqual(spawnSync('ip', ['link', 'show', 'va']).status, 0);
    });

    it('removes only one direction\'s filters when destroying with a direction', function () {
      const prog = obj.program('pacer_egress');
      const target = { iface: 'va', netns: nsPath };
      tcHookCreate(target, 'egress');
      try {
        tcAttach({ ...target, program: prog, direction: 'egress', handle: 1, priority: 1 });
        tcAttach({ ...target, program: prog, direction: 'ingress', handle: 1, priority: 1 });
        assert.equal(tcHookDestroy(target, 'egress'), true);
        assert.equal(tcQuery({ ...target, direction: 'egress', handle: 1, priority: 1 }), undefined);
        assert.equal(tcQuery({ ...target, direction: 'ingress', handle: 1, priority: 1 }), prog.id);
        assert.match(run('tc', ['-n', ns, 'qdisc', 'show', 'dev', 'va']), /clsact/);
      } finally {
        tcHookDestroy(target);
      }
    });

    it('says which interface and namespace when the interface does not exist', function () {
      const prog = obj.program('pacer_egress');
      throwsBpf(
        () => tcAttach({ iface: 'nope0', netns: nsPath, program: prog, direction: 'egress' }),
        'ENODEV',
        /attach tc egress program "pacer_egress" on nope0/,
        new RegExp(`no interface named "nope0" in network namespace ${nsPath}`),
      );
      // va exists only inside the namespace.
      throwsBpf(() => tcHookCreate({ iface: 'va' }), 'ENODEV', /in the current network namespace/);
    });

    it('explains EINVAL from attaching without a clsact hook', function () {
      throwsBpf(
        () => tcAttach({ iface: 'vb', netns: nsPath, program: obj.program('pacer_egress'), direction: 'egress', handle: 1, priority: 1 }),
        'EINVAL',
        /missing clsact qdisc/,
      );
    });
  });

  describe('cgroup v2', function () {
    let mnt: string;
    let child: string;
    let obj: BpfObject;
    const open: CgroupAttachment[] = [];
    const linkPin = (): string => join(pinDir, 'sockops-link');

    const listed = (): string => run('bpftool', ['cgroup', 'show', child]);

    before(function () {
      mnt = mkdtempSync(join(tmpdir(), 'pacer-cg2-'));
      run('mount', ['-t', 'cgroup2', 'none', mnt]);
      child = join(mnt, `pacer-test-${suffix}`);
      mkdirSync(child);
      obj = BpfObject.open(SOCKOPS_O);
      obj.load();
    });

    afterEach(function () {
      for (const a of open.splice(0)) {
        try {
          a.detach();
        } catch {
          /* best effort */
        }
      }
      if (existsSync(linkPin())) detachPinnedCgroupLink(linkPin());
    });

    after(function () {
      obj?.close();
      if (child) spawnSync('rmdir', [child]);
      if (mnt) {
        spawnSync('umount', [mnt]);
        spawnSync('rmdir', [mnt]);
      }
    });

    it('attaches a sock_ops program through a bpf_link and detaches it', function () {
      const prog = obj.program('pacer_sockops');
      const a = attachCgroup(prog, child);
      open.push(a);
      assert.equal(a.mode, 'link');
      assert.equal(a.attachType, 3); // BPF_CGROUP_SOCK_OPS
      assert.match(listed(), new RegExp(`^${prog.id}\\s+cgroup_sock_ops\\s.*pacer_sockops`, 'm'));
      a.detach();
      assert.doesNotMatch(listed(), /pacer_sockops/);
    });

    it('unpins a link it pinned when detaching', function () {
      const path = linkPin();
      const a = attachCgroup(obj.program('pacer_sockops'), child);
      open.push(a);
      a.pin(path);
      assert.equal(existsSync(path), true);
      a.detach();
      assert.equal(existsSync(path), false);
      assert.doesNotMatch(listed(), /pacer_sockops/);
    });

    it('keeps a pinned link attached after its process exits, until detached by path', function () {
      const path = linkPin();
      runChild(`
        const o = b.BpfObject.open(${JSON.stringify(SOCKOPS_O)}); o.load();
        b.attachCgroup(o.program('pacer_sockops'), ${JSON.stringify(child)}).pin(${JSON.stringify(path)});`);
      assert.match(listed(), /pacer_sockops/);
      detachPinnedCgroupLink(path);
      assert.doesNotMatch(listed(), /pacer_sockops/);
      assert.equal(existsSync(path), false);
    });

    it('detaches a pinned link by path even while this process still holds it', function () {
      const path = linkPin();
      const a = attachCgroup(obj.program('pacer_sockops'), child);
      open.push(a);
      a.pin(path);
      detachPinnedCgroupLink(path);
      assert.doesNotMatch(listed(), /pacer_sockops/);
      assert.equal(existsSync(path), false);
      a.detach(); // its pin is already gone: not an error
    });

    it('can use the legacy attach and detach explicitly', function () {
      const a = attachCgroup(obj.program('pacer_sockops'), child, { mode: 'legacy' });
      open.push(a);
      assert.equal(a.mode, 'legacy');
      assert.match(listed(), /cgroup_sock_ops\s.*pacer_sockops/);
      a.detach();
      assert.doesNotMatch(listed(), /pacer_sockops/);
    });

    it('reports a missing cgroup directory', function () {
      throwsBpf(() => attachCgroup(obj.program('pacer_sockops'), join(mnt, `absent-${suffix}`)), 'ENOENT', /attach program "pacer_sockops" on cgroup/);
    });
  });
});
