/** Validation at the edge: a zod failure becomes a 400 that names every offending field. */
import type { z } from 'zod';
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
