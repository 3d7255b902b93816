/**
 * shaper-bpf/src/qdisc.ts against the real kernel, on veth pairs in network namespaces this
 * test creates. This kernel has no sch_fq: so the fq path is tested as the failure it is here
 * (FqUnavailableError, device untouched), and the mq tree is tested with leafKind 'pfifo'.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  FqUnavailableError,
  NoSuchInterfaceError,
  probeFq,
  QdiscNotRestorableError,
  restoreQdisc,
  setupFq,
  TcError,
  type QdiscTarget,
} from '../../shaper-bpf/src/qdisc.js';
import { checkTestAddress, execIn, listNetns, sweepStaleTestNetns, TEST_NETNS_PREFIX, TestNetns, useTestNetns } from '../support/netns.js';

interface RawQdisc {
  kind: string;
  handle: string;
  parent?: string;
  root?: boolean;
  options?: Record<string, unknown>;
}

/** What the kernel has, read with tc directly rather than through the parser under test. */
async function show(t: QdiscTarget): Promise<RawQdisc[]> {
  return JSON.parse(await execIn(t.netns!, 'tc', ['-j', 'qdisc', 'show', 'dev', t.iface])) as RawQdisc[];
}
const rootOf = async (t: QdiscTarget) => (await show(t)).find((q) => q.root === true);
const tcIn = (t: QdiscTarget, ...args: string[]) => execIn(t.netns!, 'tc', args);

const fq = { horizonNs: 2_000_000, flowLimit: 100 };
const pfifoLeaves = { ...fq, leafKind: 'pfifo' as const };

describe('qdisc set-up on the real kernel', function () {
  this.timeout(20_000);
  const nets = useTestNetns('afterEach');
  let dir: string;
  let record: string;

  before(async () => {
    await sweepStaleTestNetns();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacer-qdisc-'));
    record = join(dir, 'state', 'qdisc-va.json');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A veth pair va/vb in a fresh namespace; returns the target for va. */
  async function veth(txQueues = 1): Promise<QdiscTarget> {
    const ns = await nets.createTestNetns();
    await nets.vethPair({ a: { ns, name: 'va', addr: '10.77.0.1/24' }, b: { ns, name: 'vb', addr: '10.77.0.2/24' }, txQueues });
    return { iface: 'va', netns: ns };
  }

  it('probeFq says this kernel has no fq, and leaves no probe namespace behind', async () => {
    assert.equal(await probeFq(), false);
    assert.equal(await probeFq(), false); // cached
    assert.deepEqual((await listNetns()).filter((n) => n.startsWith('pacer-probe-')), []);
  });

  it('fq on a single-queue veth: FqUnavailableError, the previous root and clsact untouched, no record', async () => {
    const t = await veth(1);
    await tcIn(t, 'qdisc', 'add', 'dev', 'va', 'clsact');
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'root', 'pfifo', 'limit', '77');
    const before = await show(t);
    await assert.rejects(setupFq(t, fq, { saveTo: record }), (e: unknown) => {
      assert.ok(e instanceof FqUnavailableError);
      assert.equal(e.message, 'fq qdisc is not available on this kernel (sch_fq missing): pacer can only police, not shape, on va');
      return true;
    });
    assert.deepEqual(await show(t), before);
    assert.equal(existsSync(record), false);
  });

  it('fq on a 4-queue veth: the mq already added is rolled back to the previous pfifo limit 77', async () => {
    const t = await veth(4);
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'root', 'pfifo', 'limit', '77');
    const before = await show(t);
    const error = await setupFq(t, fq, { saveTo: record }).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof FqUnavailableError);
    // The failing command was a per-queue fq, so mq had been put in place before it failed.
    assert.ok(error.cause instanceof TcError);
    assert.deepEqual(error.cause.argv.slice(4, 7), ['va', 'parent', '1:1']);
    assert.deepEqual(await show(t), before);
    assert.equal(existsSync(record), false);
  });

  it('the mq plan on a 4-queue veth gives mq 1: with one leaf per tx queue', async () => {
    const t = await veth(4);
    const result = await setupFq(t, pfifoLeaves, { saveTo: record });
    assert.equal(result.applied.length, 5);
    const qdiscs = await show(t);
    assert.deepEqual(qdiscs.find((q) => q.root === true)?.kind, 'mq');
    assert.deepEqual(
      qdiscs.filter((q) => q.root !== true).map((q) => `${q.parent} ${q.kind}`).sort(),
      ['1:1 pfifo', '1:2 pfifo', '1:3 pfifo', '1:4 pfifo'],
    );
  });

  it('a second set-up changes nothing', async () => {
    const t = await veth(4);
    await setupFq(t, pfifoLeaves, { saveTo: record });
    const first = await show(t);
    const second = await setupFq(t, pfifoLeaves, { saveTo: record });
    assert.deepEqual(second, { applied: [], recorded: false });
    assert.deepEqual(await show(t), first); // same handles: nothing was re-created
  });

  it('restore brings back pfifo limit 77 with its handle, deletes the record, and is idempotent', async () => {
    const t = await veth(4);
    await tcIn(t, 'qdisc', 'add', 'dev', 'va', 'clsact');
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'root', 'pfifo', 'limit', '77');
    const before = await show(t);
    await setupFq(t, pfifoLeaves, { saveTo: record });
    assert.equal((await rootOf(t))?.kind, 'mq');
    await restoreQdisc(t, { saveFrom: record });
    assert.deepEqual(await show(t), before);
    assert.equal(existsSync(record), false);
    assert.deepEqual(await restoreQdisc(t, { saveFrom: record }), { applied: [] });
    assert.deepEqual(await show(t), before);
  });

  it('restore returns a device that had the default to the default', async () => {
    const t = await veth(4);
    const before = await show(t);
    assert.deepEqual(before.map((q) => `${q.kind} ${q.handle}`), ['noqueue 0:']);
    await setupFq(t, pfifoLeaves, { saveTo: record });
    await restoreQdisc(t, { saveFrom: record });
    assert.deepEqual(await show(t), before);
  });

  it('a second set-up does not overwrite the record of the true original', async () => {
    const t = await veth(4);
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'root', 'pfifo', 'limit', '77');
    await setupFq(t, pfifoLeaves, { saveTo: record });
    const saved = readFileSync(record, 'utf8');
    assert.deepEqual(JSON.parse(saved).root.options, { limit: 77 });
    // Drift behind pacer's back, so that the second set-up really has work to do.
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'parent', '1:2', 'bfifo');
    const second = await setupFq(t, pfifoLeaves, { saveTo: record });
    assert.deepEqual(second.applied, [['qdisc', 'replace', 'dev', 'va', 'parent', '1:2', 'pfifo']]);
    assert.equal(readFileSync(record, 'utf8'), saved);
    await restoreQdisc(t, { saveFrom: record });
    assert.deepEqual((await rootOf(t))?.options, { limit: 77 });
  });

  it('refuses to replace a root it could not put back, unless forced', async () => {
    const t = await veth(4);
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'root', 'handle', '1:', 'htb', 'default', '10');
    await assert.rejects(setupFq(t, pfifoLeaves, { saveTo: record }), QdiscNotRestorableError);
    assert.equal((await rootOf(t))?.kind, 'htb');
    await setupFq(t, pfifoLeaves, { saveTo: record, force: true });
    assert.equal((await rootOf(t))?.kind, 'mq');
    await restoreQdisc(t, { saveFrom: record });
    assert.deepEqual((await show(t)).map((q) => `${q.kind} ${q.handle}`), ['noqueue 0:']);
  });

  it('names the missing interface and its namespace', async () => {
    const t = { iface: 'nope0', netns: (await veth(1)).netns };
    await assert.rejects(setupFq(t, fq, { saveTo: record }), (e: unknown) => {
      assert.ok(e instanceof NoSuchInterfaceError);
      assert.equal(e.message, `no interface nope0 in netns ${t.netns}`);
      return true;
    });
  });

  it('a tc failure says which command ran where and what tc said; the record stays for a retry', async () => {
    const t = await veth(1);
    // A recorded fq (an operator's own) cannot be re-created on this fq-less kernel.
    const saved = { version: 1, iface: 'va', netns: t.netns, savedAt: '', restorable: true, root: { kind: 'fq', handle: '8123:', options: { limit: 5 }, children: [] } };
    mkdirSync(dirname(record), { recursive: true });
    writeFileSync(record, JSON.stringify(saved));
    await tcIn(t, 'qdisc', 'replace', 'dev', 'va', 'root', 'bfifo');
    const before = await show(t);
    await assert.rejects(restoreQdisc(t, { saveFrom: record }), (e: unknown) => {
      assert.ok(e instanceof TcError);
      assert.equal(e.message, `\`tc qdisc add dev va root handle 8123: fq limit 5\` failed on va in netns ${t.netns} (exit 2): Error: Specified qdisc kind is unknown.`);
      return true;
    });
    assert.deepEqual(await show(t), before); // the `del root` before the failed add was rolled back
    assert.ok(existsSync(record));
  });

  it('sweepStaleTestNetns deletes namespaces of finished runs and keeps those of live ones', async () => {
    const live = await nets.createTestNetns();
    const deadPid = Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }));
    const stale = `${TEST_NETNS_PREFIX}${deadPid}-dead`;
    execFileSync('ip', ['netns', 'add', stale]);
    try {
      const swept = await sweepStaleTestNetns();
      assert.ok(swept.includes(stale) && !swept.includes(live), `swept ${swept.join(', ')}`);
      assert.deepEqual((await listNetns()).filter((n) => n === stale || n === live), [live]);
    } finally {
      execFileSync('sh', ['-c', `ip netns del ${stale} 2>/dev/null || true`]);
    }
  });
});

describe('test/support/netns', function () {
  this.timeout(20_000);
  const nets = useTestNetns();

  it('vethPair joins two namespaces with 4 tx queues, reachable over IPv4 and IPv6', async () => {
    const [a, b] = [await nets.createTestNetns(), await nets.createTestNetns()];
    await nets.vethPair({ a: { ns: a, name: 'ea', addr: '10.78.0.1/24' }, b: { ns: b, name: 'eb', addr: '10.78.0.2/24' }, txQueues: 4 });
    await execIn(a, 'ip', ['addr', 'add', 'fd00:78::1/64', 'dev', 'ea', 'nodad']);
    await execIn(b, 'ip', ['addr', 'add', 'fd00:78::2/64', 'dev', 'eb', 'nodad']);
    const [link] = JSON.parse(await execIn(b, 'ip', ['-d', '-j', 'link', 'show', 'dev', 'eb'])) as Array<Record<string, unknown>>;
    assert.equal(link?.num_tx_queues, 4);
    // A one-line TCP server in b ('::' takes IPv4 too); a client in a must read its reply.
    const server = spawn('nsenter', [`--net=/run/netns/${b}`, process.execPath, '-e',
      "require('net').createServer((c) => c.end('pong')).listen(7777, '::', () => console.log('ready'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(server.stdout, 'data');
      const client = "const c = require('net').connect(7777, process.argv[1]); c.pipe(process.stdout); c.setTimeout(3000, () => process.exit(2))";
      assert.equal(await execIn(a, process.execPath, ['-e', client, '10.78.0.2']), 'pong');
      assert.equal(await execIn(a, process.execPath, ['-e', client, 'fd00:78::2']), 'pong');
    } finally {
      server.kill();
    }
  });

  it('refuses addresses outside 10.0.0.0/8 and fd00::/8', () => {
    for (const bad of ['192.168.1.1/24', '11.0.0.1/8', '10.0.0.1', 'fe80::1/64', '2001:db8::1/64']) {
      assert.throws(() => checkTestAddress(bad), /must be ADDR\/PREFIX/, bad);
    }
    for (const good of ['10.1.2.3/24', 'fd12:3456::1/64']) checkTestAddress(good);
  });

  it('cleanup is safe to call twice', async () => {
    const extra = new TestNetns();
    const name = await extra.createTestNetns();
    await extra.cleanup();
    await extra.cleanup();
    assert.ok(!(await listNetns()).includes(name));
    assert.deepEqual(extra.created, []);
  });
});

describe('qdisc set-up: afterwards', () => {
  it('left none of its network namespaces behind', async () => {
    const ours = (await listNetns()).filter((n) => n.startsWith(`${TEST_NETNS_PREFIX}${process.pid}-`) || n.startsWith(`pacer-probe-${process.pid}-`));
    assert.deepEqual(ours, []);
  });
});
