/**
 * Bearer tokens and their roles.
 * - admin: everything, including tokens;
 * - editor: read everything, write classes, forget hosts;
 * - viewer: read classes, hosts and the audit log;
 * - agent: read classes and write its own host (the host named when the token was made).
 */
import { z } from 'zod';
import { hostNameSchema } from './host.js';
import { plainText } from './text.js';

export const ROLES = ['admin', 'editor', 'viewer', 'agent'] as const;
export type Role = (typeof ROLES)[number];

export const tokenCreateSchema = z
  .strictObject({
    name: plainText('a token name', 128).min(1),
    role: z.enum(ROLES),
    /** Required for role agent: the only host this token may write. */
    host: hostNameSchema.optional(),
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
}
