/**
 * A single switch with hosts around it, each on its own full-duplex link: the shape of both the
 * incast set-up (N servers → switch → client) and a dumbbell whose bottleneck is the switch port
 * toward the receiver.
 *
 *   host egress (EDT + fq + NIC) ─ pipe ─► switch ─ port (drop-tail) ─ pipe ─► host
 */
import type { EventList, TimeNs } from '../engine/events.js';
import type { EdtClassConfig } from '../../shaper-bpf/src/edt.js';
import { HostEgress } from '../net/host.js';
import type { FqConfig } from '../net/fq.js';
import type { PacketSink } from '../net/packet.js';
import { Pipe } from '../net/pipe.js';
import { DropTail, Port, type DropTailConfig } from '../net/port.js';
import { TcpReceiver, TcpSender, type TcpConfig } from '../tcp/tcp.js';

export interface LinkSpec {
  rateBps: number;
  /** One-way propagation delay of the link. */
  delayNs: TimeNs;
  /** Framing bytes per packet (default 38, Ethernet). */
  overheadBytes?: number;
}

export interface StarHostSpec {
  name: string;
  link: LinkSpec;
  /** The buffer of the switch port that sends to this host. */
  switchPort: DropTailConfig;
  classes?: ReadonlyMap<number, EdtClassConfig>;
  fq?: FqConfig;
}

export interface StarHost {
  name: string;
  egress: HostEgress;
  up: Pipe;
  /** The switch's output port toward this host. */
  port: Port;
  down: Pipe;
}

export class Star {
  readonly hosts = new Map<string, StarHost>();
  private nextFlow = 1;

  constructor(private readonly events: EventList) {}

  addHost(spec: StarHostSpec): StarHost {
    if (this.hosts.has(spec.name)) throw new Error(`host ${spec.name} added twice`);
    const { rateBps, delayNs, overheadBytes } = spec.link;
    const h: StarHost = {
      name: spec.name,
      egress: new HostEgress(this.events, { name: `${spec.name}.nic`, rateBps, overheadBytes, classes: spec.classes, fq: spec.fq }),
      up: new Pipe(this.events, delayNs),
      port: new Port(this.events, new DropTail(spec.switchPort), { name: `switch→${spec.name}`, rateBps, overheadBytes }),
      down: new Pipe(this.events, delayNs),
    };
    this.hosts.set(spec.name, h);
    return h;
  }

  host(name: string): StarHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  /** Source route from one host to a sink on another. */
  route(from: string, to: string, sink: PacketSink): PacketSink[] {
    const a = this.host(from);
    const b = this.host(to);
    return [a.egress, a.up, b.port, b.down, sink];
  }

  /** Round trip of a header-only packet each way through empty queues. */
  baseRtt(a: string, b: string, size: number): TimeNs {
    const ha = this.host(a);
    const hb = this.host(b);
    const oneWay = (x: StarHost, y: StarHost) => x.egress.nic.serializationNs(size) + x.up.delayNs + y.port.serializationNs(size) + y.down.delayNs;
    return oneWay(ha, hb) + oneWay(hb, ha);
  }

  /**
   * A TCP connection from `from` to `to` in pacer class `cls` (0 = unclassified); its ACKs are in
   * `ackCls` (on a real host they are classified by their own destination).
   */
  connect(from: string, to: string, tcp: TcpConfig, cls = 0, ackCls = cls): { flow: number; sender: TcpSender; receiver: TcpReceiver } {
    const flow = this.nextFlow++;
    const fwd: PacketSink[] = [];
    const rev: PacketSink[] = [];
    const sender = new TcpSender(this.events, tcp, flow, cls, fwd);
    const receiver = new TcpReceiver(this.events, tcp, flow, ackCls, rev);
    fwd.push(...this.route(from, to, receiver));
    rev.push(...this.route(to, from, sender));
    sender.handshake(this.baseRtt(from, to, tcp.headerBytes));
    return { flow, sender, receiver };
  }
}
