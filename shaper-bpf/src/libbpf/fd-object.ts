// Concern: what a map and a program share as kernel objects held by an fd — the fd (which this
// process may or may not own), pinning it on bpffs, and closing it.
import { closeFd, pinFd, unpinPath } from './info.js';

export abstract class FdObject {
  /** Path this object was last pinned at by pin(), if any. */
  pinnedPath: string | undefined;
  // -1 once closed: a stale fd number may already belong to another object, so never reuse it.
  private fdValue: number;

  /** @param ownsFd whether close() closes the fd (false for maps and programs owned by a BpfObject). */
  protected constructor(
    fd: number,
    private readonly ownsFd: boolean,
  ) {
    this.fdValue = fd;
  }

  /** How errors name this object, e.g. `map "class_config"`. */
  protected abstract get target(): string;

  /** The fd; throws once this object (or the BpfObject that owns it) is closed. */
  get fd(): number {
    if (this.fdValue < 0) throw new Error(`${this.target} is closed`);
    return this.fdValue;
  }

  pin(path: string): void {
    pinFd(this.fd, path, this.target);
    this.pinnedPath = path;
  }

  /** Removes the pin (an unlink on bpffs); the object lives on while any fd or program uses it. */
  unpin(path: string | undefined = this.pinnedPath): void {
    if (!path) throw new Error(`${this.target} was not pinned by this process; pass the path`);
    unpinPath(path, this.target);
    if (path === this.pinnedPath) this.pinnedPath = undefined;
  }

  /**
   * Closes the fd if this object owns it (openPinned, BpfMap.create); those of a BpfObject are
   * closed by BpfObject.close(). Either way the object is unusable afterwards.
   */
  close(): void {
    if (this.fdValue < 0) return;
    if (this.ownsFd) closeFd(this.fdValue);
    this.fdValue = -1;
  }
}
