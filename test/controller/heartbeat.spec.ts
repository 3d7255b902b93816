import assert from 'node:assert/strict';
import sinon from 'sinon';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError } from '../../controller/api-client/api-client.js';
import { Heartbeat } from '../../controller/heartbeat/heartbeat.js';
import type { HostStatus } from '../../api/contract/host.js';

describe('Heartbeat: what a failed one logs', () => {
  const run = async (err: Error) => {
    const log = { warn: sinon.spy(), info: sinon.spy() };
    const hb = new Heartbeat({ intervalMs: 1e9, put: () => Promise.reject(err), status: () => ({}) as HostStatus, log });
    hb.send();
    await sleep(10);
    hb.stop();
    return log;
  };
  it('a 404 (the heartbeat overtook the registration at start) is information, not "failed" (issue 17)', async () => {
    const log = await run(new ApiError(404, 'PUT /v1/hosts/h/status: 404 host "h" is not registered'));
    assert.equal(log.warn.callCount, 0);
    assert.match(log.info.firstCall.args[1], /before the host is registered/);
  });
  it('any other failure is a warning', async () => {
    const log = await run(new Error('cannot reach the API at http://127.0.0.1:1 (PUT /v1/hosts/h/status): ECONNREFUSED'));
    assert.equal(log.info.callCount, 0);
    assert.match(log.warn.firstCall.args[1], /heartbeat failed/);
  });
});
