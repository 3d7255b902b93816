/**
 * Structs and map definitions read from a BPF object's BTF (`bpftool btf dump file X -j`), and a
 * comparison of shaper-bpf/src/layout.ts's mirrors with them, for the layout test.
 */
import { execFileSync } from 'node:child_process';
import type { StructLayout } from '../../shaper-bpf/src/layout.js';

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  bitfield_size?: number;
}
interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  encoding?: string;
  members?: BtfMember[];
  vars?: Array<{ type_id: number }>;
}

/** A member resolved through typedefs: its byte offset and width, and what kind of scalar it is. */
export interface BtfField {
  name: string;
  offset: number;
  size: number;
  /** 'u64', 's32', 'u8[16]'…: the same vocabulary as layout.ts. */
  type: string;
  bitfield: boolean;
}
export interface BtfStruct {
  name: string;
  size: number;
  fields: BtfField[];
}
/** A map in the .maps section: the names and sizes of its key and value types. */
export interface BtfMapDef {
  name: string;
  key: { type: string; size: number };
  /** A map of maps' value is the inner map's fd (a u32): `type` is "inner map". */
  value: { type: string; size: number };
  /** A map of maps: the key and value types of the inner map it declares (`__array(values, …)`). */
  inner?: { key: { type: string; size: number }; value: { type: string; size: number } };
}
export interface Btf {
  structs: Map<string, BtfStruct>;
  maps: Map<string, BtfMapDef>;
}

export function readBtf(objectFile: string): Btf {
  const dump = JSON.parse(execFileSync('bpftool', ['btf', 'dump', 'file', objectFile, '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as { types: BtfType[] };
  const byId = new Map(dump.types.map((t) => [t.id, t]));
  const get = (id: number): BtfType => {
    const t = byId.get(id);
    if (!t) throw new Error(`${objectFile}: BTF type ${id} is missing`);
    return t;
  };
  const strip = (t: BtfType): BtfType => (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT'].includes(t.kind) ? strip(get(t.type_id!)) : t);
  const sizeOf = (t: BtfType): number => (t.kind === 'ARRAY' ? t.nr_elems! * sizeOf(strip(get(t.type_id!))) : t.size!);
  const scalar = (t: BtfType): string => {
    if (t.kind === 'INT') return `${t.encoding === 'SIGNED' ? 's' : 'u'}${t.size! * 8}`;
    if (t.kind === 'ARRAY') return `${scalar(strip(get(t.type_id!)))}[${t.nr_elems}]`;
    return `${t.kind.toLowerCase()} ${t.name}`;
  };

  const structs = new Map<string, BtfStruct>();
  for (const t of dump.types) {
    if (t.kind !== 'STRUCT' || t.name === '(anon)') continue;
    const fields = (t.members ?? []).map((m) => {
      const type = strip(get(m.type_id));
      return { name: m.name, offset: m.bits_offset / 8, size: sizeOf(type), type: scalar(type), bitfield: (m.bitfield_size ?? 0) > 0 || m.bits_offset % 8 !== 0 };
    });
    structs.set(t.name, { name: t.name, size: t.size!, fields });
  }

  // Each map is a VAR in the .maps DATASEC whose struct has `key` and `value` members pointing at the types.
  const maps = new Map<string, BtfMapDef>();
  for (const sec of dump.types.filter((t) => t.kind === 'DATASEC' && t.name === '.maps')) {
    for (const v of sec.vars ?? []) {
      const variable = get(v.type_id);
      const def = strip(get(variable.type_id!));
      const pointee = (d: BtfType, member: string, what: string) => {
        const m = d.members?.find((x) => x.name === member);
        if (!m) throw new Error(`${objectFile}: map ${what} declares no ${member} type`);
        const named = get(get(m.type_id).type_id!); // PTR → the declared type (a typedef keeps its name)
        return { type: named.name, size: sizeOf(strip(named)) };
      };
      const values = def.members?.find((x) => x.name === 'values');
      if (values) {
        // __array(values, struct inner): an ARRAY of PTR to the inner map's definition.
        const innerDef = strip(get(get(get(values.type_id).type_id!).type_id!));
        const inner = { key: pointee(innerDef, 'key', `${variable.name} (inner)`), value: pointee(innerDef, 'value', `${variable.name} (inner)`) };
        maps.set(variable.name, { name: variable.name, key: pointee(def, 'key', variable.name), value: { type: 'inner map', size: 4 }, inner });
        continue;
      }
      maps.set(variable.name, { name: variable.name, key: pointee(def, 'key', variable.name), value: pointee(def, 'value', variable.name) });
    }
  }
  return { structs, maps };
}

/** The TS field type as BTF spells it (arrays carry their length). */
function tsType(f: StructLayout<unknown>['fields'][number]): string {
  return f.length !== undefined ? `${f.type}[${f.length}]` : f.type;
}
const WIDTH: Record<string, number> = { u8: 1, u32: 4, s32: 4, u64: 8 };

/** Every difference between a TS layout and the C struct, as readable lines; [] when they agree. */
export function compareLayout(ts: StructLayout<unknown>, c: BtfStruct | undefined): string[] {
  if (!c) return [`struct ${ts.name} is not in the BTF`];
  const out: string[] = [];
  if (ts.size !== c.size) out.push(`${ts.name}: size TS ${ts.size} ≠ C ${c.size}`);
  const names = (fs: ReadonlyArray<{ name: string }>) => fs.map((f) => f.name).join(', ');
  if (names(ts.fields) !== names(c.fields)) out.push(`${ts.name}: fields TS [${names(ts.fields)}] ≠ C [${names(c.fields)}]`);
  for (const f of ts.fields) {
    const cf = c.fields.find((x) => x.name === f.name);
    if (!cf) continue; // already reported by the name list
    const width = (WIDTH[f.type] ?? NaN) * (f.length ?? 1);
    if (cf.bitfield) out.push(`${ts.name}.${f.name}: a bitfield in C`);
    if (f.offset !== cf.offset) out.push(`${ts.name}.${f.name}: offset TS ${f.offset} ≠ C ${cf.offset}`);
    if (width !== cf.size) out.push(`${ts.name}.${f.name}: width TS ${width} ≠ C ${cf.size}`);
    if (tsType(f) !== cf.type) out.push(`${ts.name}.${f.name}: type TS ${tsType(f)} ≠ C ${cf.type}`);
  }
  return out;
}
