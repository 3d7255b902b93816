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
  decode(buf: Buffer): T;
}

export const u32: Codec<number> = { size: 4, encode: u32Key, decode: (b) => b.readUInt32LE(0) };
export const u64: Codec<bigint> = { size: 8, encode: (n) => u64Key(n), decode: (b) => b.readBigUInt64LE(0) };

export function struct<T>(layout: StructLayout<T>): Codec<T> {
  return { size: layout.size, encode: (v) => layout.encode(v), decode: (b) => layout.decode(b) };
}

/** A canonical CIDR string ("10.0.0.0/8", "2001:db8::/32") as an LPM trie key. */
export function prefix(family: 'ipv4' | 'ipv6'): Codec<string> {
  const bytes = family === 'ipv4' ? 4 : 16;
  return {
    size: 4 + bytes,
    encode(cidr) {
      const [addr, bits] = ipaddr.parseCIDR(cidr);
      if (addr.kind() !== family) throw new TypeError(`${cidr} is not an ${family} prefix`);
      return lpmKey(Uint8Array.from(addr.toByteArray()), bits);
    },
    decode(b) {
      const addr = ipaddr.fromByteArray([...b.subarray(4, 4 + bytes)]);
      return `${addr.toString()}/${b.readUInt32LE(0)}`;
    },
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
    if (entries.length === 0) return;
    const keys = Buffer.concat(entries.map(([k]) => this.key.encode(k)));
    const values = Buffer.concat(entries.map(([, v]) => this.value.encode(v)));
    this.map.updateBatch(keys, values, entries.length);
  }

  deleteMany(keys: ReadonlyArray<K>): void {
    if (keys.length === 0) return;
    this.map.deleteBatch(Buffer.concat(keys.map((k) => this.key.encode(k))), keys.length);
  }

  entries(): Map<K, V> {
    const out = new Map<K, V>();
    for (const [k, v] of this.map.entries()) out.set(this.key.decode(k), this.value.decode(v));
    return out;
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
}
