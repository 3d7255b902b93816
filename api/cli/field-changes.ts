/**
 * Which fields of a class (or token) changed between two states, in words: `rate 10mbit → 20mbit`,
 * `ceil <none> → 40mbit`. For `pacer audit` and `pacer class watch` (issue 11). Bookkeeping fields
 * (revision, etag, timestamps, id) are left out: they change with every write.
 */
const BOOKKEEPING = new Set(['revision', 'createdRevision', 'etag', 'createdAt', 'updatedAt', 'id']);

const isQuantity = (v: unknown): v is { text: string } => typeof v === 'object' && v !== null && typeof (v as { text?: unknown }).text === 'string';
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !isQuantity(v);

/** A value as a person reads it: a quantity by its text, a list joined; nothing, '', [] and {} all as <none>. */
export function fieldText(v: unknown): string {
  if (v === null || v === undefined || v === '') return '<none>';
  if (Array.isArray(v)) return v.length === 0 ? '<none>' : v.map(fieldText).join(',');
  if (isQuantity(v)) return v.text;
  if (isRecord(v)) return Object.keys(v).length === 0 ? '<none>' : JSON.stringify(v, (_k, x: unknown) => (isQuantity(x) ? x.text : x));
  return String(v);
}

/**
 * `field before → after` for each field that differs, nested objects by their dotted paths
 * (`match.dst 10.0.0.0/8 → 10.0.0.0/8,192.168.0.0/16`).
 */
export function fieldChanges(before: unknown, after: unknown, prefix = ''): string[] {
  const a = isRecord(before) ? before : {};
  const b = isRecord(after) ? after : {};
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !BOOKKEEPING.has(k)).sort();
  return keys.flatMap((k) => {
    const path = prefix + k;
    if ((isRecord(a[k]) || a[k] == null) && (isRecord(b[k]) || b[k] == null) && (isRecord(a[k]) || isRecord(b[k]))) return fieldChanges(a[k], b[k], `${path}.`);
    return fieldText(a[k]) === fieldText(b[k]) ? [] : [`${path} ${fieldText(a[k])} → ${fieldText(b[k])}`];
  });
}
