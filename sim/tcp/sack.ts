/**
 * Selective acknowledgment: the receiver's SACK blocks (RFC 2018) and the sender's scoreboard
 * with RFC 6675's IsLost and SetPipe. NextSeg and the recovery steps that use them are in the
 * sender (tcp.ts). Not modelled: D-SACK (RFC 2883), reneging, RFC 6675's rescue retransmission
 * (§4 NextSeg rule 4; Linux has none either, it relies on RACK-TLP, which is not modelled).
 */
import { Packet } from '../net/packet.js';
import { IntervalSet } from './intervals.js';

/** RFC 6675 §2: DupThresh. */
export const DUP_THRESH = 3;

/**
 * Blocks that fit in the 40 bytes of TCP options (RFC 2018 §3): 2 + 8n bytes, so 4, or 3 next
 * to the 10-byte timestamp option (12 with padding), which this model always uses.
 */
export function sackBlocksFit(timestamps: boolean): number {
  return Math.floor((40 - (timestamps ? 12 : 0) - 2) / 8);
}

/** Option bytes a SACK option with n blocks adds to an ACK: 2 NOPs + kind + length + 8n (Linux's aligned form). */
export function sackOptionBytes(n: number): number {
  return n === 0 ? 0 : 4 + 8 * n;
}

/** An ACK that may carry SACK blocks: [start, end) pairs, flattened, most recent first. */
export class AckSegment extends Packet {
  sack: readonly number[] = NO_BLOCKS;
}
const NO_BLOCKS: readonly number[] = [];

/** RFC 2018 §4: which out-of-order ranges to report, most recently changed first. */
export class SackBlocks {
  /** A byte of each recently arrived out-of-order segment, newest first. */
  private readonly recent: number[] = [];

  constructor(private readonly max: number) {}

  /** An out-of-order segment starting at `seq` arrived. */
  arrived(seq: number): void {
    this.recent.unshift(seq);
    if (this.recent.length > 4 * this.max) this.recent.length = 4 * this.max;
  }

  /**
   * "The first SACK block ... MUST specify the contiguous block of data containing the segment
   * which triggered this ACK, unless that segment advanced the Acknowledgment Number"; the rest
   * repeat the most recently reported blocks that are not already included (RFC 2018 §4).
   */
  blocks(ooo: IntervalSet): number[] {
    const out: number[] = [];
    const used: number[] = [];
    let kept = 0;
    for (const seq of this.recent) {
      const i = ooo.indexOf(seq);
      if (i < 0) continue; // delivered in order since
      this.recent[kept++] = seq;
      if (used.includes(i) || used.length >= this.max) continue;
      used.push(i);
      out.push(ooo.starts[i]!, ooo.ends[i]!);
    }
    this.recent.length = kept;
    return out;
  }
}

/** The sender's record of SACKed bytes above the cumulative ACK (RFC 6675 §3 "scoreboard"). */
export class Scoreboard {
  readonly sacked = new IntervalSet();

  constructor(private readonly mss: number) {}

  /** RFC 6675 Update(): records the blocks above `una`; returns the bytes newly SACKed. */
  update(blocks: readonly number[], una: number): number {
    this.sacked.removeBelow(una);
    let added = 0;
    for (let i = 0; i < blocks.length; i += 2) {
      const s = Math.max(blocks[i]!, una);
      added += this.sacked.add(s, blocks[i + 1]!);
    }
    return added;
  }

  /**
   * RFC 6675 IsLost() for every byte at once: a byte not SACKed is lost when DupThresh
   * discontiguous SACKed ranges, or more than (DupThresh − 1)·SMSS SACKed bytes, lie above it.
   * Returns the boundary below which every un-SACKed byte is lost (0: none).
   */
  lostBelow(): number {
    const { starts, ends } = this.sacked;
    let bytes = 0;
    for (let j = starts.length - 1, n = 1; j >= 0; j--, n++) {
      bytes += ends[j]! - starts[j]!;
      if (n >= DUP_THRESH || bytes > (DUP_THRESH - 1) * this.mss) return starts[j]!;
    }
    return 0;
  }

  /** IsLost(seq) of RFC 6675 §4. */
  isLost(seq: number): boolean {
    return seq < this.lostBelow() && this.sacked.indexOf(seq) < 0;
  }

  /** Un-SACKed bytes in [a, b). */
  unsacked(a: number, b: number): number {
    return b <= a ? 0 : b - a - (this.sacked.coveredBelow(b) - this.sacked.coveredBelow(a));
  }

  /**
   * RFC 6675 SetPipe(): over the un-SACKed bytes in [una, highData), one for each not lost, one
   * more for each retransmitted. Retransmissions go upward from una, taking every un-SACKed byte
   * on the way (NextSeg rules 1 and 3), so the retransmitted ones are exactly those below highRxt.
   */
  pipe(una: number, highData: number, highRxt: number, lostBelow: number): number {
    return this.unsacked(una, highData) - this.unsacked(una, Math.min(lostBelow, highData)) + this.unsacked(una, Math.min(highRxt, highData));
  }

  clear(): void {
    this.sacked.clear();
  }
}
