/**
 * Likely mistakes the API accepts but warns about, in the answer of POST, PUT and PATCH (issue 11).
 * Real HTTP, real SQLite.
 */
import assert from 'node:assert/strict';
import { startTestApi, request, type TestApi } from '../support/api-server.js';

type Warning = { path: string; message: string };

describe('/v1/classes: warnings about likely mistakes', () => {
  let t: TestApi;
  const call = (method: string, path: string, options?: Parameters<typeof request>[3]) => request(t.url, method, path, options);
  const create = (body: object) => call('POST', '/v1/classes', { body });
  const paths = (warnings: Warning[]) => warnings.map((w) => w.path);
  const SELECTS = { match: { dst: ['10.0.0.0/8'] } };

  beforeEach(async () => {
    t = await startTestApi();
  });
  afterEach(async () => {
    await t.close();
  });

  it('a rate or ceil in a bytes unit spelled like bits is taken as tc takes it, and the answer says what it was read as', async () => {
    const r = await create({ name: 'web', rate: '100mbps', ceil: '1Gbps', ...SELECTS });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.rate.text, '800mbit');
    assert.deepEqual(r.body.warnings, [
      { path: '/rate', message: 'rate 100mbps read as 100 megabytes/s = 800 Mbit/s, as tc reads it; write 100mbit for 100 megabits/s' },
      { path: '/ceil', message: 'ceil 1Gbps read as 1 gigabytes/s = 8 Gbit/s, as tc reads it; write 1gbit for 1 gigabits/s' },
    ]);
    // A GET is not a write: no warnings there.
    assert.equal('warnings' in (await call('GET', '/v1/classes/web')).body, false);
  });

  it('no warning for bits, bare integers, the objects the API returns, or bytes written with a capital B', async () => {
    for (const [name, rate] of [['a', '100mbit'], ['b', 100_000_000], ['c', { bitsPerSecond: 800_000_000, text: '100mbps' }], ['d', '100MBps'], ['e', '64KiBps']] as const) {
      const r = await create({ name, rate, match: { marks: [name.charCodeAt(0)] } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.deepEqual(r.body.warnings, [], `${name}: ${JSON.stringify(rate)}`);
    }
  });

  it('a burst above 0 but under one full-size packet says why it matters; 0 and a packet or more do not', async () => {
    const bytes = await create({ name: 'small', rate: '1gbit', burst: 1000, ...SELECTS });
    assert.deepEqual(paths(bytes.body.warnings), ['/burst']);
    assert.match(bytes.body.warnings[0].message, /^burst 1000b is less than one full-size packet \(1500 bytes\): a class back from idle still cannot send two packets back to back/);
    const time = await create({ name: 'short', rate: '1gbit', burst: '1us', match: { dst: ['10.1.0.0/16'] } });
    assert.match(time.body.warnings[0].message, /^burst 1us is 125 bytes at rate 1gbit, so it is less than one full-size packet/);
    for (const [name, burst, i] of [['strict', 0, 2], ['one-packet', 1500, 3], ['one-ms', '1ms', 4]] as const) {
      const r = await create({ name, rate: '1gbit', burst, match: { dst: [`10.${i}.0.0/16`] } });
      assert.deepEqual(r.body.warnings, [], name);
    }
  });

  it('a class that no selector and no child leads traffic to is warned about, until it has either', async () => {
    const parent = await create({ name: 'site', rate: '10gbit' });
    assert.deepEqual(paths(parent.body.warnings), ['/match']);
    assert.match(parent.body.warnings[0].message, /^class site has no selector .* and no child class, so it matches no traffic/);
    const child = await create({ name: 'web', rate: '1gbit', parent: 'site', ...SELECTS });
    assert.deepEqual(child.body.warnings, []);
    const again = await call('PATCH', '/v1/classes/site', { body: { weight: 2 }, headers: { 'if-match': parent.body.etag } });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.warnings, [], 'a parent needs no selector of its own');
  });

  it('PUT and PATCH warn about what they write; a rate the class already holds is not warned about again', async () => {
    const c = (await create({ name: 'web', rate: '1gbit', ...SELECTS })).body;
    const put = await call('PUT', '/v1/classes/web', { body: { rate: '10mbps', ...SELECTS }, headers: { 'if-match': c.etag } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(paths(put.body.warnings), ['/rate']);
    const ceil = await call('PATCH', '/v1/classes/web', { body: { ceil: '100mbps' }, headers: { 'if-match': put.body.etag } });
    assert.equal(ceil.status, 200, JSON.stringify(ceil.body));
    assert.deepEqual(paths(ceil.body.warnings), ['/ceil'], 'the rate kept from before is in bits now');
    const weight = await call('PATCH', '/v1/classes/web', { body: { weight: 5 }, headers: { 'if-match': ceil.body.etag } });
    assert.deepEqual(weight.body.warnings, []);
  });

  it('a refused write answers its problem, not warnings', async () => {
    const r = await create({ name: 'web', rate: '100mbps', ceil: '1mbit' });
    assert.equal(r.status, 400);
    assert.equal('warnings' in r.body, false);
    assert.deepEqual(paths(r.body.errors), ['/ceil']);
  });
});
