/**
 * The guest's stall monitor: stall-monitor.c, built here on the host (the guest runs the host's
 * files) and started INSIDE the VM as its own process at real-time priority (`chrt -f 50`). It
 * wakes every PERIOD_MS and reports each wake-up at least LATE_MS late. At SCHED_FIFO nothing in
 * the guest's scheduler delays it by more than a softirq's run (kernel/softirq.c, __do_softirq:
 * at most MAX_SOFTIRQ_TIME, 2 ms, before deferring to ksoftirqd, which a FIFO task preempts), so
 * a later wake-up means the guest's clock moved while the guest could not run: the emulator was
 * stalled by the host.
 *
 * The enforcement spec excludes a rate sample only where this measured lost time (report.ts,
 * `judge`), and says so in the test title.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repo root (this file runs as dist/test/enforcement/stall-monitor.js). */
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SOURCE = join(REPO, 'test', 'enforcement', 'stall-monitor.c');
/** Built by buildStallMonitor() on the host; the guest sees the host's files at the same path. */
export const STALL_MONITOR_BIN = join(REPO, '.cache', 'vm', 'stall-monitor');

/** How often the monitor wakes: a jump of the guest's clock this long or longer is always seen. */
export const PERIOD_MS = 10;
/** A wake-up this late is time the guest lost (a FIFO task is otherwise late by ≤ 2 ms, see above). */
export const LATE_MS = 5;

/** Time the guest lost, on the lab's clock (ms since the lab started). */
export interface Stall {
  /** When the monitor was due to wake. */
  atMs: number;
  /** How late it woke. */
  lostMs: number;
}

/** Compiles stall-monitor.c on the host (needs `cc`, from build-essential); throws with the compiler's output. */
export function buildStallMonitor(): string {
  mkdirSync(join(REPO, '.cache', 'vm'), { recursive: true });
  const r = spawnSync('cc', ['-O2', '-Wall', '-o', STALL_MONITOR_BIN, SOURCE], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the stall monitor (cc ${SOURCE}) failed: ${r.error?.message ?? r.stderr}`);
  return STALL_MONITOR_BIN;
}

/**
 * Starts the monitor (built already) as a child at SCHED_FIFO priority 50 and collects its stalls, converted to
 * the lab's clock by `toLabMs` (which takes CLOCK_MONOTONIC ns: process.hrtime.bigint()).
 */
export class StallMonitor {
  readonly stalls: Stall[] = [];
  private child: ChildProcess | undefined;
  error: string | undefined;

  constructor(private readonly toLabMs: (monotonicNs: bigint) => number) {}

  start(): void {
    const child = spawn('chrt', ['-f', '50', STALL_MONITOR_BIN, String(PERIOD_MS * 1e6), String(LATE_MS * 1e6)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const [due, late] = line.split(' ').map((x) => BigInt(x));
        this.stalls.push({ atMs: this.toLabMs(due!), lostMs: Math.round(Number(late!) / 1e5) / 10 });
      }
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err) => (this.error = `could not start: ${err.message}`));
    child.once('exit', (code, signal) => {
      if (this.child) this.error = `exited (${code ?? signal}) while the lab ran: ${stderr.trim()}`;
    });
  }

  stop(): void {
    const child = this.child;
    this.child = undefined;
    child?.kill('SIGKILL');
  }
}
