/**
 * Typed views of BPF maps: keys and values encoded with the layouts of pacer.h, per-CPU values
 * summed, and batch writes for many entries at once.
 */
import ipaddr from 'ipaddr.js';
import type { BpfMap } from './libbpf/index.js';
import { lpmKey, u32Key, u64Key, type StructLayout } from './layout.js';

export interface Codec<T> {
  size: number;
  encode(value: T): Buffer;
  /** Writes `value` (size bytes) at `offset` of `buf`, a zeroed buffer: what batch writes use. */
  encodeInto(value: T, buf: Buffer, offset: number): void;
  /** Reads the value at `offset` (0 by default) of `buf`: entries read in batches are decoded in place. */
  decode(buf: Buffer, offset?: number): T;
}

export const u32: Codec<number> = {
  size: 4,
  encode: u32Key,
  encodeInto: (n, buf, offset) => void buf.writeUInt32LE(n, offset),
  decode: (b, offset = 0) => b.readUInt32LE(offset),
};
export const u64: Codec<bigint> = {
  size: 8,
  encode: (n) => u64Key(n),
  encodeInto: (n, buf, offset) => void buf.writeBigUInt64LE(BigInt(n), offset),
  decode: (b, offset = 0) => b.readBigUInt64LE(offset),
};

export function struct<T>(layout: StructLayout<T>): Codec<T> {
  return { size: layout.size, encode: (v) => layout.encode(v), encodeInto: (v, buf, offset) => layout.encodeInto(v, buf, offset), decode: (b, offset) => layout.decode(b, offset) };
}

/** A canonical CIDR string ("10.0.0.0/8", "2001:db8::/32") as an LPM trie key. */
export function prefix(family: 'ipv4' | 'ipv6'): Codec<string> {
  const bytes = family === 'ipv4' ? 4 : 16;
  const codec: Codec<string> = {
    size: 4 + bytes,
    encode(cidr) {
      const [addr, bits] = ipaddr.parseCIDR(cidr);
      if (addr.kind() !== family) throw new TypeError(`${cidr} is not an ${family} prefix`);
      return lpmKey(Uint8Array.from(addr.toByteArray()), bits);
    },
    encodeInto(cidr, buf, offset) {
      const [addr, bits] = ipaddr.parseCIDR(cidr);
      if (addr.kind() !== family) throw new TypeError(`${cidr} is not an ${family} prefix`);
      buf.writeUInt32LE(bits, offset);
      buf.set(addr.toByteArray(), offset + 4);
    },
    decode(b, offset = 0) {
      const addr = ipaddr.fromByteArray([...b.subarray(offset + 4, offset + 4 + bytes)]);
      return `${addr.toString()}/${b.readUInt32LE(offset)}`;
    },
  };
  return codec;
}

/** A destination address ("10.0.0.1", "2001:db8::1") as its bytes in network order: the keys of dst4_cache / dst6_cache. */
export function address(family: 'ipv4' | 'ipv6'): Codec<string> {
  const bytes = family === 'ipv4' ? 4 : 16;
  const parse = (a: string) => {
    const addr = ipaddr.parse(a);
    if (addr.kind() !== family) throw new TypeError(`${a} is not an ${family} address`);
    return addr.toByteArray();
  };
  return {
    size: bytes,
    encode: (a) => Buffer.from(parse(a)),
    encodeInto: (a, buf, offset) => buf.set(parse(a), offset),
    decode: (b, offset = 0) => ipaddr.fromByteArray([...b.subarray(offset, offset + bytes)]).toString(),
  };
}

export class TypedMap<K, V> {
  constructor(
    readonly map: BpfMap,
    private readonly key: Codec<K>,
    private readonly value: Codec<V>,
  ) {
    if (map.keySize !== key.size || map.valueSize !== value.size) {
      throw new Error(`map ${map.name}: key/value sizes ${map.keySize}/${map.valueSize} do not match pacer.h's ${key.size}/${value.size}; the object and this build disagree`);
    }
  }

  get name(): string {
    return this.map.name;
  }

  get(k: K): V | undefined {
    const raw = this.map.lookup(this.key.encode(k));
    return raw && this.value.decode(raw);
  }

  set(k: K, v: V): void {
    this.map.update(this.key.encode(k), this.value.encode(v));
  }

  delete(k: K): boolean {
    return this.map.delete(this.key.encode(k));
  }

  /** Many entries with one BPF_MAP_UPDATE_BATCH call (the binding falls back per entry where the kernel has no batch). */
  setMany(entries: ReadonlyArray<readonly [K, V]>): void {
    const n = entries.length;
    if (n === 0) return;
    // One keys buffer and one values buffer, each entry encoded in place (no Buffer per entry).
    const ks = this.key.size;
    const vs = this.value.size;
    const keys = Buffer.alloc(n * ks);
    const values = Buffer.alloc(n * vs);
    for (let i = 0; i < n; i++) {
      const [k, v] = entries[i]!;
      this.key.encodeInto(k, keys, i * ks);
      this.value.encodeInto(v, values, i * vs);
    }
    this.map.updateBatch(keys, values, n);
  }

  deleteMany(keys: ReadonlyArray<K>): void {
    const n = keys.length;
    if (n === 0) return;
    const ks = this.key.size;
    const buf = Buffer.alloc(n * ks);
    for (let i = 0; i < n; i++) this.key.encodeInto(keys[i]!, buf, i * ks);
    this.map.deleteBatch(buf, n);
  }

  /** Every entry, read at once (BpfMap.readEntries says what the read guarantees) and decoded. */
  entries(): Map<K, V> {
    const { keys, values } = this.list();
    const out = new Map<K, V>();
    for (let i = 0; i < keys.length; i++) out.set(keys[i]!, values[i]!);
    return out;
  }

  /** Every entry, read at once and decoded into two parallel lists (entry i is keys[i], values[i]). */
  list(): { keys: ArrayLike<K> & Iterable<K>; values: ArrayLike<V> & Iterable<V> } {
    const { count, keys, values } = this.map.readEntries();
    // u32 → u32 (class_slot, mark_class: tens of thousands of entries per resync): the buffers
    // read as words, nothing decoded (little-endian hosts, as layout.ts assumes throughout).
    if ((this.key as Codec<unknown>) === u32 && (this.value as Codec<unknown>) === u32 && keys.byteOffset % 4 === 0 && values.byteOffset % 4 === 0) {
      return { keys: new Uint32Array(keys.buffer, keys.byteOffset, count) as unknown as K[], values: new Uint32Array(values.buffer, values.byteOffset, count) as unknown as V[] };
    }
    const ks = this.key.size;
    const vs = this.value.size;
    const outKeys = new Array<K>(count);
    const outValues = new Array<V>(count);
    for (let i = 0; i < count; i++) {
      outKeys[i] = this.key.decode(keys, i * ks);
      outValues[i] = this.value.decode(values, i * vs);
    }
    return { keys: outKeys, values: outValues };
  }

  /** An array map's values for keys 0 .. count - 1, encoded as the kernel holds them, in one read (BpfMap.readArray). */
  readArray(count: number): Buffer {
    return this.map.readArray(count);
  }
}

/** A per-CPU map read as the sum over CPUs of each numeric field. */
export class SummedPerCpuMap<K, V extends Record<string, number>> {
  constructor(
    readonly map: BpfMap,
    private readonly key: Codec<K>,
    private readonly layout: StructLayout<V>,
  ) {
    if (!map.isPerCpu) throw new Error(`map ${map.name} is not per-CPU`);
  }

  private sum(slots: Buffer[]): V {
    const total = this.layout.decode(slots[0]!);
    for (const slot of slots.slice(1)) {
      const v = this.layout.decode(slot);
      for (const f of Object.keys(total) as Array<keyof V>) (total[f] as number) += v[f] as number;
    }
    return total;
  }

  get(k: K): V | undefined {
    const slots = this.map.lookupPerCpu(this.key.encode(k));
    return slots && this.sum(slots);
  }

  entries(): Map<K, V> {
    const out = new Map<K, V>();
    for (const [k, raw] of this.map.entries()) out.set(this.key.decode(k), this.sum(this.map.splitPerCpu(raw)));
    return out;
  }

  delete(k: K): boolean {
    return this.map.delete(this.key.encode(k));
  }

  deleteMany(keys: ReadonlyArray<K>): void {
    for (const k of keys) this.delete(k);
  }

  /** Zeroes every CPU's counters (per-CPU arrays cannot delete entries). */
  zero(k: K): void {
    this.map.update(this.key.encode(k), Buffer.alloc(this.map.valueBufferSize));
  }

  /** zero() for many keys with one batch write. */
  zeroMany(keys: ReadonlyArray<K>): void {
    const n = keys.length;
    if (n === 0) return;
    const ks = this.key.size;
    const buf = Buffer.alloc(n * ks);
    for (let i = 0; i < n; i++) this.key.encodeInto(keys[i]!, buf, i * ks);
    this.map.updateBatch(buf, Buffer.alloc(n * this.map.valueBufferSize), n);
  }
}
