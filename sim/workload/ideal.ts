/**
 * The ideal completion time of a transfer: the least time in which this simulator could deliver
 * `bytes` from one host to another through the switch on an otherwise idle network, as the
 * pFabric and HOMA papers normalise FCTs ("slowdown" = FCT / ideal). It is a true lower bound —
 * no slow start, no queueing, no handshake — so a measured slowdown is never below 1; short
 * transfers on an idle network come out close to 1.
 *
 * The path is a tandem of stages a packet passes in order, store-and-forward: the sender's EDT
 * shaper (each pacer class on the path), its NIC (link a), propagation, the switch port toward
 * the receiver (link b), propagation. For any one stage, all packets pass it one after the other,
 * the first packet must first cross the stages before it and the last the stages after it, so
 *
 *   ideal = propagation a + b + max( NIC a:   Σ ser_a(all) + ser_b(last),
 *                                    port b:  ser_a(first) + Σ ser_b(all),
 *                                    class c: max(0, Σ_{i≥2} slot_c(i) − burst_c) + ser_a(last) + ser_b(last) )
 *
 * with each serialization the simulator's own integer rounding (Port.serializationNs) and each
 * class slot the EDT rule's (edt.ts delayNs on skb->len): the first packet may leave at once on
 * burst credit, and every further packet costs its slot at the class's rate.
 */
import { MAX_DEPTH, delayNs, type EdtClassConfig } from '../../shaper-bpf/src/edt.js';
import { ETHERNET_OVERHEAD, L2_HEADER, wireBytes } from '../net/packet.js';

export interface IdealLink {
  rateBps: number;
  delayNs: number;
  overheadBytes?: number;
}

export interface IdealPath {
  from: IdealLink;
  to: IdealLink;
  /** The classes installed on the sending host, by id (what its shaper knows). */
  classes: ReadonlyMap<number, EdtClassConfig>;
  /** The transfer's class (0 = unclassified, not shaped). */
  cls: number;
  mss: number;
  headerBytes: number;
}

export function idealTransferNs(p: IdealPath, bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new RangeError(`a transfer has at least 1 byte, got ${bytes}`);
  const segments = Math.ceil(bytes / p.mss);
  const fullSize = p.mss + p.headerBytes;
  const lastSize = bytes - (segments - 1) * p.mss + p.headerBytes;
  const firstSize = segments === 1 ? lastSize : fullSize;
  const ser = (l: IdealLink, size: number) => delayNs(wireBytes(size, l.overheadBytes ?? ETHERNET_OVERHEAD), l.rateBps);
  const all = (l: IdealLink) => (segments - 1) * ser(l, fullSize) + ser(l, lastSize);

  let stage = Math.max(all(p.from) + ser(p.to, lastSize), ser(p.from, firstSize) + all(p.to));
  // The class path as the shaper walks it (EdtShaper.path): leaf first, at most MAX_DEPTH.
  for (let id = p.cls, depth = 0; id !== 0 && depth < MAX_DEPTH; depth++) {
    const c = p.classes.get(id);
    if (!c || c.rateBps === 0) break;
    // Slots of packets 2..k: the first may go at once on burst credit.
    const slots = segments < 2 ? 0 : (segments - 2) * delayNs(fullSize + L2_HEADER, c.rateBps) + delayNs(lastSize + L2_HEADER, c.rateBps);
    stage = Math.max(stage, Math.max(0, slots - c.burstNs) + ser(p.from, lastSize) + ser(p.to, lastSize));
    id = c.parentId;
  }
  return p.from.delayNs + p.to.delayNs + stage;
}
