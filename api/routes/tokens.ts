/** /v1/tokens: admins create (the secret is in the response, once), list and revoke tokens. */
import { Router } from 'express';
import { z } from 'zod';
import { allow, actorOf } from '../http/auth.js';
import { parse } from '../http/validate.js';
import type { TokenService } from '../services/tokens.js';

const tokenId = z.string().regex(/^tok_[0-9a-f]{12}$/, 'a token id looks like tok_0123456789ab');

export function createTokensRouter({ tokens }: { tokens: TokenService }): Router {
  const router = Router();
  router.use(allow('admin'));
  router.get('/', async (_req, res) => {
    res.json({ items: await tokens.list() });
  });
  router.post('/', async (req, res) => {
    const { token, secret } = await tokens.create(req.body, actorOf(res));
    res.status(201).json({ ...token, token: secret });
  });
  router.delete('/:id', async (req, res) => {
    res.json(await tokens.revoke(parse(tokenId, req.params.id, 'token id in the URL'), actorOf(res)));
  });
  return router;
}
