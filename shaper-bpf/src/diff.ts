/**
 * The minimal change between two versions of a map: what to write and what to delete.
 * Pure; the datapath applies it.
 */
import { isDeepStrictEqual } from 'node:util';

export interface MapDiff<K, V> {
  upserts: Array<[K, V]>;
  deletes: K[];
}

export function diffMaps<K, V>(actual: ReadonlyMap<K, V>, desired: ReadonlyMap<K, V>): MapDiff<K, V> {
  const upserts: Array<[K, V]> = [];
  const deletes: K[] = [];
  for (const [k, v] of desired) {
    if (!actual.has(k) || !isDeepStrictEqual(actual.get(k), v)) upserts.push([k, v]);
  }
  for (const k of actual.keys()) if (!desired.has(k)) deletes.push(k);
  return { upserts, deletes };
}

export function isEmpty(d: MapDiff<unknown, unknown>): boolean {
  return d.upserts.length === 0 && d.deletes.length === 0;
}
