/**
 * The lapse bookkeeping of controller/datapath/attachment-watch.ts (pure): how a check's outcome
 * changes an interface's attachment status, what is logged, and how long `repaired` shows.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { afterCheck, attachmentState, initialAttachment, REPAIRED_VISIBLE_MS } from '../../controller/datapath/attachment-watch.js';
import type { Reattached } from '../../shaper-bpf/src/interface.js';

const deleted: Reattached = { cause: 'filter deleted', detail: 'pacer\'s tc filter on eth0 was deleted', programId: 7, ifindex: 3 };
const noDevice = Object.assign(new Error('no interface named "eth0"'), { errno: constants.errno.ENODEV });
const T = 1_800_000_000_000;

describe('attachment lapses (pure)', () => {
  it('an attached program changes nothing and logs nothing', () => {
    assert.equal(afterCheck('eth0', initialAttachment(), undefined, T), undefined);
    assert.equal(attachmentState(initialAttachment(), T), 'attached');
  });

  it('a re-attach counts one lapse, warns with the fix, and shows repaired for REPAIRED_VISIBLE_MS', () => {
    const c = afterCheck('eth0', initialAttachment(), { reattached: deleted }, T)!;
    assert.deepEqual(c.next, { lapses: 1, lastLapseAt: T, lastLapse: deleted.detail, repairedAt: T });
    assert.equal(c.log?.level, 'warn');
    assert.equal(c.log?.fields.cause, 'filter deleted');
    assert.match(String(c.log?.fields.fix), /Find what removes it/);
    assert.equal(attachmentState(c.next, T + REPAIRED_VISIBLE_MS - 1), 'repaired');
    assert.equal(attachmentState(c.next, T + REPAIRED_VISIBLE_MS), 'attached');
    const again = afterCheck('eth0', c.next, { reattached: deleted }, T + 5000)!;
    assert.equal(again.next.lapses, 2, 'a second lapse counts again');
  });

  it('a failure is error with the reason, counted and logged once however many checks it lasts; the repair after it is not a second lapse', () => {
    const failed = afterCheck('eth0', initialAttachment(), { failed: noDevice }, T)!;
    assert.equal(attachmentState(failed.next, T), 'error');
    assert.equal(failed.next.lapses, 1);
    assert.match(failed.next.error!, /not attached to eth0, so nothing leaving it is shaped or policed: there is no interface named eth0/);
    assert.equal(failed.log?.level, 'error');
    assert.equal(afterCheck('eth0', failed.next, { failed: noDevice }, T + 1000), undefined, 'the same failure again: nothing new');
    const other = afterCheck('eth0', failed.next, { failed: new Error('EPERM') }, T + 2000)!;
    assert.equal(other.next.lapses, 1, 'another reason, the same lapse');
    assert.match(other.next.error!, /could not be checked or re-attached.*EPERM/);
    const repaired = afterCheck('eth0', other.next, { reattached: { ...deleted, cause: 'interface re-created', detail: 'eth0 was deleted and re-created (ifindex 3 → 9)' } }, T + 3000)!;
    assert.deepEqual(repaired.next, { lapses: 1, lastLapseAt: T, lastLapse: 'eth0 was deleted and re-created (ifindex 3 → 9)', repairedAt: T + 3000 });
    assert.equal(attachmentState(repaired.next, T + 3000), 'repaired');
  });
});
