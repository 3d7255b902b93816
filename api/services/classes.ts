/**
 * Class operations: validation against the whole set, optimistic concurrency and the write.
 * Every check runs inside the store's write, so two writers can never both pass it.
 */
import {
  classCreateSchema,
  classReplaceSchema,
  selectsHost,
  specToInput,
  toSpec,
  type ClassRecord,
  type ClassSpec,
} from '../contract/class.js';
import { checkClass, type ClassIndex } from '../contract/consistency.js';
import { etagOf, parseIfMatch } from '../contract/revision.js';
import { Conflict, InvalidInput, NotFound, PreconditionFailed, PreconditionRequired } from '../errors.js';
import { parse } from '../http/validate.js';
import type { Store } from '../store/store.js';

export interface ClassListQuery {
  /** Only classes whose host selector matches a host with these labels. */
  labels?: Record<string, string>;
  /** Page after this class name (names sort in byte order). */
  after?: string;
  limit: number;
}

export class ClassService {
  constructor(private readonly store: Store) {}

  async list(query: ClassListQuery): Promise<{ revision: number; items: ClassRecord[]; next: string | null }> {
    const { revision, classes } = await this.store.listClasses();
    const matching = classes
      .filter((c) => query.labels === undefined || selectsHost(c, query.labels))
      .filter((c) => query.after === undefined || c.name > query.after)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    const items = matching.slice(0, query.limit);
    const next = matching.length > query.limit ? items[items.length - 1]!.name : null;
    return { revision, items, next };
  }

  async get(name: string): Promise<ClassRecord> {
    const c = await this.store.getClass(name);
    if (!c) throw new NotFound(`class "${name}" does not exist`);
    return c;
  }

  async create(body: unknown, actor: string): Promise<ClassRecord> {
    const input = parse(classCreateSchema, body);
    const spec = toSpec(input.name, input);
    const { record } = await this.store.writeClass(spec.name, actor, (current, all) => {
      if (current) throw new Conflict(`class "${spec.name}" already exists (id ${current.id}); change it with PUT or PATCH and If-Match: ${etagOf(current.revision)}`, [{ path: '/name', message: 'already exists' }], [spec.name]);
      return checked(spec, all);
    });
    return record!;
  }

  async replace(name: string, body: unknown, ifMatch: string | undefined, actor: string): Promise<ClassRecord> {
    requireIfMatch(ifMatch);
    const input = parse(classReplaceSchema, body);
    if (input.name !== undefined && input.name !== name) {
      throw new InvalidInput(`the body names class "${input.name}" but the URL names "${name}"; a class cannot be renamed`, [{ path: '/name', message: 'must equal the name in the URL' }]);
    }
    const spec = toSpec(name, input);
    const { record } = await this.store.writeClass(name, actor, (current, all) => {
      matchPrecondition(name, current, ifMatch);
      return checked(spec, all);
    });
    return record!;
  }

  /** JSON merge patch (RFC 7396) onto the class's spec in input form, then validated as a whole. */
  async patch(name: string, body: unknown, ifMatch: string | undefined, actor: string): Promise<ClassRecord> {
    requireIfMatch(ifMatch);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new InvalidInput('a PATCH body is a JSON object (RFC 7396 merge patch)', [{ path: '', message: 'expected an object' }]);
    }
    const { record } = await this.store.writeClass(name, actor, (current, all) => {
      const base = matchPrecondition(name, current, ifMatch);
      const merged = mergePatch(specToInput(base), body) as Record<string, unknown>;
      const input = parse(classReplaceSchema, merged, 'class after the patch');
      if (input.name !== undefined && input.name !== name) {
        throw new InvalidInput('a class cannot be renamed', [{ path: '/name', message: 'must equal the name in the URL' }]);
      }
      return checked(toSpec(name, input), all);
    });
    return record!;
  }

  async remove(name: string, ifMatch: string | undefined, actor: string): Promise<void> {
    requireIfMatch(ifMatch);
    await this.store.writeClass(name, actor, (current, all) => {
      matchPrecondition(name, current, ifMatch);
      const children = [...all.childrenOf(name)].map((c) => c.name);
      if (children.length > 0) {
        throw new Conflict(`class "${name}" is the parent of ${children.join(', ')}; delete or re-parent them first`, [], children);
      }
      return null;
    });
  }
}

function requireIfMatch(ifMatch: string | undefined): asserts ifMatch is string {
  if (ifMatch === undefined) {
    throw new PreconditionRequired('changing a class needs If-Match with its ETag (GET it first; the ETag is also its "etag" field)');
  }
}

/** RFC 9110 13.1.1: If-Match on a resource that does not exist is false, so 412, not 404. */
function matchPrecondition(name: string, current: ClassRecord | undefined, ifMatch: string): ClassRecord {
  if (!current) throw new PreconditionFailed(`class "${name}" does not exist (it may have been deleted since you read it)`);
  const m = parseIfMatch(ifMatch);
  if (!m.any && !m.revisions.includes(current.revision)) {
    throw new PreconditionFailed(`class "${name}" changed: its ETag is now "${current.revision}", not ${ifMatch}; GET it again and retry`);
  }
  return current;
}

/** Returns the spec if the set with it in place breaks no cross-class rule; throws a 409 naming the classes otherwise. */
function checked(spec: ClassSpec, all: ClassIndex): ClassSpec {
  const conflicts = checkClass(spec, all);
  if (conflicts.length === 0) return spec;
  throw new Conflict(
    conflicts.map((c) => c.message).join('; '),
    conflicts.map((c) => ({ path: c.class === spec.name ? c.path : '', message: c.class === spec.name ? c.message : `class "${c.class}": ${c.message}` })),
    [...new Set(conflicts.flatMap((c) => c.classes))].filter((n) => n !== spec.name),
  );
}

/**
 * RFC 7396 section 2. The objects it builds have no prototype, so a patch key "__proto__" is an
 * own key that validation refuses, never a write to a prototype (with `{}`, the patch
 * `{"__proto__": {"rate": …}}` set the result's prototype and its fields were read through it).
 * Its recursion is bounded by the body's depth limit (api/http/json-body.ts).
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = Object.create(null);
  if (typeof target === 'object' && target !== null && !Array.isArray(target)) Object.assign(result, target);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}
