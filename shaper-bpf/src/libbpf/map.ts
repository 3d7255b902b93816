// Concern: reading and writing one BPF map through its fd — CRUD, batches, iteration,
// per-CPU value layout, pinning. Keys and values are raw Buffers in the kernel's layout;
// callers own the encoding. Every call is synchronous on the calling thread.
import { constants } from 'node:os';
import { check } from './errors.js';
import { closeFd, objInfo, openPinnedFd } from './info.js';
import { FdObject } from './fd-object.js';
import { lib, MapBatchOpts, MapCreateOpts, MapInfo, numPossibleCpus } from './native.js';
import koffi from 'koffi';

const { ENOENT, EINVAL, EOPNOTSUPP, E2BIG, ENOSPC, EINTR } = constants.errno;
const ENOTSUPP = 524; // kernel-internal; what bpf() returns for a batch op the map type lacks

// Declared next to its only user; the struct type is native.ts's (koffi resolves it by name).
const lookupBatch = koffi
  .load('libbpf.so.1')
  .func('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, uint32_t *count, const bpf_map_batch_opts *opts)') as (
  ...args: unknown[]
) => number;

/** Bytes one lookup batch may fill (keys and values): sets the default entries per call. */
const READ_CHUNK_BYTES = 4 << 20;

/** Hash maps whose lookup batch walks buckets (htab_map_lookup_batch): a key can never be returned twice. */
const HTAB_TYPES = new Set([1, 5, 9, 10]); // hash, percpu_hash, lru_hash, lru_percpu_hash

/**
 * Entries read at once (BpfMap.readEntries): `count` keys packed in `keys` (count × keySize
 * bytes) and their values in `values` (count × valueBufferSize), in the kernel's order.
 */
export interface MapEntries {
  count: number;
  keys: Buffer;
  values: Buffer;
}

/** enum bpf_map_type (include/uapi/linux/bpf.h), index = value. */
export const MAP_TYPE_NAMES = [
  'unspec', 'hash', 'array', 'prog_array', 'perf_event_array', 'percpu_hash', 'percpu_array',
  'stack_trace', 'cgroup_array', 'lru_hash', 'lru_percpu_hash', 'lpm_trie', 'array_of_maps',
  'hash_of_maps', 'devmap', 'sockmap', 'cpumap', 'xskmap', 'sockhash', 'cgroup_storage',
  'reuseport_sockarray', 'percpu_cgroup_storage', 'queue', 'stack', 'sk_storage', 'devmap_hash',
  'struct_ops', 'ringbuf', 'inode_storage', 'task_storage', 'bloom_filter', 'user_ringbuf', 'cgrp_storage',
] as const;

const PER_CPU_TYPES = new Set([5, 6, 10, 21]); // percpu_hash, percpu_array, lru_percpu_hash, percpu_cgroup_storage

/** Flags of bpf_map_update_elem (BPF_ANY, BPF_NOEXIST, BPF_EXIST). */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

/** BTF for a map created with BpfMap.create: a loaded BTF's fd and the key and value type ids in it. */
export interface MapBtf {
  fd: number;
  keyTypeId: number;
  valueTypeId: number;
}

export interface BpfMapDescription {
  fd: number;
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

interface MapInfoStruct { type: number; id: number; key_size: number; value_size: number; max_entries: number; name: string }

export class BpfMap extends FdObject {
  readonly name: string;
  /** enum bpf_map_type value; see typeName. */
  readonly type: number;
  readonly keySize: number;
  /** Size of one value as declared; per-CPU maps hold one (8-byte rounded) slot per possible CPU. */
  readonly valueSize: number;
  readonly maxEntries: number;
  // Batch ops are missing for some map types (the kernel answers ENOTSUPP): remember it and loop.
  // Separately: arrays have an update batch but no delete batch.
  private noUpdateBatch = false;
  private noDeleteBatch = false;
  private noLookupBatch = false;

  /** @param ownsFd whether close() closes the fd (false for maps owned by a BpfObject). */
  constructor(desc: BpfMapDescription, ownsFd: boolean) {
    super(desc.fd, ownsFd);
    this.name = desc.name;
    this.type = desc.type;
    this.keySize = desc.keySize;
    this.valueSize = desc.valueSize;
    this.maxEntries = desc.maxEntries;
  }

  /**
   * Creates a map that belongs to no object (BPF_MAP_CREATE), e.g. the inner map of a map of
   * maps. The caller owns the fd: close() it once the map is referenced elsewhere (an outer map
   * holds its own reference).
   */
  static create(spec: { type: number; name: string; keySize: number; valueSize: number; maxEntries: number; btf?: MapBtf; flags?: number }): BpfMap {
    // With `btf`, the map carries the key and value types like a map an object declares: the
    // inner maps of a map of maps must, because kernel 6.1's bpf_map_meta_equal compares
    // timer_off, which is -ENOENT for a map with BTF and -EINVAL for one without (EINVAL on update).
    // `flags` are the map_flags (an LPM trie needs BPF_F_NO_PREALLOC).
    const { btf, flags, ...plain } = spec;
    const opts =
      btf || flags
        ? { sz: koffi.sizeof(MapCreateOpts), map_flags: flags ?? 0, ...(btf && { btf_fd: btf.fd, btf_key_type_id: btf.keyTypeId, btf_value_type_id: btf.valueTypeId }) }
        : null;
    const fd = check(lib.bpf_map_create(spec.type, spec.name, spec.keySize, spec.valueSize, spec.maxEntries, opts) as number, 'create map', `map "${spec.name}"`);
    return new BpfMap({ fd, ...plain }, true);
  }

  /** Opens a map by its kernel id (what a map of maps returns for an entry, and bpftool shows). */
  static openById(id: number): BpfMap {
    const fd = check(lib.bpf_map_get_fd_by_id(id) as number, 'open map by id', `map id ${id}`);
    return BpfMap.fromFd(fd, `map id ${id}`);
  }

  /** Opens a map pinned on bpffs and learns its type, sizes and name from the kernel. */
  static openPinned(path: string): BpfMap {
    return BpfMap.fromFd(openPinnedFd(path, 'map', 'map'), `map pinned at ${path}`);
  }

  /** Takes ownership of a map fd, learning the map's type, sizes and name from the kernel. */
  private static fromFd(fd: number, what: string): BpfMap {
    try {
      const info = objInfo<MapInfoStruct>(fd, MapInfo, what);
      return new BpfMap(
        { fd, name: info.name, type: info.type, keySize: info.key_size, valueSize: info.value_size, maxEntries: info.max_entries },
        true,
      );
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  get typeName(): string {
    return MAP_TYPE_NAMES[this.type] ?? `type ${this.type}`;
  }

  /** false once the kernel refused a lookup batch for this map (readEntries then walks the keys). */
  get hasLookupBatch(): boolean {
    return !this.noLookupBatch;
  }

  get isPerCpu(): boolean {
    return PER_CPU_TYPES.has(this.type);
  }

  /** Bytes of one per-CPU slot: the kernel copies round_up(value_size, 8) per CPU (bpf_percpu_*_copy). */
  get slotSize(): number {
    return this.isPerCpu ? Math.ceil(this.valueSize / 8) * 8 : this.valueSize;
  }

  /** Size of the buffer lookup() returns and update() expects for one entry. */
  get valueBufferSize(): number {
    return this.isPerCpu ? this.slotSize * numPossibleCpus() : this.valueSize;
  }

  protected get target(): string {
    return `map "${this.name}"`;
  }

  /** The kernel reads exactly keySize/valueSize bytes from our pointers: a short Buffer would be an overread. */
  private assertSize(buf: Buffer, size: number, what: string, count = 1): void {
    if (buf.length !== size * count) {
      throw new RangeError(`${this.target}: ${what} must be ${size * count} bytes (${count} × ${size}), got ${buf.length}`);
    }
  }

  /** The value for `key`, or undefined. Per-CPU maps: nCPU slots of slotSize bytes, see lookupPerCpu. */
  lookup(key: Buffer): Buffer | undefined {
    this.assertSize(key, this.keySize, 'key');
    const value = Buffer.alloc(this.valueBufferSize);
    const ret = lib.bpf_map_lookup_elem(this.fd, key, value) as number;
    if (ret === -ENOENT) return undefined;
    check(ret, `look up key ${hex(key)}`, this.target);
    return value;
  }

  /** Per-CPU maps: one Buffer of valueSize bytes per possible CPU (index = CPU number). */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    if (!this.isPerCpu) throw new TypeError(`${this.target} is a ${this.typeName} map, not per-CPU`);
    const raw = this.lookup(key);
    return raw && this.splitPerCpu(raw);
  }

  /** Splits a per-CPU value buffer into one valueSize Buffer per CPU. */
  splitPerCpu(raw: Buffer): Buffer[] {
    const slots: Buffer[] = [];
    for (let off = 0; off < raw.length; off += this.slotSize) slots.push(raw.subarray(off, off + this.valueSize));
    return slots;
  }

  /** Builds a per-CPU value buffer from one value per possible CPU. */
  joinPerCpu(values: Buffer[]): Buffer {
    if (values.length !== numPossibleCpus()) throw new RangeError(`${this.target}: need ${numPossibleCpus()} per-CPU values, got ${values.length}`);
    const out = Buffer.alloc(this.valueBufferSize);
    values.forEach((v, cpu) => {
      this.assertSize(v, this.valueSize, `value for CPU ${cpu}`);
      v.copy(out, cpu * this.slotSize);
    });
    return out;
  }

  update(key: Buffer, value: Buffer, flags: number = UpdateFlags.ANY): void {
    this.assertSize(key, this.keySize, 'key');
    this.assertSize(value, this.valueBufferSize, 'value');
    const ret = lib.bpf_map_update_elem(this.fd, key, value, flags) as number;
    check(ret, `update key ${hex(key)}`, this.target, () => this.fullDetail(ret));
  }

  /** Deletes `key`; false if it was not there. */
  delete(key: Buffer): boolean {
    this.assertSize(key, this.keySize, 'key');
    const ret = lib.bpf_map_delete_elem(this.fd, key) as number;
    if (ret === -ENOENT) return false;
    check(ret, `delete key ${hex(key)}`, this.target, () =>
      // array_map_delete_elem is a plain -EINVAL: array slots always exist.
      ret === -EINVAL && this.isArray ? `${this.typeName} maps cannot delete entries; write a zero value instead` : '',
    );
    return true;
  }

  /**
   * Writes `count` entries (keys: count × keySize, values: count × valueBufferSize) with one
   * BPF_MAP_UPDATE_BATCH. Map types without batch ops fall back to one update per entry:
   * measured on this 6.18 kernel, prog_array, cgroup_array and devmap_hash answer ENOTSUPP
   * (hash, array, per-CPU and LPM trie maps do have batches; arrays have no delete batch).
   */
  updateBatch(keys: Buffer, values: Buffer, count: number, flags: number = UpdateFlags.ANY): void {
    this.assertSize(keys, this.keySize, 'keys', count);
    this.assertSize(values, this.valueBufferSize, 'values', count);
    if (count === 0) return;
    if (!this.noUpdateBatch) {
      const n = new Uint32Array([count]);
      const ret = lib.bpf_map_update_batch(this.fd, keys, values, n, batchOpts(flags)) as number;
      if (ret === 0) return;
      if (!this.isBatchUnsupported(ret, n[0]!, count)) {
        check(ret, `update batch of ${count} entries (${n[0]} written)`, this.target, () => this.fullDetail(ret));
      }
      this.noUpdateBatch = true;
    }
    const vs = this.valueBufferSize;
    for (let i = 0; i < count; i++) {
      this.update(keys.subarray(i * this.keySize, (i + 1) * this.keySize), values.subarray(i * vs, (i + 1) * vs), flags);
    }
  }

  /**
   * Deletes `count` keys (count × keySize bytes) with BPF_MAP_DELETE_BATCH; returns how many
   * existed and were deleted. The kernel stops at a missing key (ENOENT) and reports how many
   * it deleted before it (generic_map_delete_batch), so we skip that key and continue.
   */
  deleteBatch(keys: Buffer, count: number): number {
    this.assertSize(keys, this.keySize, 'keys', count);
    let done = 0;
    let deleted = 0;
    while (done < count && !this.noDeleteBatch) {
      const n = new Uint32Array([count - done]);
      const ret = lib.bpf_map_delete_batch(this.fd, keys.subarray(done * this.keySize), n, batchOpts(0)) as number;
      if (ret === 0) return deleted + n[0]!;
      if (ret === -ENOENT) {
        deleted += n[0]!;
        done += n[0]! + 1;
        continue;
      }
      if (!(done === 0 && this.isBatchUnsupported(ret, n[0]!, count))) {
        check(ret, `delete batch of ${count} keys (${deleted + n[0]!} deleted)`, this.target);
      }
      this.noDeleteBatch = true;
    }
    for (let i = done; i < count; i++) {
      if (this.delete(keys.subarray(i * this.keySize, (i + 1) * this.keySize))) deleted++;
    }
    return deleted;
  }

  /**
   * ENOTSUPP/EOPNOTSUPP: the map type has no such batch op; the kernel refuses before touching
   * any element (and leaves count as passed in). EINVAL with count untouched: the whole command
   * was refused (kernels < 5.6 lack it). EINVAL with count changed is an element's own error.
   */
  private isBatchUnsupported(ret: number, countAfter: number, countBefore: number): boolean {
    return ret === -ENOTSUPP || ret === -EOPNOTSUPP || (ret === -EINVAL && countAfter === countBefore);
  }

  /**
   * Iterates keys with BPF_MAP_GET_NEXT_KEY. Mutating the map while iterating is allowed, but
   * for hash maps, deleting the current key makes the kernel restart from the first bucket,
   * so keys may repeat.
   */
  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const ret = lib.bpf_map_get_next_key(this.fd, prev, next) as number;
      if (ret === -ENOENT) return;
      check(ret, 'iterate keys', this.target);
      yield next;
      prev = next;
    }
  }

  /** [key, value] pairs, read at once with readEntries (see there for what the read guarantees). */
  *entries(): Generator<[Buffer, Buffer]> {
    const { count, keys, values } = this.readEntries();
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    for (let i = 0; i < count; i++) yield [keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs)];
  }

  /**
   * Every entry, read with BPF_MAP_LOOKUP_BATCH, `chunk` entries per call (by default as many
   * as fit in 4 MiB). Where the kernel has no lookup batch for the map's type (kernels before
   * 5.6; LPM tries before the kernel gave them generic_map_lookup_batch), it walks the keys with
   * GET_NEXT_KEY and looks each one up.
   *
   * What the read guarantees while the map changes under it (the program, or another process):
   * it is not a snapshot of one moment. Every key present during the whole read is returned
   * exactly once, with a value it had during the read; a key added or deleted meanwhile may or
   * may not be; no key is returned twice. Hash maps are read bucket by bucket (each bucket
   * under its lock, the resume token a bucket index), so a key cannot come twice. Arrays are
   * read index by index, every index once. For the others (LPM tries, and every walk), the
   * kernel resumes from the last key returned, and restarts from the first key when that key
   * was deleted meanwhile: keys read twice are kept once, with the value read last. A value
   * is copied whole, but not atomically with respect to a program writing it in place (the
   * same as one lookup).
   */
  readEntries(options: { chunk?: number } = {}): MapEntries {
    const read = this.noLookupBatch ? undefined : this.readBatched(Infinity, options.chunk);
    if (read) return HTAB_TYPES.has(this.type) || this.isArray ? read : this.withoutRepeats(read);
    return this.withoutRepeats(this.walk());
  }

  /**
   * An array map's values for indexes 0 .. count - 1 (count × valueBufferSize bytes; fewer
   * when the array has fewer entries), read with lookup batches. The keys are the indexes.
   */
  readArray(count: number, options: { chunk?: number } = {}): Buffer {
    if (!this.isArray) throw new TypeError(`${this.target} is a ${this.typeName} map, not an array`);
    if (!(Number.isInteger(count) && count >= 0)) throw new RangeError(`${this.target}: count must be an integer ≥ 0, got ${count}`);
    const n = Math.min(count, this.maxEntries);
    const read = this.noLookupBatch ? undefined : this.readBatched(n, options.chunk);
    if (read) return read.values;
    const vs = this.valueBufferSize;
    const values = Buffer.alloc(n * vs);
    const key = Buffer.alloc(4);
    for (let i = 0; i < n; i++) {
      key.writeUInt32LE(i, 0);
      this.lookup(key)?.copy(values, i * vs);
    }
    return values;
  }

  /**
   * Up to `limit` entries with lookup batches; undefined when the kernel has none for this map
   * type (then noLookupBatch is set). The buffers grow by doubling, so a large map that holds
   * few entries costs what it holds.
   */
  private readBatched(limit: number, chunkOption?: number): MapEntries | undefined {
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    let chunk = chunkOption ?? Math.max(1, Math.min(this.maxEntries, Math.floor(READ_CHUNK_BYTES / (ks + vs))));
    if (!(Number.isInteger(chunk) && chunk >= 1)) throw new RangeError(`${this.target}: chunk must be an integer ≥ 1, got ${chunk}`);
    let capacity = Math.min(limit, chunk);
    let keys: Buffer = Buffer.allocUnsafeSlow(capacity * ks);
    let values: Buffer = Buffer.allocUnsafeSlow(capacity * vs);
    // The resume token: a bucket index for hash maps, the last key for the others.
    let token = Buffer.alloc(Math.max(8, ks));
    let next = Buffer.alloc(token.length);
    const opts = batchOpts(0);
    let done = 0;
    let interrupted = 0;
    for (let first = true; done < limit; ) {
      const want = Math.min(chunk, limit - done);
      if (capacity - done < want) {
        capacity = Math.min(limit, Math.max(capacity * 2, done + want));
        keys = grow(keys, capacity * ks, done * ks);
        values = grow(values, capacity * vs, done * vs);
      }
      const n = new Uint32Array([want]);
      const ret = lookupBatch(this.fd, first ? null : token, next, keys.subarray(done * ks), values.subarray(done * vs), n, opts);
      // Older kernels' generic batch gives up with EINTR (after copying what it had) when it finds
      // a key gone between its next-key step and its lookup three times in a row; later ones skip
      // the key. Resuming from the token looks again.
      const progress = ret === 0 || ret === -ENOENT || (ret === -EINTR && ++interrupted < 8);
      if (progress) {
        done += n[0]!;
        if (ret === -ENOENT) break;
        if (n[0]! > 0) {
          [token, next] = [next, token];
          first = false;
          if (ret === 0) interrupted = 0;
        }
        continue;
      }
      // A hash bucket holds more entries than asked for: ask for more (nothing was copied).
      if (ret === -ENOSPC && n[0] === 0 && chunk < this.maxEntries) {
        chunk = Math.min(this.maxEntries, chunk * 2);
        continue;
      }
      if (first && this.isBatchUnsupported(ret, n[0]!, want)) {
        this.noLookupBatch = true;
        return undefined;
      }
      check(ret, `look up a batch of ${want} entries after ${done}`, this.target);
    }
    return { count: done, keys: keys.subarray(0, done * ks), values: values.subarray(0, done * vs) };
  }

  /** Every entry by GET_NEXT_KEY and one lookup each; keys deleted between the two are skipped. */
  private walk(): MapEntries {
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (!value) continue;
      keys.push(key);
      values.push(value);
    }
    return { count: keys.length, keys: Buffer.concat(keys, keys.length * ks), values: Buffer.concat(values, values.length * vs) };
  }

  /** Keeps each key once, with the value read last (a resumed walk may return a key again). */
  private withoutRepeats(read: MapEntries): MapEntries {
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    const last = new Map<string, number>();
    for (let i = 0; i < read.count; i++) last.set(read.keys.toString('latin1', i * ks, (i + 1) * ks), i);
    if (last.size === read.count) return read;
    const keys = Buffer.alloc(last.size * ks);
    const values = Buffer.alloc(last.size * vs);
    let j = 0;
    for (const i of last.values()) {
      read.keys.copy(keys, j * ks, i * ks, (i + 1) * ks);
      read.values.copy(values, j * vs, i * vs, (i + 1) * vs);
      j++;
    }
    return { count: j, keys, values };
  }

  private get isArray(): boolean {
    return this.type === 2 || this.type === 6; // array, percpu_array
  }

  /** E2BIG: a hash map is full, or an array index is past max_entries (htab_map_update_elem, array_map_update_elem). */
  private fullDetail(ret: number): string {
    if (ret !== -E2BIG && ret !== -ENOSPC) return '';
    return this.isArray
      ? `${this.target} has ${this.maxEntries} slots (max_entries); the index is out of range`
      : `${this.target} is full: max_entries is ${this.maxEntries}`;
  }

}

/** A larger buffer holding the first `used` bytes of `buf`. */
function grow(buf: Buffer, size: number, used: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size);
  buf.copy(out, 0, 0, used);
  return out;
}

/** Key bytes for error messages (first 32). */
function hex(key: Buffer): string {
  return key.length <= 32 ? key.toString('hex') : `${key.subarray(0, 32).toString('hex')}…`;
}

function batchOpts(elemFlags: number): Record<string, unknown> {
  return { sz: koffi.sizeof(MapBatchOpts), elem_flags: elemFlags, flags: 0 };
}
