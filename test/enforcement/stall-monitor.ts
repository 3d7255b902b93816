/**
 * Runs INSIDE the VM, as its own process at real-time priority (`chrt -f`), started by
 * StallMonitor below: it wakes every PERIOD_MS and measures how late it woke. At SCHED_FIFO
 * nothing in the guest's scheduler delays it by more than a softirq's run (kernel/softirq.c,
 * __do_softirq: at most MAX_SOFTIRQ_TIME, 2 ms, before deferring to ksoftirqd, which a FIFO task
 * preempts), so a wake-up later than LATE_MS means the guest's clock moved while the guest could
 * not run: the emulator was stalled by the host. Each such wake-up is printed as one line,
 * `<CLOCK_MONOTONIC ns of the due time> <ns late>`, on stdout.
 *
 * The enforcement spec excludes a rate sample only where this measured lost time (report.ts,
 * `judge`), and says so in the test title.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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

/** The monitor's loop (the process's main when run as a script). */
function monitor(): void {
  const periodNs = BigInt(PERIOD_MS * 1e6);
  const lateNs = BigInt(LATE_MS * 1e6);
  let due = process.hrtime.bigint() + periodNs;
  const tick = (): void => {
    const woke = process.hrtime.bigint();
    if (woke - due >= lateNs) process.stdout.write(`${due} ${woke - due}\n`);
    // The next due time from now, not from `due`: one stall is reported once, not as a train of late ticks.
    due = woke + periodNs;
    setTimeout(tick, PERIOD_MS);
  };
  setTimeout(tick, PERIOD_MS);
}

/**
 * Starts the monitor as a child at SCHED_FIFO priority 50 and collects its stalls, converted to
 * the lab's clock by `toLabMs` (which takes CLOCK_MONOTONIC ns: process.hrtime.bigint()).
 */
export class StallMonitor {
  readonly stalls: Stall[] = [];
  private child: ChildProcess | undefined;
  error: string | undefined;

  constructor(private readonly toLabMs: (monotonicNs: bigint) => number) {}

  start(): void {
    const child = spawn('chrt', ['-f', '50', process.execPath, fileURLToPath(import.meta.url)], { stdio: ['ignore', 'pipe', 'pipe'] });
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

if (process.argv[1] === fileURLToPath(import.meta.url)) monitor();
