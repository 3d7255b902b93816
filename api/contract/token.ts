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
