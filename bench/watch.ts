/**
 * `npm run bench:watch`: the watch stream under clients that never read (issue 17). `pacer api`
 * runs in its own process with its default limits; 300 raw connections ask for the watch and
 * never read, 5 SSE clients read every event, and 5,000 changes of ~3 KB events are written
 * 10 at a time. Reports /healthz latency throughout (one probe at a time, every 50 ms), what the
 * readers received, the slow-client cuts, and the API's RSS at the start, its peak, after the
 * cuts, and after a full GC (the API child runs with --expose-gc; SIGUSR2 collects).
 *
 *   npm run bench:watch -- [--stalled 300] [--readers 5] [--changes 5000] [--concurrency 10] [--slow-bytes N]
 */
import { parseArgs } from 'node:util';
import { runWatchLoad } from '../test/support/watch-load.js';

const { values } = parseArgs({
  options: {
    stalled: { type: 'string', default: '300' },
    readers: { type: 'string', default: '5' },
    changes: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '10' },
    'slow-bytes': { type: 'string' },
  },
});
const MB = 1024 * 1024;
const r = await runWatchLoad({
  stalled: Number(values.stalled),
  readers: Number(values.readers),
  changes: Number(values.changes),
  concurrency: Number(values.concurrency),
  slowClientBytes: values['slow-bytes'] === undefined ? undefined : Number(values['slow-bytes']),
  timeoutMs: 60_000,
});
const sorted = [...r.health].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(1);
const mb = (b: number) => `${(b / MB).toFixed(0)} MB`;
process.stdout.write(
  [
    `node ${process.version}, ${new Date().toISOString()}, load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`,
    `${values.stalled} stalled + ${values.readers} reading watchers, ${r.committed} changes written in ${r.writeSeconds.toFixed(1)} s (${(r.committed / r.writeSeconds).toFixed(0)}/s)`,
    `/healthz over ${sorted.length} probes: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms; failures: ${r.healthFailures.length}`,
    `readers received: ${r.received.join(', ')} of ${r.committed}`,
    `slow-client cuts: ${r.slowCuts}`,
    `API RSS: start ${mb(r.rssStartBytes)}, peak ${mb(r.rssPeakBytes)}, after the cuts ${mb(r.rssSettledBytes)}, after a full GC ${mb(r.rssEndBytes)} (${((r.rssEndBytes / r.rssStartBytes - 1) * 100).toFixed(0)}% over the start)`,
  ].join('\n') + '\n',
);
