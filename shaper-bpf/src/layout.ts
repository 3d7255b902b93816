/**
 * The TypeScript mirror of shaper-bpf/bpf/pacer.h: each struct's fields, named after their C
 * counterparts, with their offsets and the struct's size. A kernel test compares these with the
 * BTF of the compiled object, so a change on one side that is not made on the other fails.
 *
 * All integers are little-endian (x86_64 and arm64). u64 values are read as numbers: every u64 in
 * these maps (rates, nanoseconds, counters) stays below 2^53 in practice, and reading one above
 * throws instead of rounding.
 */

type FieldType = 'u8' | 'u32' | 's32' | 'u64';
interface Field {
  name: string;
  type: FieldType;
  offset: number;
  /** For byte arrays. */
  length?: number;
}

export interface StructLayout<T> {
  name: string;
  size: number;
  fields: Field[];
  encode(value: T): Buffer;
  decode(buf: Buffer, offset?: number): T;
}

function readU64(buf: Buffer, offset: number, field: string): number {
  const v = buf.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${field} = ${v} does not fit a safe integer`);
  return Number(v);
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
  return {
    name,
    size,
    fields,
    encode(value: T): Buffer {
      const buf = Buffer.alloc(size);
      for (const f of fields) {
        const v = value[f.name as keyof T] as number;
        if (!Number.isInteger(v)) throw new TypeError(`${name}.${f.name} must be an integer, got ${v}`);
        if (f.type === 'u64') buf.writeBigUInt64LE(BigInt(v), f.offset);
        else if (f.type === 'u32') buf.writeUInt32LE(v, f.offset);
        else buf.writeInt32LE(v, f.offset);
      }
      return buf;
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

export type ClassConfig = {
  rate_bps: number;
  burst_ns: number;
  horizon_ns: number;
  ecn_ns: number;
  parent_id: number;
  flags: number;
}
export const classConfig = scalarStruct<ClassConfig>('pacer_class_config', [
  ['rate_bps', 'u64'],
  ['burst_ns', 'u64'],
  ['horizon_ns', 'u64'],
  ['ecn_ns', 'u64'],
  ['parent_id', 'u32'],
  ['flags', 'u32'],
]);

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
  contention_drops: number;
}
export const classStats = scalarStruct<ClassStats>('pacer_class_stats', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
  ['delayed', 'u64'],
  ['delay_ns', 'u64'],
  ['horizon_drops', 'u64'],
  ['ce_marks', 'u64'],
  ['contention_drops', 'u64'],
]);

export type IfaceStats = {
  unclassified_packets: number;
  unclassified_bytes: number;
}
export const ifaceStats = scalarStruct<IfaceStats>('pacer_iface_stats', [
  ['unclassified_packets', 'u64'],
  ['unclassified_bytes', 'u64'],
]);

export type Settings = {
  default_class: number;
  flags: number;
}
export const settings = scalarStruct<Settings>('pacer_settings', [
  ['default_class', 'u32'],
  ['flags', 'u32'],
]);

export type TcpTuning = {
  rto_min_us: number;
  delack_max_us: number;
}
export const tcpTuning = scalarStruct<TcpTuning>('pacer_tcp_tuning', [
  ['rto_min_us', 'u32'],
  ['delack_max_us', 'u32'],
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
export const LAYOUTS = [classConfig, classState, classStats, ifaceStats, settings, tcpTuning, tcpStats] as const;
