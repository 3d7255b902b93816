/**
 * Rules that span classes. A write is checked against an index of the classes as they are
 * (`checkClass`), touching only the written class's neighbours, so a write costs the same with
 * ten classes or ten thousand. The simulator checks a whole scenario with `checkClassSet`.
 */
import { LIMITS, type ClassSpec } from './class.js';
import { formatRate } from './units.js';

export interface Conflict {
  /** The class whose field is at fault. */
  class: string;
  /** JSON pointer of the field within that class, e.g. "/match/dst/1". */
  path: string;
  message: string;
  /** Every class involved, the one at fault included. */
  classes: string[];
}

export type SelectorKind = 'marks' | 'cgroups' | 'dst';
const SELECTOR_KINDS: ReadonlyArray<[SelectorKind, string]> = [
  ['marks', 'mark'],
  ['cgroups', 'cgroup'],
  ['dst', 'prefix'],
];

/** What the checks need to know about the other classes. */
export interface ClassIndex {
  get(name: string): ClassSpec | undefined;
  childrenOf(name: string): Iterable<ClassSpec>;
  /** The class that claims a selector (marks by their decimal string). */
  ownerOf(kind: SelectorKind, selector: string): string | undefined;
}

/** A ClassIndex kept up to date with set/delete. */
export class MemoryClassIndex<T extends ClassSpec = ClassSpec> implements ClassIndex {
  private readonly byName = new Map<string, T>();
  private readonly children = new Map<string, Set<string>>();
  private readonly owners = new Map<SelectorKind, Map<string, string>>(SELECTOR_KINDS.map(([k]) => [k, new Map()]));

  constructor(classes: Iterable<T> = []) {
    for (const c of classes) this.set(c);
  }

  get(name: string): T | undefined {
    return this.byName.get(name);
  }

  values(): IterableIterator<T> {
    return this.byName.values();
  }

  get size(): number {
    return this.byName.size;
  }

  *childrenOf(name: string): Iterable<T> {
    for (const child of this.children.get(name) ?? []) yield this.byName.get(child)!;
  }

  ownerOf(kind: SelectorKind, selector: string): string | undefined {
    return this.owners.get(kind)!.get(selector);
  }

  set(c: T): void {
    this.delete(c.name);
    this.byName.set(c.name, c);
    if (c.parent !== null) {
      const siblings = this.children.get(c.parent) ?? new Set<string>();
      siblings.add(c.name);
      this.children.set(c.parent, siblings);
    }
    for (const [kind] of SELECTOR_KINDS) {
      const owners = this.owners.get(kind)!;
      for (const sel of c.match[kind]) if (!owners.has(String(sel))) owners.set(String(sel), c.name);
    }
  }

  delete(name: string): void {
    const old = this.byName.get(name);
    if (!old) return;
    this.byName.delete(name);
    if (old.parent !== null) this.children.get(old.parent)?.delete(name);
    for (const [kind] of SELECTOR_KINDS) {
      const owners = this.owners.get(kind)!;
      for (const sel of old.match[kind]) if (owners.get(String(sel)) === name) owners.delete(String(sel));
    }
  }
}

/**
 * The conflicts that writing `spec` would create, given the classes as they are now (`index` may
 * hold the previous version of `spec`; it is ignored).
 */
export function checkClass(spec: ClassSpec, index: ClassIndex): Conflict[] {
  const lookup = (name: string) => (name === spec.name ? spec : index.get(name));
  const childrenOf = (name: string) => [...index.childrenOf(name)].filter((c) => c.name !== spec.name);
  return [...checkTree(spec, lookup, childrenOf), ...checkSelectors(spec, index), ...checkBudgets(spec, lookup, childrenOf)];
}

/** Every conflict in a whole set of classes, each reported once. */
export function checkClassSet(classes: ReadonlyArray<ClassSpec>): Conflict[] {
  const index = new MemoryClassIndex(classes);
  const seen = new Set<string>();
  const out: Conflict[] = [];
  for (const c of classes) {
    for (const conflict of checkClass(c, index)) {
      const key = `${conflict.class}${conflict.path}${conflict.message}`;
      if (!seen.has(key)) out.push(conflict);
      seen.add(key);
    }
  }
  return out;
}

type Lookup = (name: string) => ClassSpec | undefined;
type Children = (name: string) => ClassSpec[];

function checkTree(spec: ClassSpec, lookup: Lookup, childrenOf: Children): Conflict[] {
  if (spec.parent !== null && !lookup(spec.parent)) {
    return [{ class: spec.name, path: '/parent', message: `parent class "${spec.parent}" does not exist`, classes: [spec.name] }];
  }
  const chain = [spec.name];
  for (let at: ClassSpec | undefined = spec; at?.parent != null; at = lookup(at.parent)) {
    if (chain.includes(at.parent)) {
      return [{ class: spec.name, path: '/parent', message: `parent makes a cycle: ${[...chain, at.parent].join(' → ')}`, classes: chain }];
    }
    chain.push(at.parent);
  }
  const below = subtreeHeight(spec.name, childrenOf, LIMITS.maxDepth);
  if (chain.length + below.height - 1 > LIMITS.maxDepth) {
    const path = [...[...chain].reverse(), ...below.deepest];
    return [
      {
        class: spec.name,
        path: '/parent',
        message: `the class tree is at most ${LIMITS.maxDepth} levels deep; ${path.join(' → ')} is ${path.length}`,
        classes: path,
      },
    ];
  }
  return [];
}

/** Levels from `name` down (1 = no children), and the names below it on the deepest path. */
function subtreeHeight(name: string, childrenOf: Children, limit: number): { height: number; deepest: string[] } {
  let best = { height: 1, deepest: [] as string[] };
  if (limit === 0) return best;
  for (const child of childrenOf(name)) {
    const sub = subtreeHeight(child.name, childrenOf, limit - 1);
    if (sub.height + 1 > best.height) best = { height: sub.height + 1, deepest: [child.name, ...sub.deepest] };
  }
  return best;
}

/** A mark, a cgroup or an exact prefix selects one class. Overlapping prefixes are fine: the longest match wins. */
function checkSelectors(spec: ClassSpec, index: ClassIndex): Conflict[] {
  const out: Conflict[] = [];
  for (const [kind, what] of SELECTOR_KINDS) {
    spec.match[kind].forEach((sel, i) => {
      const owner = index.ownerOf(kind, String(sel));
      if (owner !== undefined && owner !== spec.name) {
        out.push({ class: spec.name, path: `/match/${kind}/${i}`, message: `${what} ${sel} already selects class "${owner}"`, classes: [spec.name, owner] });
      }
    });
  }
  return out;
}

const ceilOf = (c: ClassSpec) => c.ceil ?? c.rate;

function checkBudgets(spec: ClassSpec, lookup: Lookup, childrenOf: Children): Conflict[] {
  const out: Conflict[] = [];
  const parent = spec.parent === null ? undefined : lookup(spec.parent);
  if (parent) {
    out.push(...oversubscribed(parent, [...childrenOf(parent.name), spec]));
    if (ceilOf(spec) > ceilOf(parent)) out.push(ceilConflict(spec, parent));
  }
  const kids = childrenOf(spec.name);
  out.push(...oversubscribed(spec, kids));
  for (const k of kids) if (ceilOf(k) > ceilOf(spec)) out.push(ceilConflict(k, spec));
  return out;
}

function oversubscribed(parent: ClassSpec, kids: ClassSpec[]): Conflict[] {
  const sum = kids.reduce((s, k) => s + k.rate, 0);
  if (sum <= parent.rate) return [];
  const names = kids.map((k) => k.name).sort();
  return [
    {
      class: parent.name,
      path: '/rate',
      message: `children ${names.join(', ')} are guaranteed ${formatRate(sum)} in total, more than parent "${parent.name}"'s rate ${formatRate(parent.rate)}`,
      classes: [parent.name, ...names],
    },
  ];
}

function ceilConflict(child: ClassSpec, parent: ClassSpec): Conflict {
  const field = child.ceil === null ? 'rate' : 'ceil';
  return {
    class: child.name,
    path: `/${field}`,
    message: `${field} ${formatRate(ceilOf(child))} exceeds parent "${parent.name}"'s ceil ${formatRate(ceilOf(parent))}`,
    classes: [child.name, parent.name],
  };
}
