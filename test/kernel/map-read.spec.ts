/**
 * Reading whole maps (BpfMap.readEntries, readArray) on real kernel maps: BPF_MAP_LOOKUP_BATCH,
 * the per-entry walk where the kernel has no lookup batch for a map type, and what a read
 * guarantees while another thread changes the map.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BpfMap, interfaceIndex, numPossibleCpus } from '../../shaper-bpf/src/libbpf/index.js';
import type { MapEntries } from '../../shaper-bpf/src/libbpf/map.js';
import { makePinDir, removePinDir } from '../support/bpffs.js';

const TYPE = { hash: 1, array: 2, percpu_hash: 5, percpu_array: 6, lpm_trie: 11, devmap_hash: 25 } as const;
const BPF_F_NO_PREALLOC = 1;

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};
/** An IPv4 LPM key: prefix length, then the address in network order. */
const lpm4 = (len: number, addr: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(len, 0);
  b.writeUInt32BE(addr >>> 0, 4);
  return b;
};

/** key (hex) → value, failing on a key read twice. */
function byKey(m: BpfMap, read: MapEntries): Map<string, Buffer> {
  assert.equal(read.keys.length, read.count * m.keySize);
  assert.equal(read.values.length, read.count * m.valueBufferSize);
  const out = new Map<string, Buffer>();
  for (let i = 0; i < read.count; i++) {
    const k = read.keys.subarray(i * m.keySize, (i + 1) * m.keySize).toString('hex');
    assert.ok(!out.has(k), `key ${k} read twice`);
    out.set(k, read.values.subarray(i * m.valueBufferSize, (i + 1) * m.valueBufferSize));
  }
  return out;
}

/** What lookups of every key (walked with GET_NEXT_KEY) give: the reference for a batch read. */
function byLookups(m: BpfMap): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const k of m.keys()) out.set(k.toString('hex'), m.lookup(k)!);
  return out;
}

describe('reading whole maps (lookup batches, real kernel)', function () {
  this.timeout(120_000);
  const made: BpfMap[] = [];
  const create = (spec: Parameters<typeof BpfMap.create>[0]) => {
    const m = BpfMap.create(spec);
    made.push(m);
    return m;
  };
  afterEach(() => {
    for (const m of made.splice(0)) m.close();
  });

  it('reads a hash map in one batch and in many, the same entries as one lookup each gives', () => {
    const m = create({ type: TYPE.hash, name: 'read_hash', keySize: 4, valueSize: 12, maxEntries: 20_000 });
    const n = 15_000;
    const keys = Buffer.alloc(4 * n);
    const values = Buffer.alloc(12 * n);
    for (let i = 0; i < n; i++) {
      keys.writeUInt32LE(i * 7919 + 1, 4 * i);
      values.writeUInt32LE(i, 12 * i);
      values.writeBigUInt64LE(BigInt(i) * 1_000_003n, 12 * i + 4);
    }
    m.updateBatch(keys, values, n);
    const reference = byLookups(m);
    assert.equal(reference.size, n);
    for (const chunk of [undefined, 1_000, 4_999]) {
      const read = m.readEntries({ chunk });
      assert.equal(read.count, n, `chunk ${chunk}`);
      assert.deepEqual(byKey(m, read), reference, `chunk ${chunk}`);
    }
    assert.equal(m.hasLookupBatch, true);
    assert.deepEqual(new Map([...m.entries()].map(([k, v]) => [k.toString('hex'), v])), reference, 'entries() is the same read');
  });

  it('asks again with more room when a hash bucket holds more entries than a call asked for (ENOSPC)', () => {
    // 64 keys in 64 buckets: some bucket holds two (all apart has probability 64!/64^64), and a
    // call asking for one entry cannot take that bucket.
    const m = create({ type: TYPE.hash, name: 'read_buckets', keySize: 4, valueSize: 4, maxEntries: 64 });
    for (let k = 0; k < 64; k++) m.update(u32(k * 1_000_003), u32(k));
    const read = m.readEntries({ chunk: 1 });
    assert.equal(read.count, 64);
    assert.deepEqual(byKey(m, read), byLookups(m));
  });

  it('reads an array index by index; readArray gives the values of the first indexes', () => {
    const m = create({ type: TYPE.array, name: 'read_array', keySize: 4, valueSize: 12, maxEntries: 1_000 });
    for (let i = 0; i < 1_000; i += 3) m.update(u32(i), Buffer.from(`value ${i}`.padEnd(12, '.')));
    const read = m.readEntries({ chunk: 64 });
    assert.equal(read.count, 1_000);
    for (let i = 0; i < 1_000; i++) {
      assert.equal(read.keys.readUInt32LE(4 * i), i, 'in index order');
      assert.deepEqual(read.values.subarray(12 * i, 12 * (i + 1)), m.lookup(u32(i)), `index ${i}`);
    }
    assert.deepEqual(m.readArray(10), read.values.subarray(0, 120));
    assert.deepEqual(m.readArray(5_000), read.values, 'no more than the array holds');
    assert.equal(m.readArray(0).length, 0);
    assert.throws(() => m.readArray(-1), RangeError);
    const hash = create({ type: TYPE.hash, name: 'read_not_array', keySize: 4, valueSize: 4, maxEntries: 4 });
    assert.throws(() => hash.readArray(1), /hash map, not an array/);
  });

  it('reads per-CPU maps with one 8-byte-aligned slot per possible CPU in each value', () => {
    const cpus = numPossibleCpus();
    for (const type of [TYPE.percpu_hash, TYPE.percpu_array]) {
      const m = create({ type, name: 'read_percpu', keySize: 4, valueSize: 4, maxEntries: 300 });
      for (let k = 0; k < 300; k += 2) m.update(u32(k), m.joinPerCpu(Array.from({ length: cpus }, (_, cpu) => u32(k * 100 + cpu))));
      const read = m.readEntries({ chunk: 37 });
      assert.equal(read.values.length, read.count * cpus * 8);
      const got = byKey(m, read);
      assert.deepEqual(got, byLookups(m), m.typeName);
      assert.deepEqual(m.splitPerCpu(got.get(u32(42).toString('hex'))!), Array.from({ length: cpus }, (_, cpu) => u32(4200 + cpu)), m.typeName);
    }
  });

  it('reads an empty map as no entries', () => {
    const hash = create({ type: TYPE.hash, name: 'read_empty', keySize: 8, valueSize: 4, maxEntries: 128 });
    const trie = create({ type: TYPE.lpm_trie, name: 'read_empty_lpm', keySize: 8, valueSize: 4, maxEntries: 128, flags: BPF_F_NO_PREALLOC });
    for (const m of [hash, trie]) {
      const read = m.readEntries();
      assert.deepEqual([read.count, read.keys.length, read.values.length], [0, 0, 0], m.typeName);
      assert.deepEqual([...m.entries()], []);
    }
  });

  it('reads an LPM trie whole, in batches where the kernel has them for tries and by walking its keys where not', function () {
    const m = create({ type: TYPE.lpm_trie, name: 'read_lpm', keySize: 8, valueSize: 4, maxEntries: 1_000, flags: BPF_F_NO_PREALLOC });
    // Prefixes of 24..32 bits under 10.0.0.0/8 and /16 (nested: the trie has intermediate nodes, which are not entries).
    for (let i = 0; i < 300; i++) m.update(lpm4(24 + (i % 9), (10 << 24) | (i << 8)), u32(i));
    m.update(lpm4(8, 10 << 24), u32(1_000));
    m.update(lpm4(16, 10 << 24), u32(1_001));
    const reference = byLookups(m);
    assert.equal(reference.size, 302);
    for (const chunk of [undefined, 7]) assert.deepEqual(byKey(m, m.readEntries({ chunk })), reference, `chunk ${chunk}`);
    // Which way it read: Linux added generic_map_lookup_batch to trie_map_ops after 6.1.
    this.test!.title += ` (here: ${m.hasLookupBatch ? 'lookup batches' : 'the key walk'})`;
  });

  it('reads a map type without lookup batch (devmap_hash) by walking its keys', () => {
    const m = create({ type: TYPE.devmap_hash, name: 'read_devmap', keySize: 4, valueSize: 4, maxEntries: 64 });
    const lo = interfaceIndex('lo');
    for (const k of [5, 6, 70, 800]) m.update(u32(k), u32(lo));
    const read = m.readEntries();
    assert.equal(m.hasLookupBatch, false, 'the kernel refused the batch, so the walk read it');
    assert.deepEqual(byKey(m, read), byLookups(m));
    assert.equal(read.count, 4);
    assert.equal(m.readEntries().count, 4, 'and walks again without asking the kernel');
  });

  describe('while another thread deletes and adds keys', () => {
    let pinDir: string;
    beforeEach(() => {
      pinDir = makePinDir();
    });
    afterEach(() => removePinDir(pinDir));

    /**
     * Keys 0..STABLE-1 are written once and never touched; keys STABLE..STABLE+CHURN-1 are deleted
     * and written again by another process (value: the key, then a round number) while this one
     * reads the whole map again and again, in small chunks so each read spans many calls. (A
     * process, not a worker thread: the binding registers libbpf's print callback in the thread
     * that loads it, and a worker's callback would be called after the worker is gone.)
     */
    async function churnWhileReading(m: BpfMap, keyOf: (k: number) => Buffer, chunk: number): Promise<{ reads: number; churnRounds: number }> {
      const STABLE = 2_000;
      const CHURN = 500;
      const value = (k: number, round: number) => Buffer.concat([u32(k), u32(round)]);
      for (let k = 0; k < STABLE + CHURN; k++) m.update(keyOf(k), value(k, 0));
      const path = `${pinDir}/churn`;
      m.pin(path);
      const mapModule = new URL('../../shaper-bpf/src/libbpf/index.js', import.meta.url).href;
      const keyKind = m.type === TYPE.lpm_trie ? 'lpm' : 'u32';
      const churner = spawn(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { BpfMap } = await import(${JSON.stringify(mapModule)});
          const m = BpfMap.openPinned(${JSON.stringify(path)});
          const key = (k) => { const b = Buffer.alloc(${keyKind === 'lpm' ? 8 : 4});
            ${keyKind === 'lpm' ? 'b.writeUInt32LE(32, 0); b.writeUInt32BE(((10 << 24) | k) >>> 0, 4);' : 'b.writeUInt32LE(k, 0);'} return b; };
          let round = 0;
          let stop = false;
          process.stdin.on('data', () => { stop = true; });
          process.stdout.write('started\\n');
          while (!stop) {
            round++;
            for (let k = ${STABLE}; k < ${STABLE + CHURN}; k++) m.delete(key(k));
            for (let k = ${STABLE}; k < ${STABLE + CHURN}; k++) { const v = Buffer.alloc(8); v.writeUInt32LE(k, 0); v.writeUInt32LE(round, 4); m.update(key(k), v); }
            await new Promise((r) => setImmediate(r)); // lets the stop message in
          }
          m.close();
          process.stdout.write('rounds ' + round + '\\n');`,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      let out = '';
      churner.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => churner.once('exit', resolve));
      const stableKeys = new Set(Array.from({ length: STABLE }, (_, k) => keyOf(k).toString('hex')));
      const allKeys = new Map(Array.from({ length: STABLE + CHURN }, (_, k) => [keyOf(k).toString('hex'), k] as const));
      let reads = 0;
      try {
        for (const t0 = Date.now(); !out.includes('started'); ) {
          if (Date.now() - t0 > 10_000) throw new Error('the churning process did not start');
          await new Promise((r) => setTimeout(r, 20));
        }
        const until = Date.now() + 3_000;
        while (Date.now() < until || reads < 20) {
          const got = byKey(m, m.readEntries({ chunk })); // fails on a key read twice
          reads++;
          for (const k of stableKeys) assert.ok(got.has(k), `stable key ${k} missing from read ${reads}`);
          for (const [k, v] of got) {
            const n = allKeys.get(k);
            assert.ok(n !== undefined, `read ${reads} returned key ${k}, which was never written`);
            assert.equal(v.readUInt32LE(0), n, `read ${reads}: key ${k} with a value of another key`);
            if (n < STABLE) assert.equal(v.readUInt32LE(4), 0, `stable key ${k} changed`);
          }
          await new Promise((r) => setImmediate(r)); // lets the churner's output in
        }
        churner.stdin.end('stop\n');
        const code = await exited;
        assert.equal(code, 0, 'the churning process exited cleanly');
      } finally {
        if (churner.exitCode === null) churner.kill('SIGKILL');
      }
      const churnRounds = Number(/rounds (\d+)/.exec(out)?.[1] ?? 0);
      return { reads, churnRounds };
    }

    it('hash map: every key present throughout is read exactly once, no key twice, every value one its key had', async function () {
      const m = create({ type: TYPE.hash, name: 'churn_hash', keySize: 4, valueSize: 8, maxEntries: 4_096 });
      const { reads, churnRounds } = await churnWhileReading(m, u32, 97);
      assert.ok(churnRounds > 1, `the worker churned (${churnRounds} rounds)`);
      this.test!.title += ` (${reads} reads during ${churnRounds} rounds of churn)`;
    });

    it('LPM trie: the same, also where the walk restarts because the key it resumes from was deleted', async function () {
      const m = create({ type: TYPE.lpm_trie, name: 'churn_lpm', keySize: 8, valueSize: 8, maxEntries: 4_096, flags: BPF_F_NO_PREALLOC });
      const { reads, churnRounds } = await churnWhileReading(m, (k) => lpm4(32, (10 << 24) | k), 97);
      assert.ok(churnRounds > 1, `the worker churned (${churnRounds} rounds)`);
      this.test!.title += ` (${reads} reads during ${churnRounds} rounds of churn)`;
    });
  });
});
