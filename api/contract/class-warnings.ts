/**
 * Likely mistakes in a class that the API accepts but warns about: the class is valid and does
 * what it says, yet it is probably not what its author meant. Each warning names its field (a
 * JSON Pointer, like a problem's field errors) and says what the value does and how to write
 * what was probably meant. The API returns them with the write (docs/budgets-api.md,
 * "Warnings"); the CLI prints them on stderr; the simulator warns about its scenarios the same way.
 */
import type { ClassSpec } from './class.js';
import type { FieldError } from './problem.js';
import { bytesRateWarning, formatBurst, formatRate } from './units.js';

/** A full-size Ethernet packet: the usual MTU, in bytes. */
export const MTU_BYTES = 1500;

/**
 * `rate` and `ceil` given as strings in a bytes unit spelled like bits ("100mbps"). Only the
 * strings a client typed can say that: the API's own answers write every rate in bits.
 */
export function rateUnitWarnings(body: unknown): FieldError[] {
  if (typeof body !== 'object' || body === null) return [];
  const out: FieldError[] = [];
  for (const field of ['rate', 'ceil'] as const) {
    const value = (body as Record<string, unknown>)[field];
    const message = typeof value === 'string' ? bytesRateWarning(field, value) : undefined;
    if (message) out.push({ path: `/${field}`, message });
  }
  return out;
}

/**
 * A burst above zero but below one full-size packet. The departure rule lets an idle class start
 * `burst` behind now (docs/data-plane.md), so a burst shorter than one packet's time lets no two
 * packets leave back to back: it differs from strict pacing (burst 0, the default) by less than
 * one packet. tc's own burst (tbf, htb) below one MTU is the classic mistake this echoes.
 */
export function burstWarning(spec: Pick<ClassSpec, 'burst' | 'rate'>): FieldError | undefined {
  const { burst } = spec;
  const bytes = 'bytes' in burst ? burst.bytes : Math.floor((burst.ns * spec.rate) / 8e9);
  const given = 'bytes' in burst ? burst.bytes : burst.ns;
  if (given === 0 || bytes >= MTU_BYTES) return undefined;
  const what = 'bytes' in burst ? `burst ${formatBurst(burst)}` : `burst ${formatBurst(burst)} is ${bytes} bytes at rate ${formatRate(spec.rate)}, so it`;
  return {
    path: '/burst',
    message:
      `${what} is less than one full-size packet (${MTU_BYTES} bytes): a class back from idle still cannot send two packets back to back, ` +
      `so it paces almost as strictly as burst 0. Give at least one packet (e.g. 15kb, or a time such as 1ms) for a burst, or 0 for strict pacing`,
  };
}

/**
 * A class with no selector and no child class: no packet is ever classified into it (the API
 * sets no interface default), so its budget shapes nothing. A parent needs no selector of its own:
 * its children's traffic is its traffic.
 */
export function selectorWarning(spec: Pick<ClassSpec, 'name' | 'match'>, hasChildren: boolean): FieldError | undefined {
  const { marks, cgroups, dst } = spec.match;
  if (hasChildren || marks.length + cgroups.length + dst.length > 0) return undefined;
  return {
    path: '/match',
    message:
      `class ${spec.name} has no selector (match.marks, match.cgroups and match.dst are empty) and no child class, so it matches no traffic ` +
      `and its budget shapes nothing; give it a destination prefix, a socket mark or a cgroup, or make it the parent of classes that have one`,
  };
}

/** Every warning about a class about to be written: `body` is what the client sent (for PATCH, the class after the patch). */
export function classWarnings(body: unknown, spec: ClassSpec, hasChildren: boolean): FieldError[] {
  return [...rateUnitWarnings(body), burstWarning(spec), selectorWarning(spec, hasChildren)].filter((w): w is FieldError => w !== undefined);
}
