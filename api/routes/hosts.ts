/** /v1/hosts: agents register and heartbeat; readers list hosts and see which are stale. */
import { Router, type Request } from 'express';
import { hostNameSchema } from '../contract/host.js';
import { allow, principalOf, READERS, EDITORS } from '../http/auth.js';
import { parse } from '../http/validate.js';
import type { HostService } from '../services/hosts.js';

const nameOf = (req: Request) => parse(hostNameSchema, req.params.name, 'host name in the URL');

export function createHostsRouter({ hosts }: { hosts: HostService }): Router {
  const router = Router();
  router.get('/', allow(...READERS), async (_req, res) => {
    res.json({ items: await hosts.list() });
  });
  router.get('/:name', allow(...READERS, 'agent'), async (req, res) => {
    res.json(await hosts.get(nameOf(req), principalOf(res)));
  });
  router.put('/:name', allow('admin', 'agent'), async (req, res) => {
    res.json(await hosts.register(nameOf(req), req.body, principalOf(res)));
  });
  router.put('/:name/status', allow('admin', 'agent'), async (req, res) => {
    res.json(await hosts.heartbeat(nameOf(req), req.body, principalOf(res)));
  });
  router.delete('/:name', allow(...EDITORS), async (req, res) => {
    await hosts.remove(nameOf(req));
    res.status(204).end();
  });
  return router;
}
