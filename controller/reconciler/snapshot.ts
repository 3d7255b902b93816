/**
 * The last-known-good snapshot: the last desired state that was applied, on disk, so a restarted
 * agent enforces it again before (or without) reaching the API. Written to a temporary file and
 * renamed over the old one, so a crash mid-write leaves the previous snapshot, never half of one.
 * Maps and bigints (cgroup ids) are tagged in the JSON so they come back as they were.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Maps and bigints tagged, everything else as is: a copy only where something is tagged. Walked
 * by hand rather than with a JSON.stringify replacer: a replacer is called for every key of every
 * class and takes V8 off its fast path (50,000 classes: ~48 ms with a replacer, ~33 ms this way).
 */
function tagged(v: unknown): unknown {
  if (v instanceof Map) {
    const out = new Array<[unknown, unknown]>(v.size);
    let i = 0;
    for (const [k, x] of v) out[i++] = [tagged(k), tagged(x)];
    return { $map: out };
  }
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(tagged);
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    const y = tagged(x);
    if (y !== x) (copy ??= { ...(v as Record<string, unknown>) })[k] = y;
  }
  return copy ?? v;
}

const reviver = (_key: string, v: unknown) => {
  if (v !== null && typeof v === 'object') {
    if ('$map' in v) return new Map((v as { $map: [unknown, unknown][] }).$map);
    if ('$bigint' in v) return BigInt((v as { $bigint: string }).$bigint);
  }
  return v;
};

export const serializeSnapshot = (value: unknown): string => JSON.stringify(tagged(value));
/** The inverse of serializeSnapshot: Maps and bigints come back as they were. */
export const parseSnapshot = <T>(text: string): T => JSON.parse(text, reviver) as T;

export function writeSnapshot(file: string, value: unknown): void {
  writeSnapshotText(file, serializeSnapshot(value), `${file}.${process.pid}.tmp`);
}

function writeSnapshotText(file: string, text: string, tmp: string): void {
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } finally {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
  }
}

/** undefined when there is none; a corrupt file is an error (the caller sets it aside, logs it and starts without it). */
export function readSnapshot<T>(file: string): T | undefined {
  if (!existsSync(file)) return undefined;
  return parseSnapshot<T>(readFileSync(file, 'utf8'));
}

/**
 * Writes one file's snapshots without blocking the event loop on the disk, one write at a time.
 * Only the newest state asked for is kept, by reference (callers never change a state once
 * given: desired states are made anew for each change), and serialized when its write starts: a
 * write requested while one runs is coalesced with every other request of that time into one
 * later write of the newest state. So a burst of applies costs two serializations and two disk
 * writes, not one per apply (at 10,000 classes each serialization was a few MB of garbage and a
 * multi-MB string kept until the next). The temporary file is written and fsync'ed on libuv's
 * thread pool; only the rename (cheap once the data is on disk) runs on this thread, and only if
 * nothing newer reached the file meanwhile, so the file only ever moves forward. An applied
 * state is thus in the maps before its snapshot is on disk; a crash in between leaves the
 * previous snapshot (never a torn one), and the API brings the newer state back. flushSync()
 * writes the newest state at once (on stop); close() waits for the write in flight, whose
 * temporary file is then gone.
 */
export class SnapshotWriter {
  /** Requests so far, and the newest one on disk (the file moves forward only). */
  private requested = 0;
  private written = 0;
  /** The request whose write failed last: not retried until a newer state asks for a write (or flushSync). */
  private failed = 0;
  private latest?: { value: unknown };
  private running?: Promise<void>;
  private error?: string;
  private dirMade = false;
  private closed = false;

  constructor(private readonly file: string) {}

  /** Asks for `value` to be written. When no write is in flight it is serialized now (an error is then ready for takeError() on return). */
  write(value: unknown): void {
    if (this.closed) return;
    this.latest = { value };
    this.requested++;
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Writes the newest request until none is newer than the file. */
  private async drain(): Promise<void> {
    while (this.written < this.requested && this.failed !== this.requested) {
      const gen = this.requested;
      let text: string;
      try {
        text = serializeSnapshot(this.latest!.value);
      } catch (err) {
        this.error = `cannot serialize the snapshot: ${(err as Error).message}`;
        this.failed = gen;
        continue;
      }
      await this.writeAsync(gen, text);
    }
  }

  private async writeAsync(gen: number, text: string): Promise<void> {
    const tmp = `${this.file}.${process.pid}.tmp`;
    let renamed = false;
    try {
      if (!this.dirMade) {
        await mkdir(dirname(this.file), { recursive: true });
        this.dirMade = true;
      }
      await writeFile(tmp, text, { flush: true }); // flush: fsync'ed before the rename makes it the snapshot
      if (gen > this.written) {
        renameSync(tmp, this.file);
        renamed = true;
        this.written = gen;
        this.error = undefined;
      }
    } catch (err) {
      this.error = (err as Error).message;
      this.failed = gen;
    } finally {
      if (!renamed) await rm(tmp, { force: true }).catch(() => {});
    }
  }

  /** The error of the newest write, if it failed and was not taken yet. */
  takeError(): string | undefined {
    const e = this.error;
    this.error = undefined;
    return e;
  }

  /** Writes the newest state now, synchronously, unless it is on disk already; the write in flight will not rename. Throws on failure. */
  flushSync(): void {
    if (this.latest === undefined || this.written >= this.requested) return;
    // Its own temporary name: the write in flight may still be writing the other one.
    writeSnapshotText(this.file, serializeSnapshot(this.latest.value), `${this.file}.${process.pid}.flush.tmp`);
    this.written = this.requested;
  }

  /** Resolves when every requested write has finished (tests, and a clean stop). */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** No more writes; the newest state is written now (if it is not on disk) and the write in flight is waited for. */
  async close(): Promise<void> {
    this.closed = true;
    try {
      this.flushSync();
    } catch {
      /* the previous snapshot stays; the maps and the API hold the newer state */
    }
    await this.idle();
  }
}

/** Renames an unreadable snapshot to FILE.unreadable; returns that name, or undefined if the rename failed. */
export function setAsideUnreadable(file: string): string | undefined {
  const kept = `${file}.unreadable`;
  try {
    renameSync(file, kept);
    return kept;
  } catch {
    return undefined;
  }
}

/** Deletes FILE.*.tmp: the temporary files of snapshot writes that a crash interrupted. */
export function removeTemporaries(file: string): void {
  const prefix = `${basename(file)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return; // no directory yet: nothing was ever written
  }
  for (const name of names) if (name.startsWith(prefix) && name.endsWith('.tmp')) rmSync(join(dirname(file), name), { force: true });
}
