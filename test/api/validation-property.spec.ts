/**
 * Property: no input yields a 5xx, and an invalid input never writes. Bodies are random JSON,
 * and valid bodies with one field replaced by a random value.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

const VALID = { name: 'base', rate: '10mbit', ceil: '20mbit', burst: '64kb', horizon: '1s', weight: 5, match: { marks: [1], dst: ['10.0.0.0/8'] }, hosts: { matchLabels: { rack: 'r1' } }, tcp: { rtoMin: '5ms' }, ecn: { threshold: '500us' } };
// ecn.threshold stays below every horizon the API accepts (1 ms and up), so a broken horizon is reported at /horizon alone.
const FIELDS = [...Object.keys(VALID), 'parent', 'description', 'unknown'];

describe('validation properties (random bodies over real HTTP)', function () {
  this.timeout(120_000);
  let t: TestApi;
  let revision: number;
  const currentRevision = async () => (await request(t.url, 'GET', '/v1/classes?limit=1')).body.revision as number;

  before(async () => {
    t = await startTestApi();
    const base = await request(t.url, 'POST', '/v1/classes', { body: VALID });
    assert.equal(base.status, 201);
    revision = base.body.revision;
  });
  after(async () => {
    await t.close();
  });

  it('random JSON bodies never yield a 5xx, and a 4xx never writes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.constantFrom('POST /v1/classes', 'PUT /v1/classes/base', 'PATCH /v1/classes/base', 'PUT /v1/hosts/h1/status', 'POST /v1/tokens'), async (body, route) => {
        const [method, path] = route.split(' ') as [string, string];
        const r = await request(t.url, method, path, { body, headers: { 'if-match': '*' } });
        assert.ok(r.status < 500, `${route} ${JSON.stringify(body)} → ${r.status}`);
        if (r.status >= 400) {
          assert.equal(r.headers.get('content-type'), 'application/problem+json; charset=utf-8');
          assert.equal(await currentRevision(), revision, `a ${r.status} wrote something`);
        } else {
          revision = await currentRevision();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a valid class with one field broken is a 400 that names that field, and writes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FIELDS), fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string()), fc.object()), async (field, value) => {
        const body: Record<string, unknown> = { ...VALID, name: 'probe', match: {}, [field]: value };
        const r = await request(t.url, 'POST', '/v1/classes', { body });
        assert.ok(r.status < 500, `${field}=${JSON.stringify(value)} → ${r.status}`);
        if (r.status === 201) {
          // Some random values are valid (e.g. a description); clean up and move on.
          await request(t.url, 'DELETE', '/v1/classes/probe', { headers: { 'if-match': r.body.etag } });
          revision = await currentRevision();
          return;
        }
        assert.ok(r.status === 400 || r.status === 409, `${field}=${JSON.stringify(value)} → ${r.status}`);
        // A rate above the base's ceil is reported at /ceil: "ceil must be at least rate".
        const related = field === 'rate' ? ['/rate', '/ceil'] : [`/${field}`];
        assert.ok(r.body.errors.some((e: { path: string }) => related.some((p) => e.path === p || e.path.startsWith(`${p}/`))), `${field}: ${JSON.stringify(r.body.errors)}`);
        assert.equal(await currentRevision(), revision);
      }),
      { numRuns: 200 },
    );
  });

  it('raw garbage bodies and headers never yield a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), fc.constantFrom('application/json', 'application/merge-patch+json', 'text/plain', 'application/json; charset=latin1'), async (raw, type) => {
        const r = await request(t.url, 'POST', '/v1/classes', { rawBody: raw, headers: { 'content-type': type } });
        assert.ok(r.status >= 400 && r.status < 500 || r.status === 201, `${JSON.stringify(raw)} as ${type} → ${r.status}`);
        if (r.status === 201) {
          await request(t.url, 'DELETE', `/v1/classes/${r.body.name}`, { headers: { 'if-match': '*' } });
          revision = await currentRevision();
        }
      }),
      { numRuns: 150 },
    );
  });
});
