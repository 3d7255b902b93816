/**
 * The floor of reading a map: BPF_MAP_LOOKUP_BATCH with nothing around it (no buffer growth, no
 * decoding), the whole map, in chunks of 8,192. pacer's binding reads with the same call now
 * (BpfMap.readEntries, readArray); this is bound on its own so the floor does not move with the
 * binding it measures.
 */
import koffi from 'koffi';
import type { BpfMap } from '../shaper-bpf/src/libbpf/index.js';
import { MapBatchOpts } from '../shaper-bpf/src/libbpf/native.js';

const libbpf = koffi.load('libbpf.so.1');
const lookupBatch = libbpf.func(
  'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, uint32_t *count, const bpf_map_batch_opts *opts)',
) as (...args: unknown[]) => number;
const ENOENT = 2;

/** Reads every entry of `map` in batches of up to `chunk`; returns how many there were. Keys and values are left encoded. */
export function readAllBatched(map: BpfMap, chunk = 8_192): number {
  const token = Buffer.alloc(Math.max(8, map.keySize));
  const next = Buffer.alloc(token.length);
  const keys = Buffer.alloc(chunk * map.keySize);
  const values = Buffer.alloc(chunk * map.valueBufferSize);
  const opts = { sz: koffi.sizeof(MapBatchOpts), elem_flags: 0, flags: 0 };
  let total = 0;
  for (let first = true; ; first = false) {
    const count = new Uint32Array([chunk]);
    const ret = lookupBatch(map.fd, first ? null : token, next, keys, values, count, opts);
    total += count[0]!;
    if (ret === -ENOENT) return total;
    if (ret !== 0) throw new Error(`bpf_map_lookup_batch on ${map.name}: ${ret}`);
    next.copy(token);
  }
}
