/**
 * Synchronized incast rounds (Phanishayee et al., FAST 2008; Vasudevan et al., SIGCOMM 2009): a
 * client asks N servers at once for one block split across them; the next round starts when all
 * N responses are complete. Connections persist across rounds, as in the papers' storage
 * clients. A request is one small packet on the path client → server (not retransmitted: that
 * path only carries ACKs and requests, so its queues never fill).
 */
import type { EventList, TimeNs } from '../engine/events.js';
import { Packet } from '../net/packet.js';
import { Star } from '../topology/star.js';
import type { TcpConfig, TcpReceiver, TcpSender } from '../tcp/tcp.js';

export interface IncastConfig {
  client: string;
  servers: string[];
  /** Bytes per round, split across the servers (fixed block). */
  blockBytes: number;
  rounds: number;
  /** IP bytes of a request packet; default 64. */
  requestBytes?: number;
  cls?: number;
  /** Class of ACKs and requests (client → servers); default `cls`. */
  ackCls?: number;
}

export interface IncastResult {
  servers: number;
  rounds: number;
  /** Completion time of each round, ns. */
  roundNs: number[];
  totalNs: TimeNs;
  /** Application bytes delivered per second of the run, bits/s. */
  goodputBps: number;
  timeouts: number;
  retransmits: number;
}

export class Incast {
  private readonly conns: Array<{ server: string; sender: TcpSender; receiver: TcpReceiver; flow: number; share: number; target: number }> = [];
  private round = 0;
  private roundStart: TimeNs = 0;
  private remaining = 0;
  private readonly roundNs: number[] = [];
  private started: TimeNs = 0;
  private ended: TimeNs = -1;
  done = false;

  constructor(private readonly events: EventList, private readonly star: Star, private readonly cfg: IncastConfig, tcp: TcpConfig) {
    const n = cfg.servers.length;
    if (n === 0) throw new RangeError('incast needs at least one server');
    if (!Number.isSafeInteger(cfg.blockBytes) || cfg.blockBytes < n) throw new RangeError('incast blockBytes must be an integer ≥ the number of servers');
    if (!Number.isSafeInteger(cfg.rounds) || cfg.rounds < 1) throw new RangeError('incast rounds must be a positive integer');
    cfg.servers.forEach((s, i) => {
      const c = star.connect(s, cfg.client, tcp, cfg.cls ?? 0, cfg.ackCls ?? cfg.cls ?? 0);
      // Split the block as evenly as bytes allow; the first servers take the remainder.
      const share = Math.floor(cfg.blockBytes / n) + (i < cfg.blockBytes % n ? 1 : 0);
      const conn = { ...c, server: s, share, target: 0 };
      c.receiver.onDelivered = (total) => {
        if (conn.target > 0 && total >= conn.target) {
          conn.target = 0;
          if (--this.remaining === 0) this.endRound();
        }
      };
      this.conns.push(conn);
    });
  }

  start(): void {
    this.started = this.events.now();
    this.beginRound();
  }

  private beginRound(): void {
    this.roundStart = this.events.now();
    this.remaining = this.conns.length;
    for (const c of this.conns) {
      c.target = c.receiver.rcvNxt + c.share;
      const req = new Packet('request', c.flow, this.cfg.ackCls ?? this.cfg.cls ?? 0, this.cfg.requestBytes ?? 64);
      req.send(this.star.route(this.cfg.client, c.server, { receive: () => c.sender.write(c.share) }));
    }
  }

  private endRound(): void {
    this.roundNs.push(this.events.now() - this.roundStart);
    if (++this.round < this.cfg.rounds) this.beginRound();
    else {
      this.done = true;
      this.ended = this.events.now();
    }
  }

  result(): IncastResult {
    const totalNs = (this.ended >= 0 ? this.ended : this.events.now()) - this.started;
    const bytes = this.roundNs.length * this.cfg.blockBytes;
    return {
      servers: this.conns.length,
      rounds: this.roundNs.length,
      roundNs: [...this.roundNs],
      totalNs,
      goodputBps: totalNs > 0 ? Math.round((bytes * 8 * 1e9) / totalNs) : 0,
      timeouts: this.conns.reduce((s, c) => s + c.sender.stats.timeouts, 0),
      retransmits: this.conns.reduce((s, c) => s + c.sender.stats.retransmits, 0),
    };
  }
}

export interface IncastSetup {
  servers: number;
  linkRateBps: number;
  linkDelayNs: TimeNs;
  /** Buffer of the switch port toward the client, bytes. */
  bufferBytes: number;
  blockBytes: number;
  rounds: number;
  tcp: TcpConfig;
  /** Stop here even if rounds remain (simulated ns). */
  maxTimeNs?: TimeNs;
}

/** Builds N servers → switch → client and runs the rounds. */
export function runIncast(events: EventList, s: IncastSetup): IncastResult & { drops: number } {
  const star = new Star(events);
  const link = { rateBps: s.linkRateBps, delayNs: s.linkDelayNs };
  star.addHost({ name: 'client', link, switchPort: { bufferBytes: s.bufferBytes } });
  const servers = Array.from({ length: s.servers }, (_, i) => `server${i + 1}`);
  // Ports toward servers carry only requests and ACKs; they get the same buffer.
  for (const name of servers) star.addHost({ name, link, switchPort: { bufferBytes: s.bufferBytes } });
  const incast = new Incast(events, star, { client: 'client', servers, blockBytes: s.blockBytes, rounds: s.rounds }, s.tcp);
  incast.start();
  const step = 100_000_000;
  while (!incast.done && events.pending() > 0 && events.now() < (s.maxTimeNs ?? Infinity)) events.run(events.now() + step);
  return { ...incast.result(), drops: star.host('client').port.stats.dropped };
}
