/** api/cli/output.ts: nothing it prints carries a raw control character. */
import assert from 'node:assert/strict';
import sinon from 'sinon';
import { ApiProblemError } from '../../api/cli/client.js';
import { humanDuration, keyValues, out, printError, printJson, table } from '../../api/cli/output.js';
import { hostDetails } from '../../api/cli/host-commands.js';
import type { HostJson } from '../../api/contract/host.js';

/** Raw in the terminal: any C0 but newline, DEL, or C1. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
const NASTY = 'a\u001b[2Jb\rc\u0000d\u007fe\u009bf\tg';
const ESCAPED = 'a\\x1b[2Jb\\x0dc\\x00d\\x7fe\\x9bf\\x09g';

describe('CLI output escapes control characters', () => {
  afterEach(() => sinon.restore());

  /** What `fn` writes to stdout or stderr. */
  function captured(stream: 'stdout' | 'stderr', fn: () => void): string {
    const chunks: string[] = [];
    sinon.stub(process[stream], 'write').callsFake((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    try {
      fn();
    } finally {
      sinon.restore();
    }
    return chunks.join('');
  }

  it('table and key/value cells: every control character as \\xHH, newlines in a cell too', () => {
    const text = table(['NAME', 'DESCRIPTION'], [['web', NASTY], ['db', 'two\nlines']]);
    assert.doesNotMatch(text, RAW_CONTROL);
    assert.ok(text.includes(ESCAPED), text);
    assert.ok(text.includes('two\\x0alines'), text);
    const kv = keyValues([['Description', NASTY]]);
    assert.doesNotMatch(kv, RAW_CONTROL);
    assert.ok(kv.includes(ESCAPED), kv);
  });

  it('out keeps the newlines between lines and escapes the rest', () => {
    const text = captured('stdout', () => out(`line 1 ${NASTY}\nline 2`));
    assert.equal(text, `line 1 ${ESCAPED}\nline 2\n`);
  });

  it('printJson stays JSON: DEL and C1, which JSON.stringify leaves raw, become \\u escapes', () => {
    const text = captured('stdout', () => printJson({ d: NASTY }));
    assert.doesNotMatch(text, RAW_CONTROL);
    assert.deepEqual(JSON.parse(text), { d: NASTY });
  });

  it('printError escapes a problem detail and its field errors', () => {
    const err = new ApiProblemError(400, { type: 'about:blank', title: 'Invalid input', status: 400, detail: `bad ${NASTY}`, errors: [{ path: '/x', message: NASTY }] });
    const text = captured('stderr', () => printError(err));
    assert.doesNotMatch(text, RAW_CONTROL);
    assert.ok(text.includes(`pacer: bad ${ESCAPED} (HTTP 400 Invalid input)`), text);
    assert.ok(text.includes(`  /x: ${ESCAPED}`), text);
  });
});

describe('pacer host get: the mode line', () => {
  const host = (mode: string, modeDetail: string) =>
    ({ name: 'h', labels: {}, agentVersion: '0.1.0', registeredAt: '2026-01-01T00:00:00Z', lastSeenAt: '2026-01-01T00:00:00Z', stale: false, status: { mode, modeDetail, appliedRevision: 1, lastError: null, classErrors: [], interfaces: [] } }) as unknown as HostJson;
  it('prints a detail that starts with the mode once ("policing (fq unavailable)", not "policing (policing (fq unavailable))")', () => {
    const text = hostDetails(host('policing', 'policing (fq unavailable)'));
    assert.match(text, /Mode:\s+policing \(fq unavailable\)\n/);
    assert.doesNotMatch(text, /policing \(policing/);
    assert.match(hostDetails(host('shaping', 'fq on eth0')), /Mode:\s+shaping \(fq on eth0\)\n/);
  });
});

describe('humanDuration: nanoseconds for a person', () => {
  it('3 significant digits in the largest unit that keeps the number at least 1', () => {
    const cases: Array<[number, string]> = [
      [37_931_168, '37.9ms'],
      [412_000, '412µs'],
      [1_200_000_000, '1.2s'],
      [2_000_000, '2ms'],
      [600_000, '600µs'],
      [54_509_600, '54.5ms'],
      [1500, '1.5µs'],
      [999, '999ns'],
      [0, '0s'],
      [3_600_000_000_000, '3600s'],
    ];
    assert.deepEqual(cases.map(([ns]) => humanDuration(ns)), cases.map(([, text]) => text));
  });

  it('rounds before choosing the unit: 999.7 µs is "1ms", never "1000µs"', () => {
    assert.equal(humanDuration(999_700), '1ms');
    assert.equal(humanDuration(999_999_999), '1s');
  });

  it('up: a bound never prints below itself', () => {
    assert.deepEqual([humanDuration(1024, 'up'), humanDuration(882_688, 'up'), humanDuration(1_000_000, 'up'), humanDuration(999_001, 'up')], ['1.03µs', '883µs', '1ms', '1ms']);
    assert.equal(humanDuration(1024), '1.02µs', 'nearest, for comparison');
  });
});
