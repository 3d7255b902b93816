/**
 * Request bodies: JSON in UTF-8, nested at most MAX_JSON_DEPTH levels, checked before anything
 * parses or walks them.
 */
import express, { type Request, type RequestHandler } from 'express';
import { InvalidInput, UnsupportedMediaType } from '../errors.js';

/**
 * Objects and arrays inside one another, the body itself being level 1. The deepest body the API
 * takes is 3 levels (`{"hosts": {"matchLabels": {...}}}`); 32 leaves room and bounds every
 * recursive walk (zod, the JSON merge patch) far below the stack's depth.
 */
export const MAX_JSON_DEPTH = 32;

const JSON_TYPE = 'application/json';
/** RFC 7396; only PATCH takes it. */
const MERGE_PATCH_TYPE = 'application/merge-patch+json';

/** RFC 9110 token: a parameter name. */
const PARAMETER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(?:"([^"\\]*)"|([!#$%&'*+.^_`|~0-9A-Za-z-]+))$/;

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The reason a Content-Type is refused, or undefined when it is accepted: the media type must be
 * one the method takes, and the only parameter allowed is charset=utf-8 (RFC 8259 §8.1: JSON
 * exchanged between systems is UTF-8; body-parser would otherwise decode UTF-16 and others).
 */
function contentTypeProblem(header: string | undefined, types: readonly string[]): string | undefined {
  const expected = types.join(' or ');
  if (header === undefined) return `send the body as ${expected}, with a Content-Type header saying so`;
  const [essence = '', ...parameters] = header.split(';');
  if (!types.includes(essence.trim().toLowerCase())) return `send the body as ${expected}, not ${JSON.stringify(header)}`;
  for (const raw of parameters) {
    const p = PARAMETER.exec(raw.trim());
    if (!p) return `the Content-Type ${JSON.stringify(header)} is malformed: each parameter after ";" is name=value; send ${types[0]} or ${types[0]}; charset=utf-8`;
    const [, name = '', quoted, bare] = p;
    if (name.toLowerCase() !== 'charset') return `the Content-Type parameter "${name}" is not supported; the only parameter accepted is charset=utf-8`;
    const charset = (quoted ?? bare ?? '').toLowerCase();
    if (charset !== 'utf-8') return `the body must be UTF-8 (RFC 8259), not charset=${quoted ?? bare}; send it as UTF-8 with charset=utf-8 or no charset`;
  }
  return undefined;
}

/** A request with a body must say it is JSON (or, for PATCH, a JSON merge patch) in UTF-8. */
const requireJson: RequestHandler = (req, _res, next) => {
  if (hasBody(req)) {
    const problem = contentTypeProblem(req.get('content-type'), req.method === 'PATCH' ? [JSON_TYPE, MERGE_PATCH_TYPE] : [JSON_TYPE]);
    if (problem) throw new UnsupportedMediaType(problem);
  }
  next();
};

/**
 * Throws when the raw body nests deeper than MAX_JSON_DEPTH. It runs on the bytes before
 * JSON.parse, in one pass without recursion; brackets inside strings do not count. UTF-8 never
 * uses a byte below 0x80 inside a multi-byte character, so scanning bytes is exact.
 */
export function refuseDeepJson(body: Uint8Array): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const b = body[i];
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) {
      inString = true;
    } else if (b === 0x7b || b === 0x5b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw new InvalidInput(`the request body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep; at most ${MAX_JSON_DEPTH} levels are accepted`, [
          { path: '', message: `nested more than ${MAX_JSON_DEPTH} levels` },
        ]);
      }
    } else if (b === 0x7d || b === 0x5d) {
      depth--;
    }
  }
}

/**
 * A body that is not JSON (or nests too deep), kept as the request's body instead of failing it at
 * once when the request is a conditional write: its route answers the precondition first, so a
 * stale If-Match is 412 whatever is wrong with the body (docs/budgets-api.md), and then `error`.
 */
export class UnreadableBody {
  constructor(readonly error: InvalidInput) {}
}

/** The InvalidInput for a body the parser could not read as JSON; undefined for other failures. */
export function unreadable(err: { type?: string; message?: string }): InvalidInput | undefined {
  if (err instanceof InvalidInput) return err; // refuseDeepJson, from the parser's verify step
  if (err.type === 'entity.parse.failed') return new InvalidInput(`the request body is not valid JSON: ${err.message}`, [{ path: '', message: 'malformed JSON' }]);
  return undefined;
}

/**
 * The body parsers: the content type is checked first, the depth before parsing. `conditional`:
 * the requests whose unreadable body becomes an UnreadableBody for the route to answer.
 */
export function jsonBody(limitBytes: number, conditional: (req: Request) => boolean = () => false): RequestHandler[] {
  const parse = express.json({ limit: limitBytes, type: [JSON_TYPE, MERGE_PATCH_TYPE], strict: false, verify: (_req, _res, body) => refuseDeepJson(body) });
  const parseOrKeep: RequestHandler = (req, res, next) =>
    parse(req, res, (err?: unknown) => {
      const kept = err && conditional(req) ? unreadable(err as { type?: string }) : undefined;
      if (!kept) return next(err);
      req.body = new UnreadableBody(kept);
      next();
    });
  return [requireJson, parseOrKeep];
}
