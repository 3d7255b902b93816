/**
 * A traffic class and its budget: the schema that validates what clients send, the canonical
 * form every part of pacer works on, and the JSON form the API answers with.
 *
 * Three shapes, one source of truth:
 * - `ClassInput` (zod): what a client may send. Quantities may be tc-style strings ("2gbit"),
 *   plain integers (bits/s, bytes) or the `{ bitsPerSecond, text }` objects the API returns,
 *   so a GET body's quantities can be sent back unchanged.
 * - `ClassSpec`: canonical integers (bits/s, bytes, nanoseconds). The data plane, the agent and
 *   the simulator use only this.
 * - `ClassJson`: what the API returns: every quantity as its canonical integer plus a human string.
 */
import { z } from 'zod';
import ipaddr from 'ipaddr.js';
import {
  UnitError,
  parseRate,
  formatRate,
  parseDuration,
  formatDuration,
  parseBurst,
  formatBurst,
  type Burst,
} from './units.js';
import { etagOf } from './revision.js';
import { nullPrototypeMap, plainText, refuseReservedKeys } from './text.js';

export const LIMITS = {
  rateMin: 1_000, // 1 kbit/s
  rateMax: 400_000_000_000, // 400 Gbit/s
  horizonDefaultNs: 2_000_000_000,
  horizonMinNs: 1_000_000, // 1 ms: below that fq's own timer slack dominates
  horizonMaxNs: 10_000_000_000,
  burstMaxBytes: 1 << 30,
  burstMaxNs: 10_000_000_000,
  tcpMinNs: 1_000_000,
  tcpMaxNs: 1_000_000_000,
  /**
   * 1 µs: the program compares the threshold with a delay in ns, but a shorter one marks every
   * packet that waits behind another (a 1500 B frame takes 1.2 µs at 10 Gbit/s).
   */
  ecnMinNs: 1_000,
  ecnMaxNs: 10_000_000_000,
  weightMin: 1,
  weightMax: 1000,
  /** A root class has depth 1. The data plane walks at most this many schedules per packet. */
  maxDepth: 4,
  maxSelectorsPerKind: 256,
  maxLabels: 32,
  descriptionMax: 1024,
} as const;

const NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL_KEY_RE = /^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

export const classNameSchema = z
  .string()
  .regex(NAME_RE, 'a class name is a lower-case slug: a-z, 0-9 and "-", 1 to 63 characters, not starting or ending with "-"');

/**
 * Runs a unit parser inside a zod transform, turning UnitError into a field error. A negative or
 * too large quantity is answered with the field's own range (`accepted`), not the parser's.
 */
function unit<T>(parse: (v: string | number) => T, accepted: string) {
  return (value: string | number, ctx: z.RefinementCtx): T => {
    try {
      return parse(value);
    } catch (e) {
      let message = String(e);
      if (e instanceof UnitError) message = e.reason === 'invalid' ? e.message : `${accepted}; got ${e.input}${e.reason === 'negative' ? ', a negative value' : ''}`;
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
  };
}

/** What a field with a range accepts, e.g. "rate must be between 1kbit (1000 bit/s) and 400gbit (400000000000 bit/s)". */
function between(min: number, max: number, fmt: (n: number) => string, what: string): string {
  return `${what} must be between ${fmt(min)} and ${fmt(max)}`;
}

function inRange(min: number, max: number, fmt: (n: number) => string, what: string) {
  return (n: number, ctx: z.RefinementCtx) => {
    if (n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `${between(min, max, fmt, what)}; understood ${fmt(n)}` });
    }
  };
}

const rateInput = (accepted: string) =>
  z
    .union([
      z.string(),
      z.number(),
      z.strictObject({ bitsPerSecond: z.number(), text: z.string().optional() }),
    ])
    .describe('tc-style rate: "2gbit", "500mbit", "100kbps" (kbps = kiloBYTES/s as in tc), or an integer in bits/s')
    .transform((v, ctx) => unit(parseRate, accepted)(typeof v === 'object' ? v.bitsPerSecond : v, ctx));

const rateText = (n: number) => `${formatRate(n)} (${n} bit/s)`;
const rateField = (what: string) =>
  rateInput(between(LIMITS.rateMin, LIMITS.rateMax, rateText, what)).superRefine(inRange(LIMITS.rateMin, LIMITS.rateMax, rateText, what));

const durationInput = (accepted: string) =>
  z
    .union([z.string(), z.number(), z.strictObject({ ns: z.number(), text: z.string().optional() })])
    .describe('duration with a unit: "200ms", "1ms", "500us", "2s"')
    .transform((v, ctx) => (typeof v === 'object' ? nonNegativeInteger(v.ns, 'ns', ctx) : unit(parseDuration, accepted)(v, ctx)));

function nonNegativeInteger(n: number, unitName: string, ctx: z.RefinementCtx): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    ctx.addIssue({ code: 'custom', message: `${unitName} must be a non-negative integer; got ${n}` });
    return z.NEVER;
  }
  return n;
}

const durationField = (min: number, max: number, what: string) =>
  durationInput(between(min, max, formatDuration, what)).superRefine(inRange(min, max, formatDuration, what));

const BURST_ACCEPTED = `burst must be a size of at most 1gb (${LIMITS.burstMaxBytes} bytes) or a time of at most 10s`;

const burstField = z
  .union([
    z.string(),
    z.number(),
    z.strictObject({ bytes: z.number(), text: z.string().optional() }),
    z.strictObject({ ns: z.number(), text: z.string().optional() }),
  ])
  .describe('idle credit a class may spend at once: a size ("64kb", "15000b", bare integer = bytes) or a time ("1ms")')
  .transform((v, ctx): Burst => {
    if (typeof v !== 'object') return unit(parseBurst, BURST_ACCEPTED)(v, ctx);
    if ('bytes' in v) return { bytes: nonNegativeInteger(v.bytes, 'bytes', ctx) };
    return { ns: nonNegativeInteger(v.ns, 'ns', ctx) };
  })
  .superRefine((b, ctx) => {
    if ('bytes' in b && b.bytes > LIMITS.burstMaxBytes) {
      ctx.addIssue({ code: 'custom', message: `${BURST_ACCEPTED}; understood ${b.bytes} bytes` });
    }
    if ('ns' in b && b.ns > LIMITS.burstMaxNs) {
      ctx.addIssue({ code: 'custom', message: `${BURST_ACCEPTED}; understood ${formatDuration(b.ns)}` });
    }
  });

const MARK_ACCEPTED = 'a socket mark is an integer from 1 to 4294967295 (a u32; 0 means "no mark" on every socket, so it cannot select a class)';
const markError = { error: (iss: { input?: unknown }) => `${MARK_ACCEPTED}; got ${String(iss.input)}` };
const markField = z.number().int(markError).min(1, markError).max(0xffffffff, markError);

const cgroupField = plainText('a cgroup path', 4096)
  .refine((p) => /^\/(?:[^/\0]+(?:\/[^/\0]+)*)?$/.test(p) && !p.split('/').some((s) => s === '.' || s === '..'), {
    message: 'a cgroup is an absolute cgroup v2 path below the cgroup2 mount, like "/system.slice/nginx.service", without "." or ".." and without a trailing "/"',
  });

/** Parses a CIDR and returns it in canonical form; rejects host bits set, as `ip route` does. */
export function canonicalCidr(text: string): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  let bits: number;
  const zone = /%[^/]*/.exec(text);
  if (zone) {
    throw new Error(`"${text}" has a zone id ("${zone[0]}"); a prefix selects destinations on every interface, so zone ids are not allowed: write ${text.replace(zone[0], '')}`);
  }
  try {
    [addr, bits] = ipaddr.parseCIDR(text);
  } catch {
    throw new Error(`"${text}" is not an IPv4 or IPv6 prefix like 10.0.0.0/8 or 2001:db8::/32`);
  }
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    throw new Error(`"${text}" is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead`);
  }
  const network = ipaddr.parse(
    addr.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(text).toString()
      : ipaddr.IPv6.networkAddressFromCIDR(text).toString(),
  );
  const canonical = `${network.toString()}/${bits}`;
  if (network.toString() !== addr.toString()) {
    throw new Error(`"${text}" has host bits set; did you mean ${canonical}?`);
  }
  return canonical;
}

const dstField = z.string().max(64).transform((v, ctx) => {
  try {
    return canonicalCidr(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

function uniqueList<T extends z.ZodType>(item: T, what: string) {
  return z
    .array(item)
    .max(LIMITS.maxSelectorsPerKind)
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((v, i) => {
        const key = String(v);
        if (seen.has(key)) ctx.addIssue({ code: 'custom', path: [i], message: `${what} ${key} is listed twice` });
        seen.add(key);
      });
    });
}

export const matchInputSchema = z.strictObject({
  marks: uniqueList(markField, 'mark').optional(),
  cgroups: uniqueList(cgroupField, 'cgroup').optional(),
  dst: uniqueList(dstField, 'prefix').optional(),
});

const LABEL_KEY_FORM =
  'a label key is a Kubernetes label key, [prefix/]name: the optional prefix is a DNS subdomain (lower-case a-z, 0-9, "." and "-", ' +
  'starting and ending with a letter or digit, at most 253 characters) followed by "/"; the name is 1 to 63 characters of ' +
  'letters, digits, ".", "_" and "-", starting and ending with a letter or digit';

/** Host labels and label selectors. Reserved keys are refused before zod copies the map (it drops "__proto__" silently). */
export const labelsSchema = z
  .preprocess(
    refuseReservedKeys('label key'),
    z.record(
      z.string().regex(LABEL_KEY_RE),
      z.string().regex(LABEL_VALUE_RE, 'a label value is empty, or 1 to 63 characters of letters, digits, ".", "_" and "-", starting and ending with a letter or digit'),
      { error: (iss) => (iss.code === 'invalid_key' ? `${LABEL_KEY_FORM}; got ${JSON.stringify(iss.input)}` : undefined) },
    ),
  )
  .refine((r) => Object.keys(r).length <= LIMITS.maxLabels, { message: `at most ${LIMITS.maxLabels} labels` })
  .transform(nullPrototypeMap);

export const tcpInputSchema = z
  .strictObject({
    rtoMin: durationField(LIMITS.tcpMinNs, LIMITS.tcpMaxNs, 'tcp.rtoMin').nullable().optional(),
    delackMax: durationField(LIMITS.tcpMinNs, LIMITS.tcpMaxNs, 'tcp.delackMax').nullable().optional(),
  })
  .describe('TCP tuning for sockets of this class. The kernel rounds both to its timer granularity (a jiffy) and refuses an RTOmin below 2 jiffies.')
  .refine((t) => t.rtoMin != null || t.delackMax != null, {
    message: 'tcp needs rtoMin, delackMax or both; to remove TCP tuning, set tcp to null',
  });

const ECN_ACCEPTED = between(LIMITS.ecnMinNs, LIMITS.ecnMaxNs, formatDuration, 'ecn.threshold');
const ecnThresholdField = durationInput(ECN_ACCEPTED).superRefine((ns, ctx) => {
  if (ns < LIMITS.ecnMinNs || ns > LIMITS.ecnMaxNs) {
    const off = ns === 0 ? '; to turn ECN marking off, set ecn to null' : '';
    ctx.addIssue({ code: 'custom', message: `${ECN_ACCEPTED}; understood ${formatDuration(ns)}${off}` });
  }
});

export const ecnInputSchema = z
  .strictObject(
    { threshold: ecnThresholdField },
    { error: (iss) => (iss.code === 'invalid_type' ? 'ecn is an object like { "threshold": "1ms" } (mark CE on packets that wait longer than 1 ms), or null for no marking' : undefined) },
  )
  .describe(
    'ECN: the tc program marks CE on ECT packets of this class that wait longer than `threshold` (their departure is that far ahead of now), ' +
      'so ECN-capable TCP slows down before the horizon drops. Must be below the horizon. Under policing (no fq) the wait is how far the class runs ahead of its rate. ' +
      'null = no marking (docs/data-plane.md, "ECN marking").',
  );

/** The fields of a class a client sets. Everything but `rate` has a default. */
const specFields = {
  description: plainText('description', LIMITS.descriptionMax).optional(),
  rate: rateField('rate'),
  ceil: rateField('ceil').nullable().optional(),
  burst: burstField.optional(),
  horizon: durationField(LIMITS.horizonMinNs, LIMITS.horizonMaxNs, 'horizon').optional(),
  parent: classNameSchema.nullable().optional(),
  weight: z.number().int().min(LIMITS.weightMin).max(LIMITS.weightMax).optional(),
  match: matchInputSchema.optional(),
  hosts: z.strictObject({ matchLabels: labelsSchema.optional() }).optional(),
  tcp: tcpInputSchema.nullable().optional(),
  ecn: ecnInputSchema.nullable().optional(),
};

interface SpecToRefine {
  rate: number;
  ceil?: number | null;
  horizon?: number;
  parent?: string | null;
  name?: string;
  ecn?: { threshold: number } | null;
}

function refineSpec(spec: SpecToRefine, ctx: z.RefinementCtx) {
  if (spec.ceil != null && spec.ceil < spec.rate) {
    ctx.addIssue({ code: 'custom', path: ['ceil'], message: `ceil ${formatRate(spec.ceil)} is below rate ${formatRate(spec.rate)}; ceil must be at least rate` });
  }
  // A packet that would wait longer than the horizon is dropped, so it could never be marked.
  const horizon = spec.horizon ?? LIMITS.horizonDefaultNs;
  if (spec.ecn != null && spec.ecn.threshold >= horizon) {
    ctx.addIssue({
      code: 'custom',
      path: ['ecn', 'threshold'],
      message: `ecn.threshold ${formatDuration(spec.ecn.threshold)} must be below the horizon ${formatDuration(horizon)}: a packet that would wait longer than the horizon is dropped, so it is never marked; lower ecn.threshold or raise horizon`,
    });
  }
  if (spec.name !== undefined && spec.parent === spec.name) {
    ctx.addIssue({ code: 'custom', path: ['parent'], message: 'a class cannot be its own parent' });
  }
}

/** POST /v1/classes */
export const classCreateSchema = z.strictObject({ name: classNameSchema, ...specFields }).superRefine(refineSpec);
/** PUT /v1/classes/{name}: the whole spec; `name` may be repeated but must equal the path. */
export const classReplaceSchema = z.strictObject({ name: classNameSchema.optional(), ...specFields }).superRefine(refineSpec);

export type ClassCreateInput = z.input<typeof classCreateSchema>;

export interface ClassSpec {
  name: string;
  description: string;
  /** Guaranteed rate, bits/s. */
  rate: number;
  /** Borrowing limit, bits/s; null = no borrowing (ceil = rate). */
  ceil: number | null;
  burst: Burst;
  /** Longest a packet may wait before it is dropped, ns. */
  horizon: number;
  parent: string | null;
  weight: number;
  match: { marks: number[]; cgroups: string[]; dst: string[] };
  hosts: { matchLabels: Record<string, string> };
  tcp: { rtoMin: number | null; delackMax: number | null } | null;
  /** CE marking: mark ECT packets that wait longer than `threshold` ns; null = off. */
  ecn: { threshold: number } | null;
}

/** A stored class: the spec plus what the API assigns. */
export interface ClassRecord extends ClassSpec {
  /** u32, assigned at creation, never changes, never reused. */
  id: number;
  /** The revision that last wrote this class; its ETag. */
  revision: number;
  createdRevision: number;
  createdAt: string;
  updatedAt: string;
}

type ParsedInput = z.output<typeof classReplaceSchema>;

/** Fills defaults and sorts selector lists, so equal specs compare equal. */
export function toSpec(name: string, input: ParsedInput): ClassSpec {
  const tcp = input.tcp ? { rtoMin: input.tcp.rtoMin ?? null, delackMax: input.tcp.delackMax ?? null } : null;
  return {
    name,
    description: input.description ?? '',
    rate: input.rate,
    ceil: input.ceil ?? null,
    burst: input.burst ?? { bytes: 0 },
    horizon: input.horizon ?? LIMITS.horizonDefaultNs,
    parent: input.parent ?? null,
    weight: input.weight ?? 1,
    match: {
      marks: [...(input.match?.marks ?? [])].sort((a, b) => a - b),
      cgroups: [...(input.match?.cgroups ?? [])].sort(),
      dst: [...(input.match?.dst ?? [])].sort(),
    },
    hosts: { matchLabels: nullPrototypeMap(input.hosts?.matchLabels ?? {}) },
    tcp,
    ecn: input.ecn ? { threshold: input.ecn.threshold } : null,
  };
}

/** The spec written back in the input form (human strings), the base a JSON merge patch applies to. */
export function specToInput(spec: ClassSpec): Record<string, unknown> {
  return {
    description: spec.description,
    rate: formatRate(spec.rate),
    ceil: spec.ceil === null ? null : formatRate(spec.ceil),
    burst: formatBurst(spec.burst),
    horizon: formatDuration(spec.horizon),
    parent: spec.parent,
    weight: spec.weight,
    match: { marks: spec.match.marks, cgroups: spec.match.cgroups, dst: spec.match.dst },
    hosts: { matchLabels: spec.hosts.matchLabels },
    tcp: spec.tcp === null ? null : dropNulls({
      rtoMin: spec.tcp.rtoMin === null ? null : formatDuration(spec.tcp.rtoMin),
      delackMax: spec.tcp.delackMax === null ? null : formatDuration(spec.tcp.delackMax),
    }),
    ecn: spec.ecn == null ? null : { threshold: formatDuration(spec.ecn.threshold) },
  };
}

function dropNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}

const rateJson = (bps: number) => ({ bitsPerSecond: bps, text: formatRate(bps) });
const durationJson = (ns: number) => ({ ns, text: formatDuration(ns) });

/** The API's representation: canonical integers with human strings beside them. */
export function classToJson(c: ClassRecord) {
  return {
    name: c.name,
    id: c.id,
    description: c.description,
    rate: rateJson(c.rate),
    ceil: c.ceil === null ? null : rateJson(c.ceil),
    burst: { ...c.burst, text: formatBurst(c.burst) },
    horizon: durationJson(c.horizon),
    parent: c.parent,
    weight: c.weight,
    match: c.match,
    hosts: c.hosts,
    tcp:
      c.tcp === null
        ? null
        : {
            rtoMin: c.tcp.rtoMin === null ? null : durationJson(c.tcp.rtoMin),
            delackMax: c.tcp.delackMax === null ? null : durationJson(c.tcp.delackMax),
          },
    ecn: c.ecn == null ? null : { threshold: durationJson(c.ecn.threshold) },
    revision: c.revision,
    etag: etagOf(c.revision),
    createdRevision: c.createdRevision,
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  };
}
export type ClassJson = ReturnType<typeof classToJson>;

/** Reads a ClassJson (as received over HTTP) back into a record. */
export function classFromJson(j: ClassJson): ClassRecord {
  return {
    name: j.name,
    id: j.id,
    description: j.description,
    rate: j.rate.bitsPerSecond,
    ceil: j.ceil === null ? null : j.ceil.bitsPerSecond,
    burst: 'bytes' in j.burst ? { bytes: j.burst.bytes } : { ns: j.burst.ns },
    horizon: j.horizon.ns,
    parent: j.parent,
    weight: j.weight,
    match: j.match,
    hosts: j.hosts,
    tcp: j.tcp === null ? null : { rtoMin: j.tcp.rtoMin?.ns ?? null, delackMax: j.tcp.delackMax?.ns ?? null },
    // An API from before ECN sends no field: off.
    ecn: j.ecn ? { threshold: j.ecn.threshold.ns } : null,
    revision: j.revision,
    createdRevision: j.createdRevision,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
  };
}

/** True when a host with these labels gets this class (an empty selector selects every host). */
export function selectsHost(spec: Pick<ClassSpec, 'hosts'>, labels: Record<string, string>): boolean {
  return Object.entries(spec.hosts.matchLabels).every(([k, v]) => labels[k] === v);
}
