/**
 * The status heartbeat: every `intervalMs`, and at once when something worth reporting happens
 * (send()). One heartbeat is in flight at a time: a send() while one runs is coalesced into one
 * more heartbeat after it, with the status of then. So a burst of 10,000 applies costs two
 * heartbeats, not 10,000 concurrent requests (issue 17: ~450 connections, "fetch failed" and
 * 408s). Each request is bounded by the API client's request timeout (docs/agent.md).
 */
import type { HostStatus } from '../../api/contract/host.js';
import type { Logger } from '../config/module.js';

export interface HeartbeatOptions {
  intervalMs: number;
  /** PUTs the status (ApiClient.heartbeat); rejects on failure or timeout. */
  put(status: HostStatus): Promise<void>;
  /** The status to report, read when a heartbeat is sent. */
  status(): HostStatus;
  log: Pick<Logger, 'warn' | 'info'>;
}

export class Heartbeat {
  private timer?: NodeJS.Timeout;
  private inFlight?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(private readonly o: HeartbeatOptions) {}

  /** Arms the interval; send() works from construction on. */
  start(): void {
    this.timer = setInterval(() => this.send(), this.o.intervalMs);
  }

  /** Reports the status now, or, while a heartbeat is in flight, once more when it ends. */
  send(): void {
    if (this.stopped) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.run().finally(() => (this.inFlight = undefined));
  }

  private async run(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.o.put(this.o.status());
      } catch (err) {
        if (this.stopped) return; // the client's connections were closed under it
        // At start the first heartbeat can overtake the registration: not a failure of the API.
        if ((err as { status?: number }).status === 404) this.o.log.info({ err: (err as Error).message }, 'heartbeat before the host is registered; it is sent again once registration succeeds');
        else this.o.log.warn({ err: (err as Error).message }, 'heartbeat failed; the next one is due in the heartbeat interval');
      }
    } while (this.again && !this.stopped);
  }

  /** No more heartbeats. The one in flight is not waited for: closing the API client's connections ends it. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
