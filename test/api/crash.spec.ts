/**
 * Durability: the API runs as a child process, takes concurrent writes, and is killed with SIGKILL
 * mid-stream. On restart, every acknowledged write is there, and nothing is half there.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from '../support/api-server.js';
import { startApiChild, killed } from '../support/api-process.js';
import { until } from '../support/agent-processes.js';

describe('crash safety (SIGKILL during concurrent writes)', function () {
  this.timeout(60_000);
  let dir: string;
  const children: ChildProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacer-crash-'));
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => killed(c)));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const killAfterMs of [150, 400, 900]) {
    it(`loses no acknowledged write and leaves no half-applied change (kill ${killAfterMs} ms after the first acknowledgement)`, async () => {
      const dbFile = join(dir, 'pacer.db');
      const first = await startApiChild(dbFile);
      children.push(first.child);

      /** Per class: the rates that may be stored: the last acknowledged, and one in flight. */
      const acked = new Map<string, { id: number; rate: string }>();
      const inFlight = new Map<string, string>();
      let stop = false;
      const worker = async (w: number) => {
        for (let j = 0; !stop; j++) {
          const name = `w${w}-${j}`;
          try {
            inFlight.set(name, '1mbit');
            const c = await request(first.url, 'POST', '/v1/classes', { body: { name, rate: '1mbit', match: { marks: [w * 100_000 + j + 1] } } });
            if (c.status !== 201) throw new Error(`create: ${c.status}`);
            acked.set(name, { id: c.body.id, rate: '1mbit' });
            inFlight.set(name, '2mbit');
            const p = await request(first.url, 'PATCH', `/v1/classes/${name}`, { body: { rate: '2mbit' }, headers: { 'if-match': c.body.etag } });
            if (p.status !== 200) throw new Error(`patch: ${p.status}`);
            acked.set(name, { id: c.body.id, rate: '2mbit' });
            inFlight.delete(name);
          } catch (err) {
            if (stop) return; // the kill cut this request: it was never acknowledged
            throw err;
          }
        }
      };
      const workers = [0, 1, 2, 3, 4, 5, 6, 7].map(worker);
      // Counted from the first acknowledged write, not from the start: on a busy host the API may
      // not have answered anything 150 ms after the writers began, and a kill then proves nothing.
      await until('a first acknowledged write', () => (acked.size > 0 ? true : undefined), 30_000, 5);
      await new Promise((done) => setTimeout(done, killAfterMs));
      stop = true;
      await killed(first.child);
      await Promise.all(workers);
      assert.ok(acked.size > 0, 'some writes were acknowledged before the kill');

      const second = await startApiChild(dbFile);
      children.push(second.child);
      const list = await request(second.url, 'GET', '/v1/classes?limit=10000');
      assert.equal(list.status, 200);
      const stored = new Map<string, { id: number; rate: { text: string }; revision: number }>(list.body.items.map((c: { name: string }) => [c.name, c]));
      for (const [name, want] of acked) {
        const got = stored.get(name);
        assert.ok(got, `acknowledged class ${name} is missing`);
        assert.equal(got.id, want.id);
        assert.ok([want.rate, inFlight.get(name)].includes(got.rate.text), `${name}: rate ${got.rate.text}, acknowledged ${want.rate}`);
      }
      for (const name of stored.keys()) {
        assert.ok(acked.has(name) || inFlight.has(name), `class ${name} exists but was never written`);
      }
      // Every class has the history that produced it, and the revision counter matches that history.
      const history: Array<{ revision: number; name: string; action: string }> = [];
      for (let before = ''; ; ) {
        const page = await request(second.url, 'GET', `/v1/audit?kind=class&limit=1000${before}`);
        history.push(...page.body.items);
        if (page.body.next === null) break;
        before = `&before=${page.body.next}`;
      }
      const created = new Set(history.filter((ch) => ch.action === 'created').map((ch) => ch.name));
      assert.deepEqual([...created].sort(), [...stored.keys()].sort());
      const revisions = new Set(history.map((ch) => ch.revision));
      for (const c of stored.values()) assert.ok(revisions.has(c.revision), `no change row for revision ${c.revision}`);
      const maxChange = Math.max(...revisions);
      assert.ok(list.body.revision >= maxChange);
      await killed(second.child);
      const db = new Database(dbFile, { readonly: true });
      try {
        assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
        const meta = db.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: number };
        const max = db.prepare('SELECT max(revision) AS m FROM changes').get() as { m: number };
        assert.equal(meta.value, max.m);
      } finally {
        db.close();
      }
    });
  }
});
