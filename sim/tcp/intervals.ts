/**
 * A set of byte ranges [start, end), kept sorted and merged: the receiver's out-of-order queue
 * and the sender's SACK scoreboard. Few ranges are held at once (one per hole in a window), so
 * sorted arrays and linear scans beat a tree here.
 */
export class IntervalSet {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  /** Bytes covered. */
  bytes = 0;

  get count(): number {
    return this.starts.length;
  }

  /** End of the highest range, or 0. */
  get highest(): number {
    return this.ends.length > 0 ? this.ends[this.ends.length - 1]! : 0;
  }

  /** Adds [s, e), merging with neighbours; returns the bytes newly covered. */
  add(s: number, e: number): number {
    if (e <= s) return 0;
    const { starts, ends } = this;
    let i = 0;
    while (i < starts.length && ends[i]! < s) i++;
    let j = i;
    let covered = 0;
    let ns = s;
    let ne = e;
    while (j < starts.length && starts[j]! <= e) {
      ns = Math.min(ns, starts[j]!);
      ne = Math.max(ne, ends[j]!);
      covered += ends[j]! - starts[j]!;
      j++;
    }
    starts.splice(i, j - i, ns);
    ends.splice(i, j - i, ne);
    const added = ne - ns - covered;
    this.bytes += added;
    return added;
  }

  /** Forgets everything below `x` (a cumulative ACK or rcv_nxt moved up to it). */
  removeBelow(x: number): void {
    const { starts, ends } = this;
    let n = 0;
    while (n < starts.length && ends[n]! <= x) {
      this.bytes -= ends[n]! - starts[n]!;
      n++;
    }
    if (n > 0) {
      starts.splice(0, n);
      ends.splice(0, n);
    }
    if (starts.length > 0 && starts[0]! < x) {
      this.bytes -= x - starts[0]!;
      starts[0] = x;
    }
  }

  /** The range holding byte `x`, as its index, or -1. */
  indexOf(x: number): number {
    for (let i = 0; i < this.starts.length; i++) {
      if (this.starts[i]! > x) return -1;
      if (x < this.ends[i]!) return i;
    }
    return -1;
  }

  /** The first byte at or above `x` that no range covers. */
  firstGap(x: number): number {
    for (let i = 0; i < this.starts.length; i++) {
      if (this.starts[i]! > x) break;
      if (x < this.ends[i]!) x = this.ends[i]!;
    }
    return x;
  }

  /** Start of the first range above byte `x` (Infinity if none). */
  nextStart(x: number): number {
    for (let i = 0; i < this.starts.length; i++) if (this.starts[i]! > x) return this.starts[i]!;
    return Infinity;
  }

  /** Bytes covered below `x`. */
  coveredBelow(x: number): number {
    let n = 0;
    for (let i = 0; i < this.starts.length && this.starts[i]! < x; i++) n += Math.min(this.ends[i]!, x) - this.starts[i]!;
    return n;
  }

  clear(): void {
    this.starts.length = 0;
    this.ends.length = 0;
    this.bytes = 0;
  }
}
