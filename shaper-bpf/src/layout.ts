/**
 * The TypeScript mirror of shaper-bpf/bpf/pacer.h: each struct's fields, named after their C
 * counterparts, with their offsets and the struct's size. A kernel test compares these with the
 * BTF of the compiled object, so a change on one side that is not made on the other fails.
 *
 * All integers are little-endian (x86_64 and arm64). u64 values are read as numbers: every u64 in
 * these maps (rates, nanoseconds, counters) stays below 2^53 in practice, and reading one above
 * throws instead of rounding.
 */

import { HIST_BUCKETS } from './delay-hist.js';

type FieldType = 'u8' | 'u32' | 's32' | 'u64';
interface Field {
  name: string;
  type: FieldType;
  offset: number;
  /** For arrays: the number of elements. */
  length?: number;
}

export interface StructLayout<T> {
  name: string;
  size: number;
  fields: Field[];
  encode(value: T): Buffer;
  /** Writes `value` at `offset` of `buf` (size bytes; padding left as it is, so pass a zeroed buffer). */
  encodeInto(value: T, buf: Buffer, offset: number): void;
  decode(buf: Buffer, offset?: number): T;
}

const TWO_32 = 0x1_0000_0000;

/**
 * A u64 from a number, as two u32 halves (no BigInt: this is the hot path of batch writes). Only
 * safe integers are accepted, the same bound readU64 enforces.
 */
export function writeU64(buf: Buffer, v: number, offset: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    if (!Number.isInteger(v)) throw new TypeError(`${field} must be an integer, got ${v}`);
    throw new RangeError(`${field} = ${v} is not a u64 that fits a safe integer`);
  }
  buf.writeUInt32LE(v % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(v / TWO_32), offset + 4);
}

function readU64(buf: Buffer, offset: number, field: string): number {
  const v = buf.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${field} = ${v} does not fit a safe integer`);
  return Number(v);
}

function badInt(field: string, v: number, type: 'u32' | 's32'): Error {
  return Number.isInteger(v) ? new RangeError(`${field} = ${v} does not fit a ${type}`) : new TypeError(`${field} must be an integer, got ${v}`);
}

/**
 * The encoder of a scalar struct, compiled once per layout into straight-line code: it runs once
 * per entry in batch writes and in every resync's comparison, and a loop reading `value[name]`
 * for each field is a megamorphic property load (3x slower: 85 against 28 ns per class_config
 * entry here). Writes go through a DataView (which V8 inlines; Buffer's writers re-check their
 * arguments each call); error labels are built only on failure. The source is made only from the
 * field names and offsets of this file's layouts, never from data.
 */
function compileEncoder(name: string, fields: readonly Field[]): (value: object, dv: DataView, base: number, buf: Buffer) => void {
  const lines = fields.map((f) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(f.name)) throw new Error(`${name}.${f.name}: not a C field name`);
    const at = `base + ${f.offset}`;
    const label = JSON.stringify(`${name}.${f.name}`);
    if (f.type === 'u64') {
      return `x = v.${f.name}; if (!(x >= 0 && x <= ${Number.MAX_SAFE_INTEGER} && Number.isInteger(x))) writeU64(buf, x, ${at}, ${label});
        dv.setUint32(${at}, x % ${TWO_32}, true); dv.setUint32(${at} + 4, Math.floor(x / ${TWO_32}), true);`;
    }
    if (f.type === 'u32') return `x = v.${f.name}; if (x >>> 0 !== x) throw badInt(${label}, x, 'u32'); dv.setUint32(${at}, x, true);`;
    return `x = v.${f.name}; if ((x | 0) !== x) throw badInt(${label}, x, 's32'); dv.setInt32(${at}, x, true);`;
  });
  const body = `return function encode(v, dv, base, buf) { let x;\n${lines.join('\n')}\n};`;
  return new Function('writeU64', 'badInt', body)(writeU64, badInt) as (value: object, dv: DataView, base: number, buf: Buffer) => void;
}

/** Builds a layout for a struct whose fields are all scalars, from [name, type] in C order. */
function scalarStruct<T extends Record<string, number>>(name: string, spec: ReadonlyArray<[keyof T & string, Exclude<FieldType, 'u8'>]>): StructLayout<T> {
  const sizes = { u32: 4, s32: 4, u64: 8 } as const;
  let offset = 0;
  const fields: Field[] = spec.map(([fieldName, type]) => {
    offset = Math.ceil(offset / sizes[type]) * sizes[type];
    const f = { name: fieldName, type, offset };
    offset += sizes[type];
    return f;
  });
  const size = Math.ceil(offset / 8) * 8;
  const encodeFields = compileEncoder(name, fields);
  // The DataView of the buffer last written into (batch writes encode many entries into one).
  let lastBuf: Buffer | undefined;
  let lastView: DataView | undefined;
  const view = (buf: Buffer): DataView => {
    if (buf !== lastBuf) {
      lastBuf = buf;
      lastView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    return lastView!;
  };
  return {
    name,
    size,
    fields,
    encode(value: T): Buffer {
      const buf = Buffer.alloc(size);
      this.encodeInto(value, buf, 0);
      return buf;
    },
    encodeInto(value: T, buf: Buffer, base: number): void {
      encodeFields(value, view(buf), base, buf);
    },
    decode(buf: Buffer, base = 0): T {
      const out: Record<string, number> = {};
      for (const f of fields) {
        const at = base + f.offset;
        out[f.name] = f.type === 'u64' ? readU64(buf, at, `${name}.${f.name}`) : f.type === 'u32' ? buf.readUInt32LE(at) : buf.readInt32LE(at);
      }
      return out as T;
    },
  };
}

/** Slots 1 .. MAX_CLASSES - 1 hold classes; 0 = none (PACER_MAX_CLASSES). */
export const MAX_CLASSES = 65_536;

/**
 * A class as the agent and the API see it, keyed by class id (ShaperState): parent_id is a class
 * id. Not a kernel struct: the data plane holds a SlotConfig per slot.
 */
export type ClassConfig = {
  rate_bps: number;
  burst_ns: number;
  horizon_ns: number;
  ecn_ns: number;
  parent_id: number;
  flags: number;
}

/** pacer_class_config: one entry of class_config, indexed by slot. rate_bps 0 = a free slot. */
export type SlotConfig = {
  rate_bps: number;
  burst_ns: number;
  horizon_ns: number;
  ecn_ns: number;
  parent_slot: number;
  class_id: number;
  flags: number;
  reserved: number;
}
export const classConfig = scalarStruct<SlotConfig>('pacer_class_config', [
  ['rate_bps', 'u64'],
  ['burst_ns', 'u64'],
  ['horizon_ns', 'u64'],
  ['ecn_ns', 'u64'],
  ['parent_slot', 'u32'],
  ['class_id', 'u32'],
  ['flags', 'u32'],
  ['reserved', 'u32'],
]);
export const FREE_SLOT: SlotConfig = Object.freeze({ rate_bps: 0, burst_ns: 0, horizon_ns: 0, ecn_ns: 0, parent_slot: 0, class_id: 0, flags: 0, reserved: 0 });

export type ClassState = {
  t_last: number;
}
export const classState = scalarStruct<ClassState>('pacer_class_state', [['t_last', 'u64']]);

export type ClassStats = {
  packets: number;
  bytes: number;
  delayed: number;
  delay_ns: number;
  horizon_drops: number;
  ce_marks: number;
  contended: number;
}
export const classStats = scalarStruct<ClassStats>('pacer_class_stats', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
  ['delayed', 'u64'],
  ['delay_ns', 'u64'],
  ['horizon_drops', 'u64'],
  ['ce_marks', 'u64'],
  ['contended', 'u64'],
]);

export type IfaceStats = {
  unclassified_packets: number;
  unclassified_bytes: number;
}
export const ifaceStats = scalarStruct<IfaceStats>('pacer_iface_stats', [
  ['unclassified_packets', 'u64'],
  ['unclassified_bytes', 'u64'],
]);

/** pacer_delay_hist: the value of each class's inner map of delay_hist (one u64 count per bucket, delay-hist.ts). */
export type DelayHistCounts = {
  counts: number[];
}
export const delayHist: StructLayout<DelayHistCounts> = (() => {
  const name = 'pacer_delay_hist';
  const length = HIST_BUCKETS;
  const size = 8 * length;
  return {
    name,
    size,
    fields: [{ name: 'counts', type: 'u64', offset: 0, length }],
    encode(value) {
      const buf = Buffer.alloc(size);
      this.encodeInto(value, buf, 0);
      return buf;
    },
    encodeInto(value, buf, base) {
      if (value.counts.length !== length) throw new RangeError(`${name}.counts has ${length} entries, got ${value.counts.length}`);
      value.counts.forEach((c, i) => writeU64(buf, c, base + 8 * i, `${name}.counts[${i}]`));
    },
    decode(buf, base = 0) {
      // Read per scrape for every class: two u32 halves instead of a BigInt per count (3x faster).
      const counts = new Array<number>(length);
      for (let i = 0; i < length; i++) {
        const at = base + 8 * i;
        const hi = buf.readUInt32LE(at + 4);
        counts[i] = hi < 0x20_0000 ? hi * TWO_32 + buf.readUInt32LE(at) : readU64(buf, at, `${name}.counts[${i}]`);
      }
      return { counts };
    },
  };
})();

/** The interface's settings as the agent sees them (ShaperState): default_class is a class id. */
export type Settings = {
  default_class: number;
  flags: number;
}

/** pacer_settings: the one entry of the settings array. */
export type SlotSettings = {
  default_slot: number;
  flags: number;
  generation: number;
  cgroup_selectors: number;
}
export const settings = scalarStruct<SlotSettings>('pacer_settings', [
  ['default_slot', 'u32'],
  ['flags', 'u32'],
  ['generation', 'u32'],
  ['cgroup_selectors', 'u32'],
]);

/** pacer_dst_cache: a value of dst4_cache / dst6_cache. */
export type DstCache = {
  slot: number;
  generation: number;
}
export const dstCache = scalarStruct<DstCache>('pacer_dst_cache', [
  ['slot', 'u32'],
  ['generation', 'u32'],
]);

export type TcpTuning = {
  rto_min_us: number;
  delack_max_us: number;
}
export const tcpTuning = scalarStruct<TcpTuning>('pacer_tcp_tuning', [
  ['rto_min_us', 'u32'],
  ['delack_max_us', 'u32'],
]);

export type TcpPacing = {
  rate_bps: number;
}
export const tcpPacing = scalarStruct<TcpPacing>('pacer_tcp_pacing', [
  ['rate_bps', 'u64'],
]);

/** Socket local storage of sock_ops (not read by the agent; mirrored so the layout test covers every map). */
export type SkPacing = {
  class_id: number;
  applied: number;
  window: number;
  acked_base: number;
}
export const skPacing = scalarStruct<SkPacing>('pacer_sk_pacing', [
  ['class_id', 'u32'],
  ['applied', 'u32'],
  ['window', 'u64'],
  ['acked_base', 'u64'],
]);

/** sock_ops' count of a paced class's sending sockets (program state; mirrored for the layout test). */
export type ClassFlows = {
  window: number;
  prev: number;
  cur: number;
}
export const classFlows = scalarStruct<ClassFlows>('pacer_class_flows', [
  ['window', 'u64'],
  ['prev', 'u32'],
  ['cur', 'u32'],
]);

export type TcpStats = {
  applied: number;
  failed: number;
  last_error: number;
  last_option: number;
}
export const tcpStats = scalarStruct<TcpStats>('pacer_tcp_stats', [
  ['applied', 'u64'],
  ['failed', 'u64'],
  ['last_error', 's32'],
  ['last_option', 'u32'],
]);

/** Keys of the LPM tries: prefixlen (u32, host order) then the address bytes in network order. */
export const lpm4KeySize = 8;
export const lpm6KeySize = 20;
/** Key of dst6_cache (struct pacer_addr6): the 16 address bytes. dst4_cache's key is a __u32 holding the 4 bytes. */
export const addr6KeySize = 16;

export function lpmKey(address: Uint8Array, prefixLength: number): Buffer {
  const buf = Buffer.alloc(4 + address.length);
  buf.writeUInt32LE(prefixLength, 0);
  buf.set(address, 4);
  return buf;
}

export function u32Key(n: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(n, 0);
  return buf;
}

export function u64Key(n: bigint | number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt(n), 0);
  return buf;
}

/** Every struct mirrored here, for the layout test. */
export const LAYOUTS = [classConfig, classState, classStats, delayHist, ifaceStats, settings, dstCache, tcpTuning, tcpPacing, skPacing, classFlows, tcpStats] as const;
