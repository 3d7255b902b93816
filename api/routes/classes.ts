/** /v1/classes: CRUD with If-Match. A handler validates, makes one service call, and responds. */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { classNameSchema, classToJson, labelsSchema, type ClassRecord } from '../contract/class.js';
import { etagOf } from '../contract/revision.js';
import { allow, actorOf, CLASS_READERS, EDITORS } from '../http/auth.js';
import { parse, queryInteger } from '../http/validate.js';
import type { ClassService, Written } from '../services/classes.js';
import type { HostService } from '../services/hosts.js';

const listQuery = z.strictObject({
  limit: queryInteger(1, 10_000).default(1000),
  after: classNameSchema.optional(),
  /** Repeatable k=v: classes that apply to a host with these labels. */
  label: z.union([z.string(), z.array(z.string())]).optional(),
  /** A registered host's name: classes that apply to it. */
  host: z.string().max(253).optional(),
});

function labelsFrom(list: string | string[] | undefined): Record<string, string> | undefined {
  if (list === undefined) return undefined;
  const pairs = (Array.isArray(list) ? list : [list]).map((kv, i) => {
    const eq = kv.indexOf('=');
    if (eq < 0) return [`\0${i}`, kv] as const; // fails the key pattern below, with the index in the path
    return [kv.slice(0, eq), kv.slice(eq + 1)] as const;
  });
  return parse(labelsSchema, Object.fromEntries(pairs), 'label query (k=v)');
}

function sendClass(res: Response, c: ClassRecord, status = 200): void {
  res.status(status).set('ETag', etagOf(c.revision)).json(classToJson(c));
}

/** A write's answer: the class, and the likely mistakes the API accepted in it (an empty list when none). */
function sendWritten(res: Response, { record, warnings }: Written, status = 200): void {
  res.status(status).set('ETag', etagOf(record.revision)).json({ ...classToJson(record), warnings });
}

const nameOf = (req: Request) => parse(classNameSchema, req.params.name, 'class name in the URL');

export function createClassesRouter({ classes, hosts }: { classes: ClassService; hosts: HostService }): Router {
  const router = Router();

  router.get('/', allow(...CLASS_READERS), async (req, res) => {
    const q = parse(listQuery, req.query, 'query');
    let labels = labelsFrom(q.label);
    if (q.host !== undefined) {
      const host = await hosts.get(q.host, res.locals.principal);
      labels = { ...host.labels, ...labels };
    }
    const page = await classes.list({ labels, after: q.after, limit: q.limit });
    res.set('X-Pacer-Revision', String(page.revision)).json({ revision: page.revision, items: page.items.map(classToJson), next: page.next });
  });

  router.post('/', allow(...EDITORS), async (req, res) => {
    const written = await classes.create(req.body, actorOf(res));
    res.location(`/v1/classes/${written.record.name}`);
    sendWritten(res, written, 201);
  });

  router.get('/:name', allow(...CLASS_READERS), async (req, res) => {
    sendClass(res, await classes.get(nameOf(req)));
  });

  router.put('/:name', allow(...EDITORS), async (req, res) => {
    sendWritten(res, await classes.replace(nameOf(req), req.body, req.get('if-match'), actorOf(res)));
  });

  router.patch('/:name', allow(...EDITORS), async (req, res) => {
    sendWritten(res, await classes.patch(nameOf(req), req.body, req.get('if-match'), actorOf(res)));
  });

  router.delete('/:name', allow(...EDITORS), async (req, res) => {
    await classes.remove(nameOf(req), req.get('if-match'), actorOf(res));
    res.status(204).end();
  });

  return router;
}
