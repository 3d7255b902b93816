/** Validation at the edge: a zod failure becomes a 400 that names every offending field. */
import { z } from 'zod';
import { jsonPointer, type FieldError } from '../contract/problem.js';
import { InvalidInput } from '../errors.js';

export function fieldErrors(error: z.ZodError): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: jsonPointer([...issue.path, key]), message: `unknown field "${key}"` });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // A quantity accepts a string, an integer or an object; a message per branch helps nobody.
      out.push({ path: jsonPointer(issue.path), message: 'expected a string with a unit (like "2gbit" or "10ms"), an integer, or the object the API returns' });
    } else {
      out.push({ path: jsonPointer(issue.path), message: issue.message });
    }
  }
  return out;
}

export function parse<S extends z.ZodType>(schema: S, value: unknown, what = 'request body'): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const errors = fieldErrors(result.error);
    throw new InvalidInput(`the ${what} is invalid: ${errors.map((e) => `${e.path || '(root)'}: ${e.message}`).join('; ')}`, errors);
  }
  return result.data;
}

/**
 * An integer in a query string (or a header): decimal digits only. Number() would take "0x10",
 * "1e3" and " 7 ", and turn "abc" into NaN; none of them is what the client meant to send.
 */
export function queryInteger(min: number, max = Number.MAX_SAFE_INTEGER) {
  const accepted = max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
  return z.string().transform((text, ctx) => {
    const n = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
    if (n >= min && n <= max) return n;
    ctx.addIssue({ code: 'custom', message: `expected ${accepted}, written in decimal digits (like ${min}); got ${JSON.stringify(text)}` });
    return z.NEVER;
  });
}
