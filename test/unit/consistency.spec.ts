import assert from 'node:assert/strict';
import { checkClass, checkClassSet, MemoryClassIndex } from '../../api/contract/consistency.js';
import type { ClassSpec } from '../../api/contract/class.js';

const cls = (name: string, rate: number, extra: Partial<ClassSpec> = {}): ClassSpec => ({
  name,
  description: '',
  rate,
  ceil: null,
  burst: { bytes: 0 },
  horizon: 2e9,
  parent: null,
  weight: 1,
  match: { marks: [], cgroups: [], dst: [] },
  hosts: { matchLabels: {} },
  tcp: null,
  ecn: null,
  ...extra,
});

describe('class consistency rules', () => {
  it('a consistent set has no conflicts', () => {
    assert.deepEqual(checkClassSet([cls('root', 100, { ceil: 200 }), cls('a', 60, { parent: 'root', ceil: 200 }), cls('b', 40, { parent: 'root' })]), []);
  });

  it('reports over-subscription once, naming the parent and every child', () => {
    const conflicts = checkClassSet([cls('root', 100), cls('a', 60, { parent: 'root' }), cls('b', 50, { parent: 'root' })]);
    assert.equal(conflicts.length, 1);
    assert.deepEqual(conflicts[0]!.classes, ['root', 'a', 'b']);
  });

  it('checks a write against the index, replacing the class it rewrites', () => {
    const index = new MemoryClassIndex([cls('root', 100), cls('a', 60, { parent: 'root' }), cls('b', 40, { parent: 'root' })]);
    assert.deepEqual(checkClass(cls('a', 60, { parent: 'root' }), index), []);
    const grow = checkClass(cls('a', 61, { parent: 'root' }), index);
    assert.equal(grow.length, 1);
    assert.match(grow[0]!.message, /101bit in total/);
    const shrinkParent = checkClass(cls('root', 99), index);
    assert.deepEqual(shrinkParent[0]!.classes, ['root', 'a', 'b']);
  });

  it('depth counts the subtree below a class that is re-parented', () => {
    const index = new MemoryClassIndex([cls('r', 100), cls('x', 100), cls('y', 10, { parent: 'x' }), cls('z', 5, { parent: 'y' })]);
    assert.deepEqual(checkClass(cls('x', 50, { parent: 'r' }), index), []);
    const deeper = new MemoryClassIndex([...index.values(), cls('w', 1, { parent: 'z' })]);
    const c = checkClass(cls('x', 50, { parent: 'r' }), deeper);
    assert.equal(c.length, 1);
    assert.match(c[0]!.message, /r → x → y → z → w is 5/);
  });

  it('the index tracks selector owners and children through set and delete', () => {
    const index = new MemoryClassIndex([cls('a', 1, { match: { marks: [7], cgroups: [], dst: ['10.0.0.0/8'] } })]);
    assert.equal(index.ownerOf('marks', '7'), 'a');
    index.set(cls('a', 1, { match: { marks: [8], cgroups: [], dst: [] } }));
    assert.equal(index.ownerOf('marks', '7'), undefined);
    assert.equal(index.ownerOf('dst', '10.0.0.0/8'), undefined);
    assert.equal(index.ownerOf('marks', '8'), 'a');
    index.set(cls('b', 1, { parent: 'a' }));
    assert.deepEqual([...index.childrenOf('a')].map((c) => c.name), ['b']);
    index.delete('b');
    assert.deepEqual([...index.childrenOf('a')], []);
  });
});
