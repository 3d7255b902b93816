/**
 * Rules that span classes, checked on every write against the whole set as it would be after
 * the write. The simulator runs the same checks on a scenario's budgets.
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

export function checkClassSet(classes: ReadonlyArray<ClassSpec>): Conflict[] {
  const byName = new Map(classes.map((c) => [c.name, c]));
  return [...checkParents(classes, byName), ...checkSelectors(classes), ...checkBudgets(classes, byName)];
}

function checkParents(classes: ReadonlyArray<ClassSpec>, byName: Map<string, ClassSpec>): Conflict[] {
  const out: Conflict[] = [];
  for (const c of classes) {
    if (c.parent === null) continue;
    if (!byName.has(c.parent)) {
      out.push({ class: c.name, path: '/parent', message: `parent class "${c.parent}" does not exist`, classes: [c.name] });
      continue;
    }
    const chain = [c.name];
    let at: ClassSpec | undefined = c;
    while (at?.parent != null) {
      if (chain.includes(at.parent)) {
        out.push({ class: c.name, path: '/parent', message: `parent makes a cycle: ${[...chain, at.parent].join(' → ')}`, classes: chain });
        break;
      }
      chain.push(at.parent);
      at = byName.get(at.parent);
    }
    if (chain.length > LIMITS.maxDepth && !out.some((o) => o.class === c.name)) {
      out.push({
        class: c.name,
        path: '/parent',
        message: `the class tree is at most ${LIMITS.maxDepth} levels deep; ${chain.join(' → ')} is ${chain.length}`,
        classes: chain,
      });
    }
  }
  return out;
}

/** A mark, a cgroup or an exact prefix selects one class. Overlapping prefixes are fine: the longest match wins. */
function checkSelectors(classes: ReadonlyArray<ClassSpec>): Conflict[] {
  const out: Conflict[] = [];
  const kinds = [
    ['marks', 'mark'],
    ['cgroups', 'cgroup'],
    ['dst', 'prefix'],
  ] as const;
  for (const [field, what] of kinds) {
    const owner = new Map<string, string>();
    for (const c of classes) {
      (c.match[field] as ReadonlyArray<string | number>).forEach((sel, i) => {
        const key = String(sel);
        const first = owner.get(key);
        if (first === undefined) owner.set(key, c.name);
        else out.push({ class: c.name, path: `/match/${field}/${i}`, message: `${what} ${key} already selects class "${first}"`, classes: [c.name, first] });
      });
    }
  }
  return out;
}

function checkBudgets(classes: ReadonlyArray<ClassSpec>, byName: Map<string, ClassSpec>): Conflict[] {
  const out: Conflict[] = [];
  const children = new Map<string, ClassSpec[]>();
  for (const c of classes) {
    if (c.parent !== null && byName.has(c.parent)) children.set(c.parent, [...(children.get(c.parent) ?? []), c]);
  }
  for (const [parentName, kids] of children) {
    const parent = byName.get(parentName)!;
    const sum = kids.reduce((s, k) => s + k.rate, 0);
    if (sum > parent.rate) {
      const names = kids.map((k) => k.name);
      out.push({
        class: parentName,
        path: '/rate',
        message: `children ${names.join(', ')} are guaranteed ${formatRate(sum)} in total, more than parent "${parentName}"'s rate ${formatRate(parent.rate)}`,
        classes: [parentName, ...names],
      });
    }
    const parentCeil = parent.ceil ?? parent.rate;
    for (const k of kids) {
      const ceil = k.ceil ?? k.rate;
      if (ceil > parentCeil) {
        out.push({
          class: k.name,
          path: k.ceil === null ? '/rate' : '/ceil',
          message: `${k.ceil === null ? 'rate' : 'ceil'} ${formatRate(ceil)} exceeds parent "${parentName}"'s ceil ${formatRate(parentCeil)}`,
          classes: [k.name, parentName],
        });
      }
    }
  }
  return out;
}
