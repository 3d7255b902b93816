/**
 * The authorization matrix: every role, and no token, against every endpoint.
 * "allowed" means the request got past authentication and authorization (any status but 401/403).
 */
import assert from 'node:assert/strict';
import { startTestApi, request, tokenFor, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';

type Who = 'none' | 'admin' | 'editor' | 'viewer' | 'agent' | 'otherAgent';
const ALL: Who[] = ['admin', 'editor', 'viewer', 'agent', 'otherAgent'];

interface Case {
  method: string;
  path: string;
  body?: unknown;
  ifMatch?: boolean;
  allowed: Who[];
}

// The agent's token is bound to host "h1"; otherAgent's to "h2".
const CASES: Case[] = [
  { method: 'GET', path: '/healthz', allowed: ['none', ...ALL] },
  { method: 'GET', path: '/readyz', allowed: ALL },
  { method: 'GET', path: '/metrics', allowed: ['admin', 'editor', 'viewer'] },
  { method: 'GET', path: '/v1/openapi.json', allowed: ['admin', 'editor', 'viewer'] },
  { method: 'GET', path: '/docs/', allowed: ['none', ...ALL] },
  { method: 'GET', path: '/v1/classes', allowed: ALL },
  { method: 'GET', path: '/v1/classes/seed', allowed: ALL },
  { method: 'POST', path: '/v1/classes', body: { name: 'new', rate: '1mbit' }, allowed: ['admin', 'editor'] },
  { method: 'PUT', path: '/v1/classes/seed', body: { rate: '2mbit' }, ifMatch: true, allowed: ['admin', 'editor'] },
  { method: 'PATCH', path: '/v1/classes/seed', body: { rate: '3mbit' }, ifMatch: true, allowed: ['admin', 'editor'] },
  { method: 'DELETE', path: '/v1/classes/nonexistent', ifMatch: true, allowed: ['admin', 'editor'] },
  { method: 'GET', path: '/v1/hosts', allowed: ['admin', 'editor', 'viewer'] },
  { method: 'GET', path: '/v1/hosts/h1', allowed: ['admin', 'editor', 'viewer', 'agent'] },
  { method: 'PUT', path: '/v1/hosts/h1', body: { labels: { rack: 'r1' } }, allowed: ['admin', 'agent'] },
  { method: 'PUT', path: '/v1/hosts/h1/status', body: { appliedRevision: 1, mode: 'shaping' }, allowed: ['admin', 'agent'] },
  { method: 'DELETE', path: '/v1/hosts/nonexistent', allowed: ['admin', 'editor'] },
  { method: 'GET', path: '/v1/audit', allowed: ['admin', 'editor', 'viewer'] },
  { method: 'GET', path: '/v1/tokens', allowed: ['admin'] },
  { method: 'POST', path: '/v1/tokens', body: { name: 'x', role: 'viewer' }, allowed: ['admin'] },
  { method: 'DELETE', path: '/v1/tokens/tok_000000000000', allowed: ['admin'] },
  { method: 'GET', path: '/v1/watch?since=0', allowed: ALL },
  { method: 'GET', path: '/v1/backup', allowed: ['admin'] },
];

describe('authorization: every role × every endpoint', () => {
  let t: TestApi;
  const tokens: Record<Who, string | null> = { none: null, admin: ADMIN_TOKEN, editor: '', viewer: '', agent: '', otherAgent: '' };

  before(async () => {
    t = await startTestApi();
    tokens.editor = await tokenFor(t.url, 'editor');
    tokens.viewer = await tokenFor(t.url, 'viewer');
    tokens.agent = await tokenFor(t.url, 'agent', 'h1');
    tokens.otherAgent = await tokenFor(t.url, 'agent', 'h2');
    await request(t.url, 'PUT', '/v1/hosts/h1', { body: { labels: {} } });
    await request(t.url, 'POST', '/v1/classes', { body: { name: 'seed', rate: '1mbit' } });
  });
  after(async () => {
    await t.close();
  });

  for (const c of CASES) {
    for (const who of ['none', ...ALL] as Who[]) {
      const allowed = c.allowed.includes(who);
      it(`${c.method} ${c.path} as ${who}: ${allowed ? 'allowed' : who === 'none' ? '401' : '403'}`, async () => {
        const headers: Record<string, string> = {};
        if (c.ifMatch) headers['if-match'] = '*';
        const abort = new AbortController();
        const res = await fetch(t.url + c.path, {
          method: c.method,
          headers: {
            ...headers,
            ...(tokens[who] ? { authorization: `Bearer ${tokens[who]}` } : {}),
            ...(c.body ? { 'content-type': 'application/json' } : {}),
          },
          body: c.body ? JSON.stringify(c.body) : undefined,
          signal: abort.signal,
        });
        abort.abort(); // the watch stream never ends by itself
        if (allowed) assert.ok(res.status !== 401 && res.status !== 403, `got ${res.status}`);
        else assert.equal(res.status, who === 'none' ? 401 : 403);
        if (res.status >= 500) assert.fail(`5xx: ${res.status}`);
      });
    }
  }

  it('a revoked token is refused, and a malformed Authorization header is a 401', async () => {
    const r = await request(t.url, 'POST', '/v1/tokens', { body: { name: 'short-lived', role: 'viewer' } });
    assert.equal((await request(t.url, 'GET', '/v1/classes', { token: r.body.token })).status, 200);
    assert.equal((await request(t.url, 'DELETE', `/v1/tokens/${r.body.id}`)).status, 200);
    const after = await request(t.url, 'GET', '/v1/classes', { token: r.body.token });
    assert.equal(after.status, 401);
    assert.match(after.body.detail, /revoked/);
    const bad = await request(t.url, 'GET', '/v1/classes', { token: null, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('www-authenticate'), 'Bearer realm="pacer"');
  });
});
