/** `pacer audit` against a real API: who changed what, with the fields each change changed (issue 11). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { changeText } from '../../api/cli/audit-command.js';
import { fieldChanges } from '../../api/cli/field-changes.js';
import { startTestApi, request, ADMIN_TOKEN, type TestApi } from '../support/api-server.js';

const CLI = join(process.cwd(), 'dist/api/cli/pacer.js');

describe('pacer audit', function () {
  this.timeout(30_000);
  let t: TestApi | undefined;
  after(async () => t?.close());

  it('lists changes newest first with who made them and what they changed; --name filters; --json gives the API\'s items', async () => {
    t = await startTestApi();
    const env = { ...process.env, PACER_TOKEN: ADMIN_TOKEN, PACER_API: t.url };
    const c = (await request(t.url, 'POST', '/v1/classes', { body: { name: 'web', rate: '1gbit', match: { dst: ['10.0.0.0/8'] } } })).body;
    await request(t.url, 'PATCH', '/v1/classes/web', { body: { rate: '2gbit', match: { dst: ['10.0.0.0/8', '192.168.0.0/16'] } }, headers: { 'if-match': c.etag } });
    await request(t.url, 'POST', '/v1/classes', { body: { name: 'db', rate: '1mbit' } });
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'audit', '--name', 'web'], { env });
    const rows = stdout.trim().split('\n');
    assert.match(rows[0]!, /REVISION\s+AT\s+BY\s+ACTION\s+KIND\s+NAME\s+CHANGES/);
    assert.match(stdout, /updated\s+class\s+web\s+match\.dst 10\.0\.0\.0\/8 → 10\.0\.0\.0\/8,192\.168\.0\.0\/16; rate 1gbit → 2gbit\n/);
    assert.match(stdout, /created\s+class\s+web\s+[^\n]*match\.dst <none> → 10\.0\.0\.0\/8; name <none> → web; rate <none> → 1gbit/);
    assert.doesNotMatch(stdout, /marks|cgroups|createdRevision/, 'empty and bookkeeping fields are left out');
    assert.doesNotMatch(stdout, /\bdb\b/, '--name filters');
    const json = JSON.parse((await promisify(execFile)(process.execPath, [CLI, 'audit', '--json', '--limit', '2'], { env })).stdout) as Array<{ name: string; action: string }>;
    assert.deepEqual(json.map((e) => [e.action, e.name]), [['created', 'db'], ['updated', 'web']]);
  });

  it('field changes: quantities by their text, nothing as <none>, bookkeeping left out', () => {
    assert.deepEqual(fieldChanges({ rate: { bps: 1, text: '1bit' }, ceil: null, revision: 3, etag: 'a' }, { rate: { bps: 2, text: '2bit' }, ceil: { text: '5bit' }, revision: 4, etag: 'b' }), ['ceil <none> → 5bit', 'rate 1bit → 2bit']);
    assert.equal(changeText({ revision: 1, at: '', actor: 'a', kind: 'class', action: 'updated', name: 'x', before: { weight: 1 }, after: { weight: 1 } }), '(no field changed)');
  });
});
