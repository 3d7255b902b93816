/**
 * The fields of a class that the API manages, as they come back in a request body. A client
 * that GETs a class, edits it and PUTs it back (`pacer class get web --json`, edit,
 * `pacer class set -f`) sends them all; the API takes them rather than refusing the round trip:
 *
 * - `name`, `id`, `revision` and `createdRevision` say which class, and which version of it, the
 *   body is. They are accepted when they equal the class's current values. One that differs is
 *   refused, all of them named in one message; a `revision` alone that differs is a stale edit,
 *   answered like a stale If-Match (412).
 * - `etag`, `createdAt`, `updatedAt` (and a write's `warnings`) are ignored: the ETag is the
 *   revision again, and the others change on every write or describe an answer, not a class.
 *
 * A create has no current class: there `id`, `revision` and `createdRevision` are refused (the
 * API assigns them) and the ignored fields are ignored. docs/budgets-api.md has the decision.
 */
import type { ClassRecord } from './class.js';

/** Assigned by the API; a body may repeat them only with their current values. */
export const ASSIGNED_FIELDS = ['id', 'revision', 'createdRevision'] as const;
export type AssignedField = (typeof ASSIGNED_FIELDS)[number];

/** Dropped from a body whatever their value. */
export const IGNORED_FIELDS = ['etag', 'createdAt', 'updatedAt', 'warnings'] as const;

export interface ReadOnlySplit {
  /** The body without its read-only fields: what the class schema validates (the body itself when it is not an object). */
  spec: unknown;
  /** The assigned fields the body carried, as sent. */
  assigned: Partial<Record<AssignedField, unknown>>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Separates the read-only fields from the rest of a body. `name` stays: the class schema checks it. */
export function splitReadOnly(body: unknown): ReadOnlySplit {
  if (!isPlainObject(body)) return { spec: body, assigned: {} };
  // Null prototype: a body key "__proto__" stays an own key that validation refuses.
  const spec: Record<string, unknown> = Object.create(null);
  const assigned: ReadOnlySplit['assigned'] = {};
  for (const [key, value] of Object.entries(body)) {
    if ((ASSIGNED_FIELDS as readonly string[]).includes(key)) assigned[key as AssignedField] = value;
    else if (!(IGNORED_FIELDS as readonly string[]).includes(key)) spec[key] = value;
  }
  return { spec, assigned };
}

export interface ReadOnlyDifference {
  field: 'name' | AssignedField;
  sent: unknown;
  is: string | number;
}

/** The read-only fields of a body (its `name` and assigned fields) whose values are not the current class's, in field order. */
export function readOnlyDifferences(body: unknown, assigned: ReadOnlySplit['assigned'], current: ClassRecord): ReadOnlyDifference[] {
  const out: ReadOnlyDifference[] = [];
  const name = isPlainObject(body) ? body.name : undefined;
  if (name !== undefined && name !== current.name) out.push({ field: 'name', sent: name, is: current.name });
  for (const field of ASSIGNED_FIELDS) {
    if (field in assigned && assigned[field] !== current[field]) out.push({ field, sent: assigned[field], is: current[field] });
  }
  return out;
}

/** A revision a client could have read: then a different one is a stale edit rather than a wrong value. */
export function isRevision(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
