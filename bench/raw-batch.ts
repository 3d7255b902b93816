/**
 * The floor that bench:bpf and bench:agent compare the binding against: entries already encoded
 * (with the binding's own codecs, once, outside the timing) and written with one
 * BPF_MAP_UPDATE_BATCH per map: the syscall alone.
 */
import type { BpfMap } from '../shaper-bpf/src/libbpf/index.js';
import type { Codec } from '../shaper-bpf/src/typed-map.js';

export interface EncodedBatch {
  map: BpfMap;
  keys: Buffer;
  values: Buffer;
  count: number;
}

/** Encodes entries for `map` (not per-CPU: see zeroBatch). */
export function encodeBatch<K, V>(map: BpfMap, key: Codec<K>, value: Codec<V>, entries: ReadonlyArray<readonly [K, V]>): EncodedBatch {
  if (map.isPerCpu) throw new TypeError(`${map.name} is per-CPU: use zeroBatch`);
  const n = entries.length;
  const keys = Buffer.alloc(n * key.size);
  const values = Buffer.alloc(n * value.size);
  for (let i = 0; i < n; i++) {
    const [k, v] = entries[i]!;
    key.encodeInto(k, keys, i * key.size);
    value.encodeInto(v, values, i * value.size);
  }
  return { map, keys, values, count: n };
}

/** Zero values for `keys` (every CPU's, for a per-CPU map): what zeroing counters writes. */
export function zeroBatch<K>(map: BpfMap, key: Codec<K>, keys: readonly K[]): EncodedBatch {
  const buf = Buffer.alloc(keys.length * key.size);
  keys.forEach((k, i) => key.encodeInto(k, buf, i * key.size));
  return { map, keys: buf, values: Buffer.alloc(keys.length * map.valueBufferSize), count: keys.length };
}

/** Writes every batch, in order: one update-batch syscall each. */
export function writeRaw(batches: readonly EncodedBatch[]): void {
  for (const b of batches) b.map.updateBatch(b.keys, b.values, b.count);
}
