/**
 * ESM resolve hook (node:module register) that appends every resolved URL to a file, synchronously,
 * before the import proceeds: so the list is complete even when the program exits at once
 * (commander's --version). Used by test/support/module-trace.ts.
 */
import { appendFileSync } from 'node:fs';

let out = '';

export function initialize(data: { out: string }): void {
  out = data.out;
}

export async function resolve(
  specifier: string,
  context: unknown,
  next: (specifier: string, context: unknown) => Promise<{ url: string }>,
): Promise<{ url: string }> {
  const resolved = await next(specifier, context);
  appendFileSync(out, `${resolved.url}\n`);
  return resolved;
}
