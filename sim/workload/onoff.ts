/**
 * An on/off source (ns-2's Exponential On/Off and its fixed-period variant): an application on
 * one TCP connection that writes at `rateBps` of payload while on and nothing while off. Period
 * lengths are fixed or exponential with the given means, drawn from the source's own RNG
 * stream; the source starts on. The duty cycle is on / (on + off).
 *
 * While on it writes one MSS each time another MSS is due at the rate (the same cost as the
 * segments it makes), and what is still due when a period ends. TCP sends what the window and
 * the pacer class allow; if the network is slower than the source, the rest waits in the
 * socket, as it would on a host. The connection persists across periods, so after an off
 * period longer than the RTO it restarts from the initial window (RFC 5681 §4.1).
 */
import { Timer, type EventList, type TimeNs } from '../engine/events.js';
import { Rng } from '../engine/rng.js';
import type { TcpSender } from '../tcp/tcp.js';
import { periodNs, type PeriodKind } from './random.js';

export interface OnOffSpec {
  /** Payload bits per second while on. */
  rateBps: number;
  onNs: TimeNs;
  offNs: TimeNs;
  periods: PeriodKind;
  startNs: TimeNs;
  /** Bytes per write while on (the connection's MSS). */
  chunkBytes: number;
}

export class OnOffSource {
  /** On periods begun. */
  onPeriods = 0;
  /** Bytes written by the application. */
  written = 0;
  private on = false;
  private periodStart: TimeNs = 0;
  private periodEnd: TimeNs = 0;
  private writtenThisPeriod = 0;
  /** On time of the periods already over. */
  private onNsDone = 0;
  private readonly rng: Rng;
  private readonly timer: Timer;

  constructor(private readonly events: EventList, private readonly sender: TcpSender, private readonly spec: OnOffSpec, seed: number) {
    if (!(spec.rateBps > 0) || !(spec.onNs > 0) || !(spec.offNs >= 0) || !(spec.chunkBytes > 0)) throw new RangeError('an on/off source needs rate > 0, on > 0, off ≥ 0 and a chunk > 0');
    this.rng = new Rng(seed);
    this.timer = new Timer(events, () => this.tick());
  }

  start(): void {
    this.timer.set(this.spec.startNs);
  }

  /** Time spent on from the start to `now`. */
  onTimeTo(now: TimeNs): number {
    return this.onNsDone + (this.on ? Math.max(0, Math.min(now, this.periodEnd) - this.periodStart) : 0);
  }

  /** Payload due in the current on period by `t`: rate · elapsed, in whole bytes. */
  private dueBy(t: TimeNs): number {
    return Math.floor(((t - this.periodStart) * this.spec.rateBps) / 8e9);
  }

  private tick(): void {
    const now = this.events.now();
    if (!this.on) {
      this.on = true;
      this.onPeriods++;
      this.periodStart = now;
      this.periodEnd = now + periodNs(this.rng, this.spec.periods, this.spec.onNs);
      this.writtenThisPeriod = 0;
    }
    const end = Math.min(now, this.periodEnd);
    const due = this.dueBy(end) - this.writtenThisPeriod;
    if (due > 0) {
      this.writtenThisPeriod += due;
      this.written += due;
      this.sender.write(due);
    }
    if (now >= this.periodEnd) {
      this.on = false;
      this.onNsDone += this.periodEnd - this.periodStart;
      this.timer.set(now + periodNs(this.rng, this.spec.periods, this.spec.offNs));
      return;
    }
    // The moment the next chunk is due (≥ 1 ns on), or the end of the period.
    const next = this.periodStart + Math.ceil(((this.writtenThisPeriod + this.spec.chunkBytes) * 8e9) / this.spec.rateBps);
    this.timer.set(Math.min(Math.max(next, now + 1), this.periodEnd));
  }
}
