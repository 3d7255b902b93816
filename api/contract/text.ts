/**
 * Free text and maps that come from clients: what they may hold.
 *
 * - Free text (descriptions, token names, cgroup paths, what agents report) holds no control
 *   characters: C0 (U+0000–U+001F, tab and newline included), DEL (U+007F) and C1
 *   (U+0080–U+009F). A terminal acts on them (ESC starts a sequence that can rewrite what an
 *   operator sees, CR overwrites a line), so they are refused at the edge, and the CLI escapes
 *   any that reach it anyway (escapeControl).
 * - Map keys (labels) are never `__proto__`, `constructor` or `prototype`: in a plain object they
 *   name the prototype and its members, not data. Such maps are also built without a prototype.
 */
import { z } from 'zod';
export { escapeControl } from './control-chars.js';

const NO_CONTROL = /^[^\u0000-\u001f\u007f-\u009f]*$/;

export const RESERVED_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** A string of at most `max` characters without control characters; `what` names the field in the message. */
export function plainText(what: string, max: number) {
  return z
    .string()
    .max(max, `${what} is at most ${max} characters`)
    .regex(NO_CONTROL, `${what} must not contain control characters (U+0000–U+001F such as NUL, tab, newline, CR and ESC; U+007F; U+0080–U+009F)`);
}

/** Issues for reserved keys of a map, at the key's path; runs on the raw input, before anything copies it. */
export function refuseReservedKeys(what: string) {
  return (value: unknown, ctx: z.RefinementCtx): unknown => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    for (const key of Object.keys(value)) {
      if (RESERVED_KEYS.includes(key)) {
        ctx.addIssue({ code: 'custom', path: [key], input: value, message: `"${key}" is reserved and cannot be a ${what} (nor can ${RESERVED_KEYS.filter((k) => k !== key).map((k) => `"${k}"`).join(' or ')})` });
      }
    }
    return value;
  };
}

/** A copy of a string map without a prototype, keys in byte order (so equal maps print equal). */
export function nullPrototypeMap(r: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const key of Object.keys(r).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) out[key] = r[key]!;
  return out;
}
