/**
 * RFC 9457 problem details: the one error shape every pacer HTTP response uses.
 * `errors` names each offending field by its JSON path, so a client can point at it.
 */
export interface FieldError {
  /** JSON path of the offending field, e.g. "/match/dst/2"; "" for the body as a whole. */
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  errors?: FieldError[];
  /** Other classes involved in a conflict (selector claimed twice, parent over-subscribed…). */
  conflicts?: string[];
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Joins a zod-style path into a JSON Pointer (RFC 6901). */
export function jsonPointer(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}
