/** Planning pacer's rto_min routes from `ip -N -d -j route show` output: pure, no kernel. */
import assert from 'node:assert/strict';
import { canonicalDst, contains, supernets, deleteArgs, parseRoutes, planRoutes, putArgs, type KernelRoute, type RouteState } from '../../controller/datapath/route-plan.js';

// As `ip -4 -N -d -j route show table main` prints them on a host with a connected /24, a static
// /16 via a gateway, a blackhole and a default route.
const V4 = JSON.stringify([
  { type: '1', dst: 'default', gateway: '10.94.0.254', dev: 'ex0', protocol: '4', scope: '0', flags: [] },
  { type: '1', dst: '10.94.0.0/24', dev: 'ex0', protocol: '2', scope: '253', prefsrc: '10.94.0.1', flags: [] },
  { type: '1', dst: '10.98.0.0/16', gateway: '10.94.0.9', dev: 'ex0', protocol: '4', scope: '0', flags: ['onlink'] },
  { type: '6', dst: '10.97.0.0/16', protocol: '3', scope: '0', flags: [] },
  { type: '1', dst: '10.96.0.0/16', protocol: '4', scope: '0', flags: [], nexthops: [{ gateway: '10.94.0.7', dev: 'ex0' }, { gateway: '10.94.0.8', dev: 'ex0' }] },
]);
const V6 = JSON.stringify([{ type: '1', dst: 'fd00:94::/64', dev: 'ex0', protocol: '2', scope: '0', metric: 256, flags: [], pref: 'medium' }]);
const kernel = (): KernelRoute[] => [...parseRoutes(V4, 4), ...parseRoutes(V6, 6)];
const ours = (dst: string, extra: Record<string, unknown>) => parseRoutes(JSON.stringify([{ type: '1', dst, protocol: '112', scope: '0', flags: [], ...extra }]), dst.includes(':') ? 6 : 4);
const want = (entries: Array<[string, number, string, number]>): RouteState => new Map(entries.map(([dst, classId, className, rtoMinMs]) => [dst, { classId, className, rtoMinMs }]));

describe('route plan: rto_min routes for prefix-selected classes', () => {
  it('parses ip -N -d -j output: canonical prefixes, types by name, rto_min, onlink, multipath', () => {
    const r = parseRoutes(V4, 4);
    assert.deepEqual(r.map((x) => x.dst), ['0.0.0.0/0', '10.94.0.0/24', '10.98.0.0/16', '10.97.0.0/16', '10.96.0.0/16']);
    assert.deepEqual([r[3]!.type, r[2]!.onlink, r[4]!.multipath, r[1]!.protocol], ['blackhole', true, true, 2]);
    assert.equal(ours('10.94.0.2', { dev: 'ex0', metrics: [{ rto_min: 20 }] })[0]!.rtoMinMs, 20);
    assert.equal(canonicalDst('10.94.0.2', 4), '10.94.0.2/32');
    assert.equal(canonicalDst('default', 6), '::/0');
    assert.ok(contains('10.94.0.0/24', '10.94.0.2/32') && !contains('10.94.0.2/32', '10.94.0.0/24') && contains('0.0.0.0/0', '10.1.0.0/16'));
    assert.deepEqual(supernets('10.94.1.0/24').slice(0, 3), ['10.94.1.0/24', '10.94.0.0/23', '10.94.0.0/22']);
    assert.deepEqual(supernets('10.94.1.0/24').slice(-2), ['0.0.0.0/1', '0.0.0.0/0']);
    assert.equal(supernets('fd00:94::2/128').length, 129);
    assert.equal(supernets('fd00:94::2/128')[64], 'fd00:94::/64');
  });

  it('copies the nexthop of the most specific route: connected (dev + src), via a gateway (onlink kept), IPv6', () => {
    const plan = planRoutes(kernel(), want([['10.94.0.2/32', 1, 'a', 20], ['10.98.1.0/24', 2, 'b', 5], ['fd00:94::2/128', 3, 'c', 8], ['10.200.0.0/16', 4, 'd', 10]]));
    assert.deepEqual(plan.classErrors, new Map());
    assert.deepEqual(plan.put.map(putArgs), [
      ['-4', 'route', 'replace', '10.94.0.2/32', 'dev', 'ex0', 'src', '10.94.0.1', 'proto', '112', 'rto_min', '20ms'],
      ['-4', 'route', 'replace', '10.98.1.0/24', 'via', '10.94.0.9', 'dev', 'ex0', 'onlink', 'proto', '112', 'rto_min', '5ms'],
      ['-6', 'route', 'replace', 'fd00:94::2/128', 'dev', 'ex0', 'proto', '112', 'rto_min', '8ms'],
      ['-4', 'route', 'replace', '10.200.0.0/16', 'via', '10.94.0.254', 'dev', 'ex0', 'proto', '112', 'rto_min', '10ms'],
    ]);
    assert.deepEqual(plan.remove, []);
  });

  it('refuses, per class and with the reason: an existing route for the prefix, more specific routes inside, blackhole, multipath, no route; the class gets none of its routes', () => {
    const noDefault = kernel().filter((r) => r.dst !== '0.0.0.0/0');
    const plan = planRoutes(noDefault, want([['10.94.0.0/24', 1, 'exact', 20], ['10.0.0.0/8', 2, 'wide', 20], ['10.97.1.0/24', 3, 'hole', 20], ['10.96.1.0/24', 4, 'multi', 20], ['10.250.0.0/16', 5, 'nowhere', 20], ['10.94.0.3/32', 5, 'nowhere', 20], ['10.94.0.2/32', 6, 'fine', 20]]));
    const err = (id: number) => plan.classErrors.get(id)?.error ?? '';
    assert.match(err(1), /^route rto_min for 10\.94\.0\.0\/24: the route 10\.94\.0\.0\/24 dev ex0 proto kernel exists for exactly this prefix and is not pacer's/);
    assert.match(err(2), /it contains the more specific routes 10\.94\.0\.0\/24 dev ex0 proto kernel, 10\.98\.0\.0\/16 via 10\.94\.0\.9 dev ex0 proto static, blackhole 10\.97\.0\.0\/16 proto boot, …, whose connections would not get rto_min/);
    assert.match(err(3), /routed by blackhole 10\.97\.0\.0\/16 proto boot: no path to copy/);
    assert.match(err(4), /multipath route 10\.96\.0\.0\/16 \(multipath\) proto static; pacer copies single-path routes only/);
    assert.equal(err(5), 'route rto_min for 10.250.0.0/16: no route in the main table carries it');
    assert.equal(plan.classErrors.get(5)?.class, 'nowhere');
    assert.deepEqual([...plan.target.keys()], ['10.94.0.2/32'], 'class 5 gets neither of its prefixes; class 6 is applied');
  });

  it('diffs against pacer\'s own routes: unchanged ones stay, changed ones are replaced, unwanted and off-slot ones deleted; others\' routes never', () => {
    const current = [
      ...kernel(),
      ...ours('10.94.0.2', { dev: 'ex0', prefsrc: '10.94.0.1', metrics: [{ rto_min: 20 }] }), // as wanted
      ...ours('10.94.0.3', { dev: 'ex0', prefsrc: '10.94.0.1', metrics: [{ rto_min: 20 }] }), // rto_min changes
      ...ours('10.94.0.4', { dev: 'ex0', prefsrc: '10.94.0.1', metrics: [{ rto_min: 20 }] }), // class gone
      ...ours('10.94.0.2', { dev: 'ex0', metric: 5, metrics: [{ rto_min: 20 }] }), // a second one, in another slot
    ];
    const plan = planRoutes(current, want([['10.94.0.2/32', 1, 'a', 20], ['10.94.0.3/32', 2, 'b', 30]]));
    assert.deepEqual(plan.put.map((s) => [s.dst, s.rtoMinMs]), [['10.94.0.3/32', 30]]);
    assert.deepEqual(plan.remove.map(deleteArgs), [
      ['-4', 'route', 'del', '10.94.0.4/32', 'proto', '112'],
      ['-4', 'route', 'del', '10.94.0.2/32', 'proto', '112', 'metric', '5'],
    ]);
    // pacer's own route for a prefix is not "an existing route for exactly this prefix".
    assert.deepEqual(plan.classErrors, new Map());
  });

  it('a family whose routes cannot be read refuses its prefixes only', () => {
    const plan = planRoutes(parseRoutes(V4, 4), want([['10.94.0.2/32', 1, 'a', 20], ['fd00:94::2/128', 2, 'b', 20]]), { 6: 'Address family not supported' });
    assert.deepEqual([...plan.target.keys()], ['10.94.0.2/32']);
    assert.match(plan.classErrors.get(2)!.error, /the IPv6 routes cannot be read: Address family not supported/);
  });
});
