/**
 * Bearer tokens and their roles.
 * - admin: everything, including tokens;
 * - editor: read everything, write classes, forget hosts;
 * - viewer: read classes, hosts and the audit log;
 * - agent: read classes and write its own host (the host named when the token was made).
 *
 * A token may expire: created with `ttlSeconds`, it carries `expiresAt` and is refused (401,
 * saying when it expired) from then on. Without `ttlSeconds` it never expires.
 */
import { z } from 'zod';
import { hostNameSchema } from './host.js';
import { plainText } from './text.js';

export const ROLES = ['admin', 'editor', 'viewer', 'agent'] as const;
export type Role = (typeof ROLES)[number];

/** The longest a token may live: 3650 days. Longer is a typo, or a token that should never expire. */
export const MAX_TTL_SECONDS = 3650 * 86_400;

const ttlMessage = `ttlSeconds is a whole number of seconds from 1 to ${MAX_TTL_SECONDS} (3650 days), like 7776000 for 90 days; leave it out for a token that never expires`;

export const tokenCreateSchema = z
  .strictObject({
    name: plainText('a token name', 128).min(1),
    role: z.enum(ROLES),
    /** Required for role agent: the only host this token may write. */
    host: hostNameSchema.optional(),
    ttlSeconds: z
      .number(ttlMessage)
      // One message, however many of these it misses (1e300 misses two).
      .int({ error: ttlMessage, abort: true })
      .min(1, { error: ttlMessage, abort: true })
      .max(MAX_TTL_SECONDS, ttlMessage)
      .optional()
      .describe('seconds from creation until the token expires (expiresAt in the answer); leave it out for a token that never expires'),
  })
  .superRefine((t, ctx) => {
    if (t.role === 'agent' && t.host === undefined) {
      ctx.addIssue({ code: 'custom', path: ['host'], message: 'an agent token is bound to one host: give its name' });
    }
    if (t.role !== 'agent' && t.host !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['host'], message: 'only agent tokens are bound to a host' });
    }
  });

export interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  host: string | null;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  /** ISO 8601; null: never expires. */
  expiresAt: string | null;
}

/** Lifetime units of `--ttl`, in seconds. */
const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 7 * 86_400 };

/**
 * A token lifetime as people write it, `90d` (s, m, h, d, w: seconds to weeks), in seconds.
 * @throws Error saying what is accepted
 */
export function parseTtl(text: string): number {
  const m = /^([0-9]+)([smhdw])$/.exec(text);
  const seconds = m ? Number(m[1]) * TTL_UNITS[m[2]!]! : NaN;
  if (seconds >= 1 && seconds <= MAX_TTL_SECONDS) return seconds;
  const why = !m ? 'is not a whole number with a unit' : seconds < 1 ? 'is no time at all' : `is longer than ${MAX_TTL_SECONDS / 86_400}d, the most a token may live`;
  throw new Error(
    `--ttl ${JSON.stringify(text)} ${why}: give a whole number and one unit, s, m, h, d or w (seconds to weeks), like 90d, 12h or 2w, at most 3650d; leave --ttl out for a token that never expires`,
  );
}
