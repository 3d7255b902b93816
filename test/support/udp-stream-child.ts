/**
 * A steady UDP stream from a socket in a network namespace, in its own process so that the
 * test's event loop (polling the maps, the API) is never blocked by the sending:
 *
 *   node udp-stream-child.js NETNS ADDRESS PORT PAYLOAD_BYTES BITS_PER_SECOND
 *
 * BITS_PER_SECOND counts what the tc program counts: the frame (payload + UDP, IPv4 and Ethernet
 * headers). Paced by the clock: about every millisecond it sends what is due since the start, so
 * a late timer is made up at once, but at most 20 ms worth (a process that was descheduled for
 * longer skips the rest instead of coming back with a burst). A send the kernel refuses (e.g.
 * ENOBUFS) is counted as failed, not retried.
 * Prints `{"sent":N,"failed":N,"skipped":N}` once the socket is open and for every line on stdin;
 * the line `stop` stops the sending first (so the counts printed are final). It exits when stdin
 * closes, so it never outlives the test that started it.
 */
import { createInterface } from 'node:readline';
import { UdpSender } from './traffic.js';
import { UDP4_FRAME_OVERHEAD } from './udp-stream.js';

const TICK_MS = 1;
const MAX_CATCH_UP_S = 0.02;

const [netns, address, portText, sizeText, rateText] = process.argv.slice(2);
const port = Number(portText);
const size = Number(sizeText);
const bitsPerSecond = Number(rateText);
if (!netns || !address || !(port > 0) || !(size > 0) || !(bitsPerSecond > 0)) {
  process.stderr.write('usage: udp-stream-child NETNS ADDRESS PORT PAYLOAD_BYTES BITS_PER_SECOND\n');
  process.exit(2);
}
const perSecond = bitsPerSecond / ((size + UDP4_FRAME_OVERHEAD) * 8);
const sender = UdpSender.open(netns, 4);
const start = performance.now();
const counts = { sent: 0, failed: 0, skipped: 0 };

const tick = () => {
  const due = Math.floor(((performance.now() - start) / 1000) * perSecond) - counts.sent - counts.failed - counts.skipped;
  const n = Math.min(due, Math.ceil(perSecond * MAX_CATCH_UP_S));
  counts.skipped += due - n;
  for (let i = 0; i < n; i++) {
    try {
      sender.send(address, port, size, 1);
      counts.sent++;
    } catch {
      counts.failed++;
    }
  }
};
const timer = setInterval(tick, TICK_MS);
const stop = () => {
  clearInterval(timer);
  sender.close();
};
const report = () => process.stdout.write(JSON.stringify(counts) + '\n');
report();
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line === 'stop') stop();
    report();
  })
  .on('close', () => {
    stop();
    process.exit(0);
  });
