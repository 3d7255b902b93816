/**
 * A host's egress: pacer's EDT program (the data plane's own model, shaper-bpf/src/edt.ts) stamps
 * each packet with its time to send, then fq holds it until then and the NIC serializes it:
 *
 *   TCP ──► EdtShaper.send() ──► Fq ──► NIC Port ──► (link Pipe)
 *
 * The shaper sees skb->len (datagram + Ethernet header), as the tc program does. A packet of a
 * class the shaper does not know is not shaped (tstamp 0), as in the data plane.
 */
import type { EventList, TimeNs } from '../engine/events.js';
import { EdtShaper, type EdtClassConfig } from '../../shaper-bpf/src/edt.js';
import { Fq, type FqConfig } from './fq.js';
import { L2_HEADER, type Packet, type PacketSink } from './packet.js';
import { Port } from './port.js';

export interface HostEgressConfig {
  name: string;
  /** NIC line rate, bits/s. */
  rateBps: number;
  overheadBytes?: number;
  /** pacer classes by id, as the data plane's class_config map holds them. */
  classes?: ReadonlyMap<number, EdtClassConfig>;
  fq?: FqConfig;
}

export class ClassStats {
  packets = 0;
  bytes = 0;
  delayedPackets = 0;
  delaySumNs = 0;
  horizonDrops = 0;
  ecnMarks = 0;
}

export class HostEgress implements PacketSink {
  readonly shaper: EdtShaper;
  readonly fq: Fq;
  readonly nic: Port;
  readonly classStats = new Map<number, ClassStats>();

  /** `calendars`: 'parents' models the parent calendar the tc program does not have yet (edt.ts's EdtShaper). */
  constructor(private readonly events: EventList, cfg: HostEgressConfig, calendars: 'parents' | 'none' = 'none') {
    this.shaper = new EdtShaper(cfg.classes ?? new Map(), calendars);
    this.fq = new Fq(cfg.fq);
    this.nic = new Port(events, this.fq, { name: cfg.name, rateBps: cfg.rateBps, overheadBytes: cfg.overheadBytes });
    // The skb is freed when the NIC has sent it or a qdisc dropped it: tell its socket (TSQ).
    this.nic.onDone = (p) => p.owner?.txDone(p);
  }

  receive(pkt: Packet): void {
    const now: TimeNs = this.events.now();
    const skbLen = pkt.size + L2_HEADER;
    const verdict = this.shaper.send(pkt.cls, skbLen, now);
    if (verdict) {
      const s = this.statsFor(pkt.cls);
      if (verdict.action === 'drop') {
        s.horizonDrops++;
        this.nic.drop(pkt, 'edt_horizon');
        return;
      }
      s.packets++;
      s.bytes += skbLen;
      if (verdict.delayNs > 0) {
        s.delayedPackets++;
        s.delaySumNs += verdict.delayNs;
      }
      if (verdict.ecnMark && pkt.ect) {
        pkt.ce = true;
        s.ecnMarks++;
      }
      pkt.tstamp = verdict.depart;
    } else {
      pkt.tstamp = 0;
    }
    this.nic.receive(pkt);
  }

  private statsFor(cls: number): ClassStats {
    let s = this.classStats.get(cls);
    if (!s) this.classStats.set(cls, (s = new ClassStats()));
    return s;
  }
}
