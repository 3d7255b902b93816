/** Propagation delay: packets leave in arrival order `delayNs` later (htsim's Pipe). */
import type { EventList, EventSource, TimeNs } from '../engine/events.js';
import { Fifo } from './fifo.js';
import type { Packet, PacketSink } from './packet.js';

export class Pipe implements PacketSink, EventSource {
  private readonly inFlight = new Fifo<Packet>();
  private readonly due = new Fifo<TimeNs>();

  constructor(private readonly events: EventList, readonly delayNs: TimeNs) {
    if (!Number.isSafeInteger(delayNs) || delayNs < 0) throw new RangeError(`pipe delay must be a non-negative integer ns, got ${delayNs}`);
  }

  receive(pkt: Packet): void {
    const at = this.events.now() + this.delayNs;
    this.inFlight.push(pkt);
    this.due.push(at);
    // One pending event per pipe: the head's arrival. Constant delay keeps arrivals in order.
    if (this.inFlight.length === 1) this.events.schedule(at, this);
  }

  doNextEvent(): void {
    const pkt = this.inFlight.shift()!;
    this.due.shift();
    const next = this.due.peek();
    if (next !== undefined) this.events.schedule(next, this);
    pkt.forward();
  }
}
