/**
 * /docs: Swagger UI from the swagger-ui-dist package (served locally, no CDN). The page itself
 * holds no data; it asks for a token and sends it with every request, the spec fetch included,
 * because nothing but /healthz is readable without one.
 */
import express, { Router } from 'express';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>pacer API</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body>
<form id="auth" style="font-family:sans-serif;padding:8px">
  <label>Bearer token <input id="token" type="password" size="60" autocomplete="off"></label>
  <button type="submit">Load the API</button>
</form>
<div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>`;

const INIT = `
const input = document.getElementById('token');
input.value = sessionStorage.getItem('pacer-token') || '';
function load() {
  const token = input.value.trim();
  sessionStorage.setItem('pacer-token', token);
  SwaggerUIBundle({
    url: '/v1/openapi.json',
    dom_id: '#ui',
    requestInterceptor: (req) => { req.headers.Authorization = 'Bearer ' + token; return req; },
  });
}
document.getElementById('auth').addEventListener('submit', (e) => { e.preventDefault(); load(); });
if (input.value) load();
`;

export function createDocsRouter(): Router {
  const router = Router();
  const assets = dirname(require.resolve('swagger-ui-dist/package.json'));
  router.get('/', (_req, res) => {
    res.type('html').set('Content-Security-Policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'").send(PAGE);
  });
  router.get('/init.js', (_req, res) => {
    res.type('js').send(INIT);
  });
  router.use('/assets', express.static(assets, { index: false, maxAge: '1h' }));
  return router;
}
