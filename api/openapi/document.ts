/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests, so the
 * description cannot drift from what the API accepts.
 */
import { z } from 'zod';
import { classCreateSchema, classReplaceSchema } from '../contract/class.js';
import { HOST_REPORTED_FIELDS, hostRegistrationSchema, hostStatusSchema } from '../contract/host.js';
import { IGNORED_FIELDS } from '../contract/class-read-only.js';
import { tokenCreateSchema } from '../contract/token.js';
import { MAX_JSON_DEPTH } from '../http/json-body.js';

const input = (schema: z.ZodType) => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

const quantity = (unit: string) => ({
  type: 'object',
  properties: { [unit]: { type: 'integer' }, text: { type: 'string' } },
  required: [unit, 'text'],
});

const classJson = {
  type: 'object',
  description: 'A class. Every quantity is its canonical integer with a tc-style string beside it.',
  properties: {
    name: { type: 'string' },
    id: { type: 'integer', description: 'u32 assigned by the API; never changes, never reused' },
    description: { type: 'string' },
    rate: quantity('bitsPerSecond'),
    ceil: { oneOf: [quantity('bitsPerSecond'), { type: 'null' }] },
    burst: { oneOf: [quantity('bytes'), quantity('ns')] },
    horizon: quantity('ns'),
    parent: { type: ['string', 'null'] },
    weight: { type: 'integer' },
    match: {
      type: 'object',
      properties: { marks: { type: 'array', items: { type: 'integer' } }, cgroups: { type: 'array', items: { type: 'string' } }, dst: { type: 'array', items: { type: 'string' } } },
    },
    hosts: { type: 'object', properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } } },
    tcp: { oneOf: [{ type: 'null' }, { type: 'object', properties: { rtoMin: { oneOf: [quantity('ns'), { type: 'null' }] }, delackMax: { oneOf: [quantity('ns'), { type: 'null' }] } } }] },
    ecn: {
      description: 'CE marking: ECT packets of the class that wait longer than threshold are marked; null = no marking',
      oneOf: [{ type: 'null' }, { type: 'object', properties: { threshold: quantity('ns') }, required: ['threshold'] }],
    },
    revision: { type: 'integer' },
    etag: { type: 'string' },
    createdRevision: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
};

const fieldNote = { type: 'object', properties: { path: { type: 'string', description: 'JSON Pointer of the field' }, message: { type: 'string' } }, required: ['path', 'message'] };

/** What POST, PUT and PATCH answer: the class, and the likely mistakes the API accepted in it. */
const classWritten = {
  allOf: [
    { $ref: '#/components/schemas/Class' },
    {
      type: 'object',
      properties: {
        warnings: {
          type: 'array',
          items: fieldNote,
          description:
            'Likely mistakes the API accepted (empty when none): a rate or ceil in a bytes unit spelled like bits ("100mbps" is 800 Mbit/s, as tc reads it), ' +
            'a burst above 0 but under one full-size packet (1500 bytes), a class with no selector and no child (it matches no traffic). docs/budgets-api.md, "Warnings".',
        },
      },
      required: ['warnings'],
    },
  ],
};

const ASSIGNED_NOTE = 'read-only (what GET returns): accepted when it equals the class\'s current value, refused (400) otherwise';
const IGNORED_NOTE = 'read-only (what GET returns): ignored, whatever its value';

/**
 * A write's body also takes the read-only fields GET returns (api/contract/class-read-only.ts,
 * and HOST_REPORTED_FIELDS for hosts), so a GET body can be edited and sent back whole. The
 * services take them off before the schema validates the rest; the document lists them beside it.
 */
function withReadOnlyFields(schema: Record<string, unknown>, fields: Record<string, object>): Record<string, unknown> {
  return { ...schema, properties: { ...(schema.properties as Record<string, unknown>), ...fields } };
}

const ignored = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, { description: IGNORED_NOTE }]));

/** A create ignores what a replace ignores, and refuses the assigned fields (so they are not listed for it). */
const CLASS_IGNORED = ignored(IGNORED_FIELDS);
const CLASS_ASSIGNED = {
  id: { type: 'integer', description: ASSIGNED_NOTE },
  revision: { type: 'integer', description: `${ASSIGNED_NOTE}; a different revision alone is a stale edit: 412, as a stale If-Match` },
  createdRevision: { type: 'integer', description: ASSIGNED_NOTE },
};
const HOST_READ_ONLY = { name: { type: 'string', description: 'read-only: must equal the name in the URL' }, ...ignored(HOST_REPORTED_FIELDS) };

/** The order of the checks of PUT and PATCH (DELETE: 428, then 412, then 409 for a class with children). */
const CHECK_ORDER =
  'Checks, in order: the token (401), the body\'s Content-Type and size (415, 413), the role (403), the class name in the URL (400), If-Match present (428), If-Match against the class (412, ' +
  'whatever else is wrong with the body, malformed JSON included), a body that is not JSON or nests too deep (400), the read-only fields of the body (a differing revision 412, any other difference 400, one message naming each), ' +
  'the body (400 naming each field), the rules across classes (409).';

const problem = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
    conflicts: { type: 'array', items: { type: 'string' } },
  },
};

/** A token as the API shows it (TokenRecord): never its secret, except `token` once, in the answer to its creation. */
const token = {
  type: 'object',
  properties: {
    id: { type: 'string', pattern: '^tok_[0-9a-f]{12}$' },
    name: { type: 'string' },
    role: { type: 'string', enum: ['admin', 'editor', 'viewer', 'agent'] },
    host: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    createdBy: { type: 'string' },
    revokedAt: { type: ['string', 'null'], format: 'date-time' },
    expiresAt: { type: ['string', 'null'], format: 'date-time', description: 'when the token stops working (401 from then on); null: never' },
  },
  required: ['id', 'name', 'role', 'host', 'createdAt', 'createdBy', 'revokedAt', 'expiresAt'],
};

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ 'application/json': { schema } });
const ok = (description: string, schema?: object) => ({ description, ...(schema ? { content: json(schema) } : {}) });
/** Where a token is checked (401), the failed-authentication lock-out (429) may answer too. */
const errors = (...codes: number[]) =>
  Object.fromEntries(
    (codes.includes(401) ? [...codes, 429].sort() : codes).map((c) => [String(c), { description: 'problem', content: { 'application/problem+json': { schema: ref('Problem') } } }]),
  );
const ifMatch = { name: 'If-Match', in: 'header', required: true, schema: { type: 'string' }, description: 'the class ETag, e.g. "42"' };
const pathParam = (name: string) => ({ name, in: 'path', required: true, schema: { type: 'string' } });

export function openApiDocument(version: string): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'pacer API',
      version,
      description:
        'Per-class bandwidth budgets for EDT pacing. Units follow tc: kbit = kilobits/s, kbps = kiloBYTES/s. ' +
        `Request bodies are application/json (PATCH also application/merge-patch+json) in UTF-8, nested at most ${MAX_JSON_DEPTH} levels; ` +
        'free text holds no control characters and label keys are never __proto__, constructor or prototype (docs/budgets-api.md).',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        ClassCreate: withReadOnlyFields(input(classCreateSchema), CLASS_IGNORED),
        ClassReplace: withReadOnlyFields(input(classReplaceSchema), { ...CLASS_ASSIGNED, ...CLASS_IGNORED }),
        Class: classJson,
        ClassWritten: classWritten,
        HostRegistration: withReadOnlyFields(input(hostRegistrationSchema), HOST_READ_ONLY),
        HostStatus: input(hostStatusSchema),
        TokenCreate: input(tokenCreateSchema),
        Token: token,
        Problem: problem,
      },
    },
    paths: {
      '/healthz': { get: { security: [], summary: 'Liveness', responses: { 200: ok('alive') } } },
      '/readyz': { get: { summary: 'Readiness: the store answers and can write (503 while its disk is full)', responses: { 200: ok('ready'), ...errors(503) } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { 200: ok('text exposition format') } } },
      '/v1/classes': {
        get: {
          summary: 'List classes (by name), optionally those that apply to a host',
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 }, description: 'decimal digits only' },
            { name: 'after', in: 'query', schema: { type: 'string' }, description: 'the `next` of the previous page' },
            { name: 'label', in: 'query', schema: { type: 'array', items: { type: 'string' } }, style: 'form', explode: true, description: 'k=v, repeatable' },
            { name: 'host', in: 'query', schema: { type: 'string' }, description: 'a registered host: use its labels' },
          ],
          responses: {
            200: ok('a page', { type: 'object', properties: { revision: { type: 'integer' }, items: { type: 'array', items: ref('Class') }, next: { type: ['string', 'null'] } } }),
            ...errors(400, 401, 403),
          },
        },
        post: {
          summary: 'Create a class',
          description:
            'The body may be a class as GET returns it with another name: `etag`, `createdAt`, `updatedAt` and `warnings` are ignored, but `id`, `revision` and `createdRevision` ' +
            'are refused (400 saying to remove them: the API assigns them), and a name that exists is 409 saying how to change that class.',
          requestBody: { required: true, content: json(ref('ClassCreate')) },
          responses: { 201: ok('created', ref('ClassWritten')), ...errors(400, 401, 403, 409, 413, 415, 507) },
        },
      },
      '/v1/classes/{name}': {
        parameters: [pathParam('name')],
        get: { summary: 'Get a class (ETag header)', responses: { 200: ok('the class', ref('Class')), ...errors(400, 401, 403, 404) } },
        put: {
          summary: 'Replace a class',
          description: `The body may be the class as GET returns it, edited: see the read-only fields of ClassReplace. ${CHECK_ORDER}`,
          parameters: [ifMatch],
          requestBody: { required: true, content: json(ref('ClassReplace')) },
          responses: { 200: ok('replaced', ref('ClassWritten')), ...errors(400, 401, 403, 404, 409, 412, 413, 415, 428, 507) },
        },
        patch: {
          summary: 'Change fields of a class (JSON merge patch, RFC 7396)',
          description: `The patch may carry read-only fields as PUT's body may. ${CHECK_ORDER}`,
          parameters: [ifMatch],
          requestBody: { required: true, content: { 'application/merge-patch+json': { schema: { type: 'object' } }, 'application/json': { schema: { type: 'object' } } } },
          responses: { 200: ok('changed', ref('ClassWritten')), ...errors(400, 401, 403, 404, 409, 412, 413, 415, 428, 507) },
        },
        delete: { summary: 'Delete a class', parameters: [ifMatch], responses: { 204: ok('deleted'), ...errors(400, 401, 403, 404, 409, 412, 428, 507) } },
      },
      '/v1/watch': {
        get: {
          summary: 'Server-Sent Events of class changes after a revision',
          description:
            'Events: `class` (id = revision, data = {revision, action, name, class}), then `ready` once caught up. A comment line is sent as heartbeat. 410 when the revision is outside the kept history: list again. ' +
            'History is replayed in pages at the pace the client reads. A client that falls more than `--watch-slow-bytes` (4 MiB) of events behind is disconnected and resumes with Last-Event-ID; a revoked token\'s streams are ended. ' +
            '429 when the token already holds `--watch-per-token` (32) streams, 503 when the API holds `--watch-max` (10,000); both carry Retry-After.',
          parameters: [
            { name: 'since', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'a revision; decimal digits only' },
            { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } },
          ],
          responses: { 200: { description: 'event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors(400, 401, 403, 410, 429, 503) },
        },
      },
      '/v1/hosts': { get: { summary: 'List hosts, with `stale` when no heartbeat came recently', responses: { 200: ok('hosts'), ...errors(401, 403) } } },
      '/v1/hosts/{name}': {
        parameters: [pathParam('name')],
        get: { summary: 'Get a host', responses: { 200: ok('host'), ...errors(400, 401, 403, 404) } },
        put: { summary: 'Register a host (agent token of that host, or admin); the body may be the host as GET returns it, see HostRegistration', requestBody: { required: true, content: json(ref('HostRegistration')) }, responses: { 200: ok('host'), ...errors(400, 401, 403, 413, 415, 507) } },
        delete: { summary: 'Forget a host', responses: { 204: ok('deleted'), ...errors(400, 401, 403, 404, 507) } },
      },
      '/v1/hosts/{name}/status': {
        parameters: [pathParam('name')],
        put: { summary: "An agent's heartbeat", requestBody: { required: true, content: json(ref('HostStatus')) }, responses: { 200: ok('host'), ...errors(400, 401, 403, 404, 413, 415, 507) } },
      },
      '/v1/audit': {
        get: {
          summary: 'Who changed what, newest first',
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, description: 'decimal digits only' },
            { name: 'before', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'a revision; decimal digits only' },
            { name: 'kind', in: 'query', schema: { type: 'string', enum: ['class', 'token'] } },
            { name: 'name', in: 'query', schema: { type: 'string' } },
          ],
          responses: { 200: ok('changes'), ...errors(400, 401, 403) },
        },
      },
      '/v1/tokens': {
        get: { summary: 'List tokens (never their secrets), expired and revoked ones too', responses: { 200: ok('tokens', { type: 'object', properties: { items: { type: 'array', items: ref('Token') } }, required: ['items'] }), ...errors(401, 403) } },
        post: {
          summary: 'Create a token; the secret is in this response only',
          description:
            'With `ttlSeconds` (1 s to 3650 days) the token expires that long after its creation: `expiresAt` (ISO 8601) says when, here and in GET /v1/tokens. ' +
            'From then on it is answered 401, with a detail that says when it expired, and counts as a failed authentication; its open watch streams end. ' +
            'Without `ttlSeconds` it never expires (`expiresAt: null`), as the first admin token and PACER_ADMIN_TOKEN never do.',
          requestBody: { required: true, content: json(ref('TokenCreate')) },
          responses: { 201: ok('token with its secret in `token`', { allOf: [ref('Token'), { type: 'object', properties: { token: { type: 'string' } }, required: ['token'] }] }), ...errors(400, 401, 403, 413, 415, 507) },
        },
      },
      '/v1/tokens/{id}': { parameters: [pathParam('id')], delete: { summary: 'Revoke a token', responses: { 200: ok('revoked', ref('Token')), ...errors(400, 401, 403, 404, 409, 507) } } },
      '/v1/backup': {
        get: {
          summary: 'A consistent copy of the store, taken while the API serves (SQLite database file; header Pacer-Backup-Revision: the revision it holds). The token key beside the store is not included: copy it from disk (`pacer backup` does)',
          responses: { 200: { description: 'the copy', content: { 'application/vnd.sqlite3': { schema: { type: 'string', format: 'binary' } } } }, ...errors(401, 403) },
        },
      },
      '/v1/openapi.json': { get: { summary: 'This document', responses: { 200: ok('OpenAPI 3.1') } } },
    },
  };
}
