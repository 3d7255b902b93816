/**
 * A steady UDP stream at a given rate from a test namespace, for as long as the test wants
 * (udp-stream-child.ts does the sending in its own process):
 *
 *   const s = await startUdpStream(sender, { to: '10.94.0.2', port: 9, size: 1200, bitsPerSecond: 50e6 });
 *   … await s.counts() …
 *   const { sent } = await s.stop();    // the final counts; nothing is sent after
 *
 * Only to addresses inside namespaces the test made (the caller's veth peers).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
// Only what the sending child needs too (it imports this file's constant): no API modules.
import { lineReader } from './traffic.js';

/** UDP (8) + IPv4 (20) + Ethernet (14) header bytes: what the data plane counts besides the payload. */
export const UDP4_FRAME_OVERHEAD = 42;

export interface UdpStreamCounts {
  sent: number;
  failed: number;
  skipped: number;
}

export interface UdpStream {
  /** Datagrams sent, refused by the kernel, and skipped because the sender was descheduled. */
  counts(): Promise<UdpStreamCounts>;
  /** Ends the sending process and returns its final counts (undefined if it had died); safe to call twice. */
  stop(): Promise<UdpStreamCounts | undefined>;
}

const CHILD = join(process.cwd(), 'dist/test/support/udp-stream-child.js');

export async function startUdpStream(netns: string, o: { to: string; port: number; size: number; bitsPerSecond: number }): Promise<UdpStream> {
  const child = spawn(process.execPath, [CHILD, netns, o.to, String(o.port), String(o.size), String(Math.round(o.bitsPerSecond))], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const next = lineReader(child);
  const read = async (): Promise<UdpStreamCounts> => {
    try {
      return JSON.parse(await next()) as UdpStreamCounts;
    } catch (err) {
      throw new Error(`udp stream to ${o.to}: ${(err as Error).message}\n${stderr}`);
    }
  };
  try {
    await read(); // the socket is open
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  }
  return {
    counts: () => {
      child.stdin!.write('\n');
      return read();
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return undefined;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.stdin!.write('stop\n');
      const last = await read().catch(() => undefined);
      child.stdin!.end();
      const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(force);
      return last;
    },
  };
}
