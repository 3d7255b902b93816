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
import { ASSIGNED_FIELDS, isRevision, readOnlyDifferences, splitReadOnly, type ReadOnlySplit } from '../contract/class-read-only.js';
import { classWarnings } from '../contract/class-warnings.js';
import { checkClass, type ClassIndex } from '../contract/consistency.js';
import type { FieldError } from '../contract/problem.js';
import { etagOf, parseIfMatch } from '../contract/revision.js';
import { Conflict, InvalidInput, NotFound, PreconditionFailed, PreconditionRequired } from '../errors.js';
import { UnreadableBody } from '../http/json-body.js';
import { parse } from '../http/validate.js';
import type { Store } from '../store/store.js';

export interface ClassListQuery {
  /** Only classes whose host selector matches a host with these labels. */
  labels?: Record<string, string>;
  /** Page after this class name (names sort in byte order). */
  after?: string;
  limit: number;
}

/** A class as written, and what the API warns about it (likely mistakes it accepted). */
export interface Written {
  record: ClassRecord;
  warnings: FieldError[];
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

  async create(body: unknown, actor: string): Promise<Written> {
    const { spec: fields, assigned } = splitReadOnly(body);
    const input = parse(classCreateSchema, fields);
    const spec = toSpec(input.name, input);
    const carried = Object.keys(assigned);
    let warnings: FieldError[] = [];
    const { record } = await this.store.writeClass(spec.name, actor, (current, all) => {
      if (current) {
        const hint = carried.length > 0 ? `; the body is a class's GET representation: to change ${spec.name}, PUT it to /v1/classes/${spec.name}` : '';
        throw new Conflict(`class "${spec.name}" already exists (id ${current.id}); change it with PUT or PATCH and If-Match: ${etagOf(current.revision)}${hint}`, [{ path: '/name', message: 'already exists' }], [spec.name]);
      }
      if (carried.length > 0) throw assignedOnCreate(spec.name, assigned);
      warnings = classWarnings(fields, spec, false);
      return checked(spec, all);
    });
    return { record: record!, warnings };
  }

  /**
   * PUT: the whole spec. The precondition is checked before anything in the body, so a stale
   * If-Match is 412 whatever else is wrong with it; then the body's read-only fields against the
   * class as it is, then the body itself, then the rules across classes.
   */
  async replace(name: string, body: unknown, ifMatch: string | undefined, actor: string): Promise<Written> {
    requireIfMatch(ifMatch);
    let warnings: FieldError[] = [];
    const { record } = await this.store.writeClass(name, actor, (current, all) => {
      const base = matchPrecondition(name, current, ifMatch);
      if (body instanceof UnreadableBody) throw body.error;
      const { spec: fields, assigned } = splitReadOnly(body);
      checkReadOnly(body, assigned, base);
      const spec = toSpec(name, parse(classReplaceSchema, fields));
      warnings = classWarnings(fields, spec, hasChildren(all, name));
      return checked(spec, all);
    });
    return { record: record!, warnings };
  }

  /** JSON merge patch (RFC 7396) onto the class's spec in input form, then validated as a whole; checks in the order PUT does. */
  async patch(name: string, body: unknown, ifMatch: string | undefined, actor: string): Promise<Written> {
    requireIfMatch(ifMatch);
    let warnings: FieldError[] = [];
    const { record } = await this.store.writeClass(name, actor, (current, all) => {
      const base = matchPrecondition(name, current, ifMatch);
      if (body instanceof UnreadableBody) throw body.error;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new InvalidInput('a PATCH body is a JSON object (RFC 7396 merge patch)', [{ path: '', message: 'expected an object' }]);
      }
      const { spec: patch, assigned } = splitReadOnly(body);
      checkReadOnly(body, assigned, base);
      const merged = mergePatch(specToInput(base), patch) as Record<string, unknown>;
      const spec = toSpec(name, parse(classReplaceSchema, merged, 'class after the patch'));
      warnings = classWarnings(merged, spec, hasChildren(all, name));
      return checked(spec, all);
    });
    return { record: record!, warnings };
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
  if (!m.any && !m.revisions.includes(current.revision)) throw new PreconditionFailed(changedSince(current, ifMatch));
  return current;
}

/** The one message for a stale edit, whether the If-Match header or the body's revision says what was read. */
function changedSince(current: ClassRecord, read: string, where = ''): string {
  return `class "${current.name}" changed: its ETag is now ${etagOf(current.revision)}, not ${read}${where}; GET it again and retry`;
}

/**
 * The body's read-only fields against the class as it is (api/contract/class-read-only.ts): a
 * revision alone that differs is a stale edit (412, as a stale If-Match); any other difference
 * is a 400 that names every differing field with what was sent and what it is.
 */
function checkReadOnly(body: unknown, assigned: ReadOnlySplit['assigned'], current: ClassRecord): void {
  const differ = readOnlyDifferences(body, assigned, current);
  if (differ.length === 0) return;
  const [only] = differ;
  if (differ.length === 1 && only!.field === 'revision' && isRevision(only!.sent)) {
    throw new PreconditionFailed(changedSince(current, etagOf(only!.sent), ' (the revision in the body)'));
  }
  const listed = differ.map((d) => `${d.field} (sent ${JSON.stringify(d.sent) ?? String(d.sent)}, is ${JSON.stringify(d.is)})`).join(', ');
  const renamed = differ.some((d) => d.field === 'name') ? '; a class cannot be renamed (create the other name with POST)' : '';
  throw new InvalidInput(
    `read-only fields differ from the current class "${current.name}": ${listed}; remove them or send the values GET /v1/classes/${current.name} returns${renamed}`,
    differ.map((d) => ({ path: `/${d.field}`, message: d.field === 'name' ? 'must equal the name in the URL' : `read-only: sent ${JSON.stringify(d.sent) ?? String(d.sent)}, is ${d.is}` })),
  );
}

/** A create that carries a class's id, revision or createdRevision: the API assigns them, so say how to create from such a body. */
function assignedOnCreate(name: string, assigned: ReadOnlySplit['assigned']): InvalidInput {
  const fields = ASSIGNED_FIELDS.filter((f) => f in assigned);
  const from = 'id' in assigned ? ` (id ${JSON.stringify(assigned.id) ?? String(assigned.id)})` : '';
  return new InvalidInput(
    `the body carries ${fields.join(', ')}, which the API assigns: it looks like the GET representation of another class${from}. ` +
      `A new class gets a new id; remove ${fields.join(', ')} to create "${name}" from it`,
    fields.map((f) => ({ path: `/${f}`, message: 'assigned by the API; a create cannot set it' })),
  );
}

function hasChildren(all: ClassIndex, name: string): boolean {
  for (const _ of all.childrenOf(name)) return true;
  return false;
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
