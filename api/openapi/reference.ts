/**
 * Renders the OpenAPI document as the Markdown API reference in docs/api.md.
 * `npm run docs:api` rewrites the file; a test fails when it is out of date.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from './document.js';

interface Operation {
  summary?: string;
  description?: string;
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string }>;
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> };
  responses: Record<string, { description: string }>;
  security?: unknown[];
}

export const REFERENCE_FILE = 'docs/api.md';

export function renderReference(doc: ReturnType<typeof openApiDocument> & Record<string, any>): string {
  const lines = [
    '# API reference',
    '',
    `<!-- Generated from the OpenAPI document by \`npm run docs:api\`; do not edit by hand. -->`,
    '',
    doc.info.description,
    '',
    'Every endpoint but `/healthz` and the `/docs` page needs `Authorization: Bearer <token>`. Errors are',
    '`application/problem+json` (RFC 9457) with `errors: [{path, message}]` naming each offending field.',
    'The live document is at `/v1/openapi.json`, with an interactive UI at `/docs`.',
    '',
  ];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters') continue;
      lines.push(`## ${method.toUpperCase()} ${path}`, '', op.summary ?? '', '');
      if (op.description) lines.push(op.description, '');
      if (op.security?.length === 0) lines.push('No token needed.', '');
      const params = [...((item.parameters as unknown as Operation['parameters']) ?? []), ...(op.parameters ?? [])];
      if (params.length) {
        lines.push('| parameter | in | required | notes |', '|---|---|---|---|');
        for (const p of params) lines.push(`| \`${p.name}\` | ${p.in} | ${p.required ? 'yes' : 'no'} | ${p.description ?? ''} |`);
        lines.push('');
      }
      if (op.requestBody) {
        const types = Object.entries(op.requestBody.content).map(([type, c]) => `\`${type}\`${c.schema.$ref ? ` (${c.schema.$ref.split('/').pop()})` : ''}`);
        lines.push(`Body: ${types.join(', ')}`, '');
      }
      lines.push(`Responses: ${Object.entries(op.responses).map(([code, r]) => `${code} ${r.description}`).join('; ')}`, '');
    }
  }
  lines.push('## Schemas', '');
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    lines.push(`### ${name}`, '', '```json', JSON.stringify(schema, null, 2), '```', '');
  }
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(REFERENCE_FILE, renderReference(openApiDocument('0.1.0') as any));
  process.stdout.write(`wrote ${REFERENCE_FILE}\n`);
}
