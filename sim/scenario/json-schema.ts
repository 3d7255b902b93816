/**
 * The JSON Schema of scenario files, generated from the zod schema (zod 4's toJSONSchema), so an
 * editor with a YAML language server completes and checks a scenario as it is typed. It describes
 * what may be written (the input side: "1gbit" and 1000000000 both pass), not what load.ts makes
 * of it; cross-references (unknown hosts, classes) are still checked only by `pacer sim run`.
 * sim/scenario.schema.json is this output, committed; a test keeps it current.
 */
import { z } from 'zod';
import { scenarioSchema } from './schema.js';

export function scenarioJsonSchema(): Record<string, unknown> {
  // 'any' for what JSON Schema cannot say (the read-only fields dropped by a preprocess step).
  const generated = z.toJSONSchema(scenarioSchema, { io: 'input', unrepresentable: 'any' });
  return { ...generated, title: 'pacer sim scenario', description: 'A scenario for `pacer sim run` (docs/simulator.md).' };
}

/** The committed file's text: stable key order, two-space indent, final newline. */
export function scenarioJsonSchemaText(): string {
  return `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;
}
