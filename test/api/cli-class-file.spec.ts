/**
 * `pacer class get --json` → edit → `pacer class set -f`, and the API's warnings on stderr:
 * the real CLI as a child process against a real API on a real SQLite file (issue 11).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, request, startTestApi, type TestApi } from '../support/api-server.js';

const PACER = join(process.cwd(), 'dist/api/cli/pacer.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('pacer class set -f and warnings, against a real API', function () {
  this.timeout(30_000);
  let t: TestApi;
  let dir: string;

  /** Runs `pacer …` with `stdin` as its input; never throws for a non-zero exit. */
  const cli = (args: string[], stdin = ''): Promise<Run> =>
    new Promise((resolve, reject) => {
      const env = { ...process.env, PACER_TOKEN: ADMIN_TOKEN, PACER_API: t.url };
      const child = execFile(process.execPath, [PACER, ...args], { env, timeout: 15_000 }, (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        if (typeof code !== 'number') return reject(err);
        resolve({ code, stdout, stderr });
      });
      child.stdin!.end(stdin);
    });
  const get = async (name: string) => (await request(t.url, 'GET', `/v1/classes/${name}`)).body;
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  beforeEach(async () => {
    t = await startTestApi();
    dir = mkdtempSync(join(tmpdir(), 'pacer-class-file-'));
  });
  afterEach(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('get --json, edit, set -f: the class is replaced with the edit and keeps its id', async () => {
    assert.equal((await cli(['class', 'set', 'web', '--rate', '1gbit', '--dst', '10.0.0.0/8'])).code, 0);
    const got = await cli(['class', 'get', 'web', '--json']);
    const edited = JSON.parse(got.stdout);
    edited.rate = '2gbit';
    edited.match.dst = ['10.0.0.0/8', '192.168.0.0/16'];
    const path = file('web.json', JSON.stringify(edited, null, 2));
    const r = await cli(['class', 'set', '-f', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^updated class web \(id \d+, revision \d+\)/);
    const now = await get('web');
    assert.equal(now.rate.text, '2gbit');
    assert.deepEqual(now.match.dst, ['10.0.0.0/8', '192.168.0.0/16']);
    assert.equal(now.id, edited.id);
  });

  it('set -f of a file read before someone else changed the class is refused and changes nothing', async () => {
    await cli(['class', 'set', 'web', '--rate', '1gbit', '--dst', '10.0.0.0/8']);
    const path = file('web.json', (await cli(['class', 'get', 'web', '--json'])).stdout.replace('"1gbit"', '"3gbit"'));
    assert.equal((await cli(['class', 'set', 'web', '--weight', '7'])).code, 0);
    const before = await get('web');
    const r = await cli(['class', 'set', 'web', '-f', path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^pacer: class web changed since ${path} was read: the file is at revision \\d+, the class at ${before.revision}\\.\\n  Get it again \\(pacer class get web --json\\)`));
    assert.deepEqual(await get('web'), before);
  });

  it('a YAML file without a revision creates the class, then replaces it as it is; - reads stdin', async () => {
    const yaml = 'name: db\nrate: 10mbit\nmatch:\n  marks: [5]\n';
    const made = await cli(['class', 'set', '-f', file('db.yaml', yaml)]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^created class db /);
    await cli(['class', 'set', 'db', '--weight', '3']);
    const replaced = await cli(['class', 'set', 'db', '-f', '-'], yaml.replace('10mbit', '20mbit'));
    assert.equal(replaced.code, 0, replaced.stderr);
    const now = await get('db');
    assert.equal(now.rate.text, '20mbit');
    assert.equal(now.weight, 1, 'a field the file leaves out takes its default: -f replaces the whole class');
  });

  it('refuses a name that differs from the file\'s, field flags beside -f, and a file that is not one object', async () => {
    const path = file('web.json', JSON.stringify({ name: 'web', rate: '1gbit' }));
    let r = await cli(['class', 'set', 'other', '-f', path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /describes class "web" but the command names other; a class cannot be renamed/);
    r = await cli(['class', 'set', '-f', path, '--rate', '2gbit']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /-f replaces the whole class with the file; do not combine it with field flags \(given: rate\)/);
    r = await cli(['class', 'set', '-f', file('list.json', '[1, 2]')]);
    assert.match(r.stderr, /must hold one class as an object/);
    r = await cli(['class', 'set', '-f', file('bad.json', '{"name": "web", ')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is not valid JSON or YAML/);
    r = await cli(['class', 'set']);
    assert.match(r.stderr, /class set needs a class name/);
    assert.equal((await request(t.url, 'GET', '/v1/classes')).body.items.length, 0);
  });

  it('set -f of another class\'s JSON under a new name: the API\'s message says to remove id, revision and createdRevision', async () => {
    await cli(['class', 'set', 'web', '--rate', '1gbit', '--dst', '10.0.0.0/8']);
    const copy = { ...JSON.parse((await cli(['class', 'get', 'web', '--json'])).stdout), name: 'web2', match: { dst: ['10.1.0.0/16'] } };
    const r = await cli(['class', 'set', '-f', file('web2.json', JSON.stringify(copy))]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /remove id, revision, createdRevision to create "web2" from it \(HTTP 400/);
  });

  it('prints the API\'s warnings on stderr, with --json too (stdout stays the JSON)', async () => {
    let r = await cli(['class', 'set', 'web', '--rate', '100mbps', '--burst', '1000']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 3, r.stderr);
    assert.equal(lines[0], 'warning: rate 100mbps read as 100 megabytes/s = 800 Mbit/s, as tc reads it; write 100mbit for 100 megabits/s');
    assert.match(lines[1]!, /^warning: burst 1000b is less than one full-size packet \(1500 bytes\)/);
    assert.match(lines[2]!, /^warning: class web has no selector/);
    assert.match(r.stdout, /^created class web/);
    r = await cli(['class', 'set', 'web', '--ceil', '1gbps', '--dst', '10.0.0.0/8', '--burst', '0', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'warning: ceil 1gbps read as 1 gigabytes/s = 8 Gbit/s, as tc reads it; write 1gbit for 1 gigabits/s\n');
    assert.equal(JSON.parse(r.stdout).ceil.text, '8gbit');
    // The file written from a write's --json answer (warnings and all) goes back through -f.
    const path = file('web.json', r.stdout);
    r = await cli(['class', 'set', '-f', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.ok(readFileSync(path, 'utf8').includes('"warnings"'));
  });
});
