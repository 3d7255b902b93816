/**
 * An output port: a qdisc (the queue) in front of a serializer (htsim's Queue with
 * beginService/completeService). A link is a Port (serialization) followed by a Pipe
 * (propagation). The qdisc decides order and drops; the port only asks it for the next packet
 * when the wire is free, and, when the qdisc holds packets that may not leave yet (EDT), sets a
 * watchdog for the earliest one, as fq's qdisc watchdog does.
 */
import { EventList, Timer, type EventSource, type TimeNs } from '../engine/events.js';
import { delayNs } from '../../shaper-bpf/src/edt.js';
import { Fifo } from './fifo.js';
import type { SharedBuffer } from './shared-buffer.js';
import { DROP_REASONS, ETHERNET_OVERHEAD, type DropReason, type Packet, type PacketSink, wireBytes } from './packet.js';

export interface Qdisc {
  /** Accepts the packet (null) or says why it is dropped; the caller counts the drop. */
  enqueue(pkt: Packet, now: TimeNs): DropReason | null;
  /** The next packet allowed to leave at `now`, or null. */
  dequeue(now: TimeNs): Packet | null;
  /** When dequeue() returned null: the earliest time a held packet may leave (Infinity = empty). */
  nextWake(): TimeNs;
  readonly packets: number;
  readonly bytes: number;
}

export type PortTrace = (e: { kind: 'drop'; at: TimeNs; port: string; reason: DropReason; flow: number; cls: number }) => void;

export interface PortConfig {
  name: string;
  /** Line rate, bits/s. */
  rateBps: number;
  /** Framing bytes per packet; default ETHERNET_OVERHEAD (38). */
  overheadBytes?: number;
}

export class PortStats {
  sentPackets = 0;
  sentBytes = 0;
  drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  maxQueueBytes = 0;
  /** Sum and max of time from enqueue to start of serialization, ns. */
  queueDelaySumNs = 0;
  queueDelayMaxNs = 0;
  /** ∫ queued bytes dt, byte·ns, up to the last change (Port.queueIntegralTo adds the rest). */
  queueByteNs = 0;

  get dropped(): number {
    return DROP_REASONS.reduce((s, r) => s + this.drops[r], 0);
  }
}

export class Port implements PacketSink, EventSource {
  readonly name: string;
  readonly rateBps: number;
  readonly overheadBytes: number;
  readonly stats = new PortStats();
  trace: PortTrace | undefined;
  /** Called for each packet that finished serialization or was dropped here. */
  onDone: ((p: Packet) => void) | undefined;
  /** Called as a packet starts serialization, with how long it waited here (for delay percentiles). */
  onService: ((p: Packet, waitedNs: TimeNs) => void) | undefined;
  private inService: Packet | null = null;
  private readonly watchdog: Timer;
  /** When the queue last changed, for the time integral of its length. */
  private queueSince: TimeNs = 0;

  constructor(private readonly events: EventList, readonly qdisc: Qdisc, cfg: PortConfig) {
    this.name = cfg.name;
    this.rateBps = cfg.rateBps;
    this.overheadBytes = cfg.overheadBytes ?? ETHERNET_OVERHEAD;
    if (!Number.isSafeInteger(this.rateBps) || this.rateBps <= 0) throw new RangeError(`${this.name}: rateBps must be a positive integer, got ${this.rateBps}`);
    if (!Number.isSafeInteger(this.overheadBytes) || this.overheadBytes < 0) throw new RangeError(`${this.name}: overheadBytes must be a non-negative integer`);
    this.watchdog = new Timer(events, () => this.beginService());
  }

  receive(pkt: Packet): void {
    const now = this.events.now();
    pkt.enqueuedAt = now;
    this.advanceQueue(now);
    const reason = this.qdisc.enqueue(pkt, now);
    if (reason !== null) {
      this.drop(pkt, reason);
      return;
    }
    if (this.qdisc.bytes > this.stats.maxQueueBytes) this.stats.maxQueueBytes = this.qdisc.bytes;
    if (this.inService === null) this.beginService();
  }

  /** Counts a drop decided outside the qdisc (e.g. by the host's EDT shaper). */
  drop(pkt: Packet, reason: DropReason): void {
    this.stats.drops[reason]++;
    this.onDone?.(pkt);
    this.trace?.({ kind: 'drop', at: this.events.now(), port: this.name, reason, flow: pkt.flow, cls: pkt.cls });
  }

  /** ∫ queued bytes dt from 0 to `now` (byte·ns): divided by elapsed time, the mean queue. */
  queueIntegralTo(now: TimeNs): number {
    return this.stats.queueByteNs + this.qdisc.bytes * (now - this.queueSince);
  }

  private advanceQueue(now: TimeNs): void {
    this.stats.queueByteNs += this.qdisc.bytes * (now - this.queueSince);
    this.queueSince = now;
  }

  /** Serialization time of a datagram, exact integer ns (same rounding as the shaper). */
  serializationNs(size: number): TimeNs {
    return delayNs(wireBytes(size, this.overheadBytes), this.rateBps);
  }

  private beginService(): void {
    if (this.inService !== null) return;
    const now = this.events.now();
    this.advanceQueue(now);
    const pkt = this.qdisc.dequeue(now);
    if (pkt === null) {
      const wake = this.qdisc.nextWake();
      if (wake !== Infinity) this.watchdog.set(Math.max(wake, now));
      return;
    }
    this.watchdog.cancel();
    const waited = now - pkt.enqueuedAt;
    this.stats.queueDelaySumNs += waited;
    if (waited > this.stats.queueDelayMaxNs) this.stats.queueDelayMaxNs = waited;
    this.onService?.(pkt, waited);
    this.inService = pkt;
    this.events.scheduleIn(this.serializationNs(pkt.size), this);
  }

  /** completeService */
  doNextEvent(): void {
    const pkt = this.inService!;
    this.inService = null;
    this.stats.sentPackets++;
    this.stats.sentBytes += pkt.size;
    this.onDone?.(pkt);
    pkt.forward();
    this.beginService();
  }
}

export interface DropTailConfig {
  /** Buffer limit in bytes of queued datagrams (the packet on the wire is not counted). */
  bufferBytes?: number;
  /** Buffer limit in packets. At least one limit is required: these, or a shared pool. */
  bufferPackets?: number;
  /** Mark CE on ECT packets when the queue holds at least this many bytes on arrival; 0 = off. */
  ecnThresholdBytes?: number;
  /** The switch's shared packet memory, if the port draws from one (its own limits still apply). */
  shared?: SharedBuffer;
}

/**
 * A switch port's drop-tail FIFO with an optional ECN marking threshold (DCTCP-style,
 * instantaneous), limited by its own buffer, by a pool shared with the switch's other ports, or
 * both.
 */
export class DropTail implements Qdisc {
  private readonly q = new Fifo<Packet>();
  private nBytes = 0;
  ecnMarks = 0;
  private readonly bufferBytes: number;
  private readonly bufferPackets: number;
  private readonly ecnThresholdBytes: number;
  private readonly shared: SharedBuffer | undefined;

  constructor(cfg: DropTailConfig) {
    this.bufferBytes = cfg.bufferBytes ?? Infinity;
    this.bufferPackets = cfg.bufferPackets ?? Infinity;
    this.ecnThresholdBytes = cfg.ecnThresholdBytes ?? 0;
    this.shared = cfg.shared;
    if (cfg.bufferBytes === undefined && cfg.bufferPackets === undefined && cfg.shared === undefined) throw new RangeError('a drop-tail queue needs bufferBytes or bufferPackets, or a shared buffer');
    for (const k of ['bufferBytes', 'bufferPackets', 'ecnThresholdBytes'] as const) {
      const v = cfg[k];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new RangeError(`drop-tail ${k} must be a non-negative integer, got ${v}`);
    }
  }

  get packets(): number {
    return this.q.length;
  }

  get bytes(): number {
    return this.nBytes;
  }

  enqueue(pkt: Packet, now: TimeNs): DropReason | null {
    if (this.nBytes + pkt.size > this.bufferBytes || this.q.length + 1 > this.bufferPackets) return 'buffer';
    if (this.shared) {
      if (!this.shared.admits(this.nBytes, pkt.size)) {
        this.shared.drops++;
        return 'shared_buffer';
      }
      this.shared.take(pkt.size, now);
    }
    if (this.ecnThresholdBytes > 0 && pkt.ect && this.nBytes >= this.ecnThresholdBytes) {
      pkt.ce = true;
      this.ecnMarks++;
    }
    this.q.push(pkt);
    this.nBytes += pkt.size;
    return null;
  }

  dequeue(now: TimeNs): Packet | null {
    const pkt = this.q.shift();
    if (!pkt) return null;
    this.nBytes -= pkt.size;
    this.shared?.release(pkt.size, now);
    return pkt;
  }

  nextWake(): TimeNs {
    return Infinity;
  }
}
