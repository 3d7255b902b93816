/** A growable ring buffer: O(1) push/shift without Array#shift's copying. */
export class Fifo<T> {
  private buf: (T | undefined)[] = new Array(16);
  private head = 0;
  private n = 0;

  get length(): number {
    return this.n;
  }

  push(v: T): void {
    if (this.n === this.buf.length) {
      const old = this.buf;
      this.buf = new Array(old.length * 2);
      for (let i = 0; i < this.n; i++) this.buf[i] = old[(this.head + i) % old.length];
      this.head = 0;
    }
    this.buf[(this.head + this.n) % this.buf.length] = v;
    this.n++;
  }

  peek(): T | undefined {
    return this.n > 0 ? this.buf[this.head] : undefined;
  }

  shift(): T | undefined {
    if (this.n === 0) return undefined;
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.buf.length;
    this.n--;
    return v;
  }
}
