/** /v1/audit: who changed what, when, with the state before and after; newest first. */
import { Router } from 'express';
import { z } from 'zod';
import { allow, READERS } from '../http/auth.js';
import { parse, queryInteger } from '../http/validate.js';
import type { Store } from '../store/store.js';

const auditQuery = z.strictObject({
  limit: queryInteger(1, 1000).default(100),
  before: queryInteger(1).optional(),
  kind: z.enum(['class', 'token']).optional(),
  name: z.string().max(253).optional(),
});

export function createAuditRouter({ store }: { store: Store }): Router {
  const router = Router();
  router.get('/', allow(...READERS), async (req, res) => {
    const q = parse(auditQuery, req.query, 'query');
    const items = await store.audit(q);
    const last = items[items.length - 1];
    res.json({ items, next: items.length === q.limit && last ? last.revision : null });
  });
  return router;
}
